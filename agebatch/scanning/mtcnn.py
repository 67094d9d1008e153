"""MTCNN (the ``mtcnn`` package; its weights ship inside the wheel, nothing is downloaded) as a detector.

It loads TensorFlow, so a scan imports it once before its threads start (``detectors.REGISTRY``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from agebatch.scanning.detectors import DETECT_SIDE
from agebatch.scanning.facebox import MTCNN_MIN_FACE, Face
from agebatch.scanning.options import DEFAULT_MIN_FACE, DETECTOR_MIN_SCORE


class MtcnnDetector:
    """MTCNN (the ``mtcnn`` package; its weights ship inside the wheel, nothing is downloaded).

    The detector runs on a copy whose longer side is at most ``DETECT_SIDE``: its cost grows with the
    pixel count, and faces smaller than 20 detector pixels are not found anyway.
    """

    name = "mtcnn"
    vendored_files: tuple[str, ...] = ()  # its weights are the mtcnn wheel's own

    def __init__(
        self,
        min_face: int = DEFAULT_MIN_FACE,
        min_score: float = DETECTOR_MIN_SCORE["mtcnn"],
        detect_side: int = DETECT_SIDE,
    ) -> None:
        self.min_face = min_face
        self.min_score = min_score
        self.detect_side = detect_side
        self._mtcnn = None

    def _net(self):
        if self._mtcnn is None:
            from agebatch.common import quiet

            quiet.load_tensorflow("--detector mtcnn")  # mtcnn imports TensorFlow: its notices kept quiet
            from mtcnn import MTCNN

            self._mtcnn = MTCNN(device="CPU:0")
        return self._mtcnn

    def detect(self, image: Image.Image, scale: float = 1.0) -> list[Face]:
        if image.mode != "RGB":  # MTCNN takes three channels only
            image = image.convert("RGB")
        factor = min(1.0, self.detect_side / max(image.size))
        small = (
            image
            if factor == 1.0
            else image.resize(
                (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.Resampling.BILINEAR
            )
        )
        if min(small.size) < 24:  # below MTCNN's smallest pyramid level
            return []
        try:
            found = self._net().detect_faces(np.asarray(small), min_face_size=MTCNN_MIN_FACE)
        except (ValueError, IndexError) as exc:  # mtcnn's own edge cases on odd shapes
            if "empty" in str(exc).lower() or "index" in str(exc).lower():
                return []
            raise
        faces = []
        for item in found or []:
            x, y, w, h = (float(v) for v in item["box"])
            marks = {k: (float(u), float(v)) for k, (u, v) in item.get("keypoints", {}).items()}
            face = Face(x, y, w, h, float(item["confidence"]), marks).scaled(1 / factor)
            if face.score >= self.min_score and face.side * scale >= self.min_face:
                faces.append(face)
        faces.sort(key=lambda f: -f.width * f.height)
        return faces
