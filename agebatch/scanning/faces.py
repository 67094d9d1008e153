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

from agebatch.scanning.facebox import Detector, Face

__all__ = ["Detector", "Face", "crop_face", "find_faces"]

# Measured with MTCNN on UTKFace crops pasted into photos: the box side (sqrt(w*h)) is 0.935 of the
# crop side. (On a crop alone the box is cut short by the crop's edges: 0.885, which framed photo faces
# 6% too wide.) The crop centre lies 0.014 box sides below the midpoint between eye centre and mouth
# centre (measured on the crops alone; on pasted ones the cut centre lands within 0.01 crop sides).
UTK_BOX_TO_CROP = 1 / 0.935
UTK_CENTRE_BELOW_EYE_MOUTH = 0.014


class WholeImageDetector:
    """``--detector none``: the whole image is one face (folders of pre-cropped faces such as UTKFace)."""

    name = "none"
    vendored_files: tuple[str, ...] = ()

    def __init__(self, min_face: int = 0, min_score: float = 0.0) -> None:
        """Neither bound applies: the image is the face whatever its size."""

    def detect(self, image: Image.Image, scale: float = 1.0) -> list[Face]:
        return [Face(0.0, 0.0, float(image.width), float(image.height), 1.0)]


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
