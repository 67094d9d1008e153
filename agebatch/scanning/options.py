"""Every choice and default of the scanning layer, in one cheap module (no numpy, no TensorFlow).

The command line builds its options from these (help text included, see ``common.settings``), so a
default is written once; ``faces``, ``engines``, ``photo`` and ``scanner`` read them from here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from agebatch.common.settings import setting
from agebatch.scanning.sharding import Shard

DETECTORS = ("mtcnn", "none")  # "none": each whole image is one face crop
DEFAULT_DETECTOR = "mtcnn"
DEFAULT_MIN_FACE = 40  # pixels of the original image; smaller faces are too blurred to judge
# MTCNN's own output threshold; measured: 99.7% of portraits found, no false positives on face-less photos.
DEFAULT_MIN_SCORE = 0.8
DEFAULT_BATCH_SIZE = 64
ENGINES = ("auto", "keras", "tflite")  # auto: the .tflite twin beside the .keras file when there is one
EXPLAIN_HEADS = ("age", "gender")  # the estimates Grad-CAM can explain


@dataclass(frozen=True)
class ScanOptions:
    """How to find faces; the CLI's scan options map one to one onto these fields (help included)."""

    recursive: bool = setting(True, "Walk folders recursively.")
    exclude: tuple[str, ...] = setting((), "Skip files/folders matching this glob (repeatable).")
    follow_symlinks: bool = setting(False, "Follow symbolic links to folders (loops are detected).")
    detector: str = setting(
        DEFAULT_DETECTOR, "Face detector; 'none' treats each image as one face crop (e.g. UTKFace)."
    )
    min_face: int = setting(DEFAULT_MIN_FACE, "Ignore faces smaller than this many pixels.")
    min_score: float = setting(DEFAULT_MIN_SCORE, "Detector confidence a face needs.")
    batch_size: int = setting(DEFAULT_BATCH_SIZE, "Faces per model batch.")
    jobs: int | None = setting(None, "Decode/detect threads (default: one per core).")
    shard: Shard | None = setting(
        None, "Scan only shard I of N (I/N, or auto/N from $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID)."
    )
