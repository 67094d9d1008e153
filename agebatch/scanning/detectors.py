"""Every face detector agebatch knows, in one table: name, class, confidence threshold, decode size,
and whether it loads TensorFlow. A new detector is its own module and one entry here.

The table is cheap to import (no numpy, no TensorFlow): ``options`` reads the names and thresholds
from it for the command line, and a detector's module is imported only when one is built. The model
files a detector ships (``agebatch/vendor/``) are its class's ``vendored_files``, checked by SHA-256
before a run starts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agebatch.scanning.facebox import Detector

DEFAULT_MIN_FACE = 40  # pixels of the original image; smaller faces are too blurred to judge
DETECT_SIDE = 1280  # longer side of the copy a detector runs on; faces smaller than ~20 of its pixels are lost


@dataclass(frozen=True)
class DetectorEntry:
    """One detector: what ``--detector NAME`` builds and what a scan must know of it beforehand."""

    name: str
    detector_class: str  # "module:Class"; the class takes (min_face, min_score) and has ``vendored_files``
    min_score: float  # its own confidence threshold (scores are not comparable across detectors)
    decode_side: int | None  # longer side a photo is decoded to; None: twice the model's input (whole-image crops)
    needs_tensorflow: bool = False  # importing it loads TensorFlow (slow to start; once per process, not per thread)

    def load_class(self) -> type:
        module, name = self.detector_class.split(":")
        return getattr(importlib.import_module(module), name)


# Thresholds are chosen on the recall and false-positive sets of benchmarks/detectors.py. BlazeFace's
# faces scoring below ``blazeface.SURE_SCORE`` must also pass MTCNN's O-Net, which lets its threshold
# sit this low. MTCNN searches a copy twice BlazeFace's side: its pyramid finds small faces there.
REGISTRY = {
    entry.name: entry
    for entry in (
        DetectorEntry("blazeface", "agebatch.scanning.blazeface:BlazeFaceDetector", 0.6, DETECT_SIDE),
        DetectorEntry("mtcnn", "agebatch.scanning.mtcnn:MtcnnDetector", 0.8, 2 * DETECT_SIDE, needs_tensorflow=True),
        DetectorEntry("none", "agebatch.scanning.faces:WholeImageDetector", 0.0, None),
    )
}


def entry_for(name: str) -> DetectorEntry:
    """The registry's entry for ``name``; ``ValueError`` naming the choices for an unknown one."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r} (choose {', '.join(REGISTRY)})") from None


def make_detector(name: str, min_face: int = DEFAULT_MIN_FACE, min_score: float | None = None) -> Detector:
    """The detector ``name``; ``min_score`` None means its own threshold."""
    entry = entry_for(name)
    return entry.load_class()(min_face, entry.min_score if min_score is None else min_score)


def check_detector(name: str) -> None:
    """Read the detector's model files now (each checked by SHA-256), and load TensorFlow if it needs
    it, so a missing or altered file or extra is one clear error before a run starts rather than an
    error row for every image."""
    from agebatch.common.vendored import read_vendored

    entry = entry_for(name)
    if entry.needs_tensorflow:  # and TensorFlow is there: an extra, said once rather than once per image
        from agebatch.common import quiet

        quiet.load_tensorflow(f"--detector {name}")
    for file in entry.load_class().vendored_files:
        read_vendored(file)


def decode_side(name: str, image_size: int) -> int:
    """How many pixels (longer side) a photo needs once decoded for detector ``name``: what it
    searches, or a little more than the model's input for a whole-image "face". Big JPEGs are decoded
    at reduced scale (draft mode)."""
    side = entry_for(name).decode_side
    return 2 * image_size if side is None else side
