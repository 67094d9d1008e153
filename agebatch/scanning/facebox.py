"""What every face detector returns (``Face``) and promises (``Detector``), in a module of its own
so that detectors (``faces``' MTCNN, ``blazeface``) and the crop code share it without importing
one another."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from PIL import Image

MTCNN_MIN_FACE = 20  # mtcnn 1.0.0 finds nothing with any other min_face_size


@dataclass
class Face:
    """A detected face, in pixels of the (EXIF-rotated) image it was found in."""

    x: float
    y: float
    width: float
    height: float
    score: float
    landmarks: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def side(self) -> float:
        return math.sqrt(max(self.width, 1e-6) * max(self.height, 1e-6))

    def scaled(self, factor: float) -> Face:
        return Face(
            self.x * factor,
            self.y * factor,
            self.width * factor,
            self.height * factor,
            self.score,
            {k: (u * factor, v * factor) for k, (u, v) in self.landmarks.items()},
        )


class Detector(Protocol):
    """Finds faces; ``scale`` is original pixels per pixel of ``image`` (a photo decoded at reduced
    size), so that ``min_face`` always counts original pixels."""

    name: str

    def detect(self, image: Image.Image, scale: float = 1.0) -> list[Face]: ...
