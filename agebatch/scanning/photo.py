"""One photo at a time: detect, crop and predict every face (``predict`` and ``explain`` build on this).

``scan`` streams many files through a batched pipeline; here a single photo is examined in full, and the
crops and boxes are kept so they can be drawn or explained.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from agebatch.scanning import detectors, faces, images, options
from agebatch.scanning.predictor import Prediction, Predictor


@dataclass
class FaceResult:
    index: int
    face: faces.Face  # in pixels of the EXIF-rotated, full-resolution image
    crop: np.ndarray  # what the model saw, (size, size, 3) uint8
    prediction: Prediction


@dataclass
class PhotoResult:
    path: str
    image: Image.Image  # upright RGB, possibly decoded at reduced scale
    scale: float  # original pixels per pixel of ``image``
    faces: list[FaceResult]


def analyse(
    path: str | os.PathLike,
    predictor: Predictor,
    detector: str | faces.Detector = options.DEFAULT_DETECTOR,
    min_face: int = options.DEFAULT_MIN_FACE,
    min_score: float | None = None,
) -> PhotoResult:
    """Every face in one photo with its prediction; raises ``images.ImageError`` for unusable files.

    ``detector`` is a detector's name (built with ``min_face`` and ``min_score``) or one already built
    by ``detectors.make_detector``, which callers examining many photos pass to load its networks once."""
    finder = detectors.make_detector(detector, min_face, min_score) if isinstance(detector, str) else detector
    decoded = images.decode(path, max_side=detectors.decode_side(finder.name, predictor.image_size))
    found, crops = faces.find_faces(decoded.image, finder, predictor.image_size, decoded.scale)
    results = []
    if crops:
        estimates = predictor.estimate(np.stack(crops))
        for index, (face, crop) in enumerate(zip(found, crops)):
            results.append(FaceResult(index, face.scaled(decoded.scale), crop, estimates.prediction(index)))
    return PhotoResult(str(path), decoded.image, decoded.scale, results)


def face_in_image(result: FaceResult, scale: float) -> faces.Face:
    """The face box in pixels of the (possibly reduced) decoded image."""
    return result.face.scaled(1 / scale)


def drawn(result: PhotoResult) -> Image.Image:
    """The photo with each face boxed and labelled (age, gender, confidence), as ``predict --draw`` saves it."""
    from agebatch.scanning import drawing

    boxes = [face_in_image(f, result.scale) for f in result.faces]
    return drawing.draw_boxes(
        result.image,
        [(b.x, b.y, b.width, b.height) for b in boxes],
        [drawing.label(f.prediction) for f in result.faces],
        [f.prediction.gender for f in result.faces],
    )
