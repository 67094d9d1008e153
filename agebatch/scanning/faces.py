"""Face detection and the crops the model sees.

The model was trained on UTKFace crops, so a face found in a photo is cut out the same way: we pasted
UTKFace crops whole into photos, ran the detector, and measured where it puts its box and landmarks
against the pasted square (``UTK_*`` constants below; ``benchmarks/photo_framing.py``). A crop from a
photo then has the same framing: square, eyes level, centred between the eyes and the mouth, 1.07x
the detector's box.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from agebatch.scanning.facebox import DETECT_SIDE, MTCNN_MIN_FACE, Detector, Face
from agebatch.scanning.options import DEFAULT_MIN_FACE, DETECTOR_MIN_SCORE, DETECTORS, score_threshold

__all__ = ["DETECT_SIDE", "Detector", "Face", "check_detector", "crop_face", "find_faces", "make_detector"]

# Measured with MTCNN on UTKFace crops pasted into photos: the box side (sqrt(w*h)) is 0.935 of the
# crop side. (On a crop alone the box is cut short by the crop's edges: 0.885, which framed photo faces
# 6% too wide.) The crop centre lies 0.014 box sides below the midpoint between eye centre and mouth
# centre (measured on the crops alone; on pasted ones the cut centre lands within 0.01 crop sides).
UTK_BOX_TO_CROP = 1 / 0.935
UTK_CENTRE_BELOW_EYE_MOUTH = 0.014


class WholeImageDetector:
    """``--detector none``: the whole image is one face (folders of pre-cropped faces such as UTKFace)."""

    name = "none"

    def detect(self, image: Image.Image, scale: float = 1.0) -> list[Face]:
        return [Face(0.0, 0.0, float(image.width), float(image.height), 1.0)]


class MtcnnDetector:
    """MTCNN (the ``mtcnn`` package; its weights ship inside the wheel, nothing is downloaded).

    The detector runs on a copy whose longer side is at most ``DETECT_SIDE``: its cost grows with the
    pixel count, and faces smaller than 20 detector pixels are not found anyway.
    """

    name = "mtcnn"

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

            quiet.load_tensorflow()  # mtcnn imports TensorFlow: keep its start-up notices quiet
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


def make_detector(name: str, min_face: int = DEFAULT_MIN_FACE, min_score: float | None = None) -> Detector:
    """The detector ``name`` (one of ``options.DETECTORS``); ``min_score`` None means its own threshold."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r} (choose {', '.join(DETECTORS)})")
    threshold = score_threshold(name, min_score)
    if name == "none":
        return WholeImageDetector()
    if name == "blazeface":
        from agebatch.scanning.blazeface import BlazeFaceDetector

        return BlazeFaceDetector(min_face=min_face, min_score=threshold)
    return MtcnnDetector(min_face=min_face, min_score=threshold)


def check_detector(name: str) -> None:
    """Read the detector's model files now (BlazeFace's and O-Net's are checked by SHA-256), so a missing
    or altered file is one clear error before a run starts rather than an error row for every image."""
    if name == "blazeface":
        from agebatch.common.vendored import read_vendored
        from agebatch.scanning.blazeface import SHORT_RANGE
        from agebatch.scanning.onet import ONET_FILE

        read_vendored(SHORT_RANGE.file)
        read_vendored(ONET_FILE)


def framing(face: Face) -> tuple[float, float, float, float]:
    """Centre (cx, cy), crop side and roll angle (degrees) of the UTKFace-style crop for ``face``."""
    marks = face.landmarks
    side = face.side * UTK_BOX_TO_CROP
    if {"left_eye", "right_eye", "mouth_left", "mouth_right"} <= marks.keys():
        (lx, ly), (rx, ry) = marks["left_eye"], marks["right_eye"]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        eye = ((lx + rx) / 2, (ly + ry) / 2)
        mouth = (
            (marks["mouth_left"][0] + marks["mouth_right"][0]) / 2,
            (marks["mouth_left"][1] + marks["mouth_right"][1]) / 2,
        )
        cx, cy = (eye[0] + mouth[0]) / 2, (eye[1] + mouth[1]) / 2
        # "below" is along the face's own vertical axis, which the roll tilts.
        down = UTK_CENTRE_BELOW_EYE_MOUTH * face.side
        rad = math.radians(angle)
        cx, cy = cx - down * math.sin(rad), cy + down * math.cos(rad)
        return cx, cy, side, angle
    return face.x + face.width / 2, face.y + face.height / 2, side, 0.0


def crop_face(image: Image.Image, face: Face, size: int, whole_image: bool = False) -> Image.Image:
    """The ``size`` x ``size`` crop the model sees for ``face``, eyes level.

    Cut an axis-aligned square with room for the rotation, shrink it with an antialiasing resize
    (as the training crops were shrunk), then rotate about its centre and keep the middle.
    Parts outside the photo come out black, as in UTKFace's own crops.
    """
    if whole_image:
        return image if image.size == (size, size) else image.resize((size, size), Image.Resampling.BILINEAR)
    return cut_framed(image, *framing(face), size)


def cut_framed(image: Image.Image, cx: float, cy: float, side: float, angle: float, size: int) -> Image.Image:
    """The ``size`` x ``size`` crop centred on (``cx``, ``cy``), ``side`` pixels wide, turned by
    ``angle`` degrees to level the eyes (``framing``'s terms; see ``crop_face``)."""
    room = 1.5 if angle else 1.0
    half = side * room / 2
    box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    region = image.crop(box)  # out-of-bounds parts are filled with black
    outer = max(size, round(size * room))
    region = region.resize((outer, outer), Image.Resampling.BILINEAR)
    if angle:
        region = region.rotate(angle, resample=Image.Resampling.BILINEAR)
        offset = (outer - size) // 2
        region = region.crop((offset, offset, offset + size, offset + size))
    return region


def decode_side(detector: str, image_size: int) -> int:
    """How many pixels (longer side) a photo needs once decoded: for a whole-image "face" a little
    more than the model's input; for BlazeFace the side it searches at most (``DETECT_SIDE``); for
    MTCNN twice that. Big JPEGs are decoded at reduced scale (draft mode)."""
    if detector == "none":
        return 2 * image_size
    return DETECT_SIDE if detector == "blazeface" else 2 * DETECT_SIDE


def find_faces(
    image: Image.Image, detector: Detector, size: int, scale: float = 1.0
) -> tuple[list[Face], list[np.ndarray]]:
    """Detect the faces in ``image`` and cut the model's ``size`` x ``size`` uint8 crop of each.

    The one path from a decoded picture to model input, shared by ``scan`` and ``predict``/``explain``.
    """
    whole_image = isinstance(detector, WholeImageDetector)
    found = detector.detect(image, scale)
    crops = [np.asarray(crop_face(image, face, size, whole_image), dtype=np.uint8) for face in found]
    return found, crops
