"""MTCNN's O-Net as a second opinion on faces BlazeFace is unsure of, through LiteRT (no TensorFlow).

BlazeFace scores textures and true faces alike in its uncertain range, so one threshold either lets
wood grain through or drops small and dim faces. O-Net (MTCNN's last, strongest stage: a 48-pixel
face/not-face network) tells the two apart on exactly those candidates, so ``blazeface`` searches
with a lower threshold and keeps an uncertain candidate only when O-Net agrees it is a face. The
network ships converted to LiteRT (``tools/export_mtcnn_onet.py``), checked by SHA-256 at load.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from PIL import Image

from agebatch.common.vendored import read_vendored
from agebatch.scanning.facebox import Face

ONET_FILE = "mtcnn_onet.tflite"
ONET_SIDE = 48  # O-Net's input: a 48x48 RGB square


class OnetVerifier:
    """O-Net's face probability for a detected face; safe to call from several threads (one at a time)."""

    def __init__(self, threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from agebatch.common import quiet

        with quiet.native_stderr_silenced():
            self._interpreter = Interpreter(model_content=read_vendored(ONET_FILE), num_threads=threads)
            self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        # Outputs: box offsets (4), landmarks (10) and [not face, face] (2): the last one is ours.
        self._scores = next(d["index"] for d in self._interpreter.get_output_details() if d["shape"][-1] == 2)
        self._lock = threading.Lock()

    def face_probability(self, image: Image.Image, face: Face) -> float:
        """How sure O-Net is that ``face`` (in MTCNN's box terms, in ``image`` pixels) is a face, 0..1;
        a box without a finite, positive size is no face (0)."""
        if (
            not all(math.isfinite(v) for v in (face.x, face.y, face.width, face.height))
            or min(face.width, face.height) <= 0
        ):
            return 0.0
        batch = onet_input(image, face)
        with self._lock:
            self._interpreter.set_tensor(self._input, batch)
            self._interpreter.invoke()
            scores = self._interpreter.get_tensor(self._scores)
        return float(scores[0, 1])


def onet_input(image: Image.Image, face: Face) -> np.ndarray:
    """O-Net's (1, 48, 48, 3) input for ``face``: the square around its box (as MTCNN squares its boxes
    before O-Net; parts outside the photo black), scaled to [-1, 1) as MTCNN does."""
    side = max(face.width, face.height)
    cx, cy = face.x + face.width / 2, face.y + face.height / 2
    box = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    patch = rgb.crop(box).resize((ONET_SIDE, ONET_SIDE), Image.Resampling.BILINEAR)
    return ((np.asarray(patch, np.float32) - 127.5) / 128.0)[None]
