"""Every choice and default of the scanning layer, in one cheap module (no numpy, no TensorFlow).

The command line builds its options from these (help text included, see ``common.settings``), so a
default is written once; ``faces``, ``engines``, ``photo`` and ``scanner`` read them from here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from agebatch.common.settings import setting
from agebatch.scanning.sharding import Shard

# The default is chosen on benchmarks/detectors.py: BlazeFace finds what MTCNN finds on portraits, turned,
# grey and dark faces with no more false positives (a few points fewer of the tiniest group faces), at
# several times the speed, and needs no TensorFlow.
DETECTORS = ("blazeface", "mtcnn", "none")  # "none": each whole image is one face crop
DEFAULT_DETECTOR = "blazeface"
DEFAULT_MIN_FACE = 40  # pixels of the original image; smaller faces are too blurred to judge
# Each detector's confidence threshold (scores are not comparable across detectors), chosen on the
# recall and false-positive sets of benchmarks/detectors.py. BlazeFace's faces scoring below
# ``blazeface.SURE_SCORE`` must also pass MTCNN's O-Net, which is what lets its threshold sit this low.
DETECTOR_MIN_SCORE = {"mtcnn": 0.8, "blazeface": 0.6, "none": 0.0}
TENSORFLOW_DETECTORS = ("mtcnn",)  # the detectors that import TensorFlow (slow to start)
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
        DEFAULT_DETECTOR,
        "Face detector: blazeface (fast, no TensorFlow), mtcnn (a little better on tiny faces, loads "
        "TensorFlow), or none (each image is one face crop, e.g. UTKFace).",
    )
    min_face: int = setting(DEFAULT_MIN_FACE, "Ignore faces smaller than this many pixels.")
    min_score: float | None = setting(None, "Detector confidence a face needs (default: the detector's own).")
    batch_size: int = setting(DEFAULT_BATCH_SIZE, "Faces per model batch.")
    jobs: int | None = setting(None, "Decode/detect threads (default: one per core).")
    shard: Shard | None = setting(
        None, "Scan only shard I of N (I/N, or auto/N from $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID)."
    )

    def score_threshold(self) -> float:
        """``min_score``, or the chosen detector's own threshold when none was given."""
        return score_threshold(self.detector, self.min_score)


def score_threshold(detector: str, min_score: float | None) -> float:
    """The confidence a face needs: ``min_score`` if given, else ``detector``'s own threshold."""
    return DETECTOR_MIN_SCORE[detector] if min_score is None else min_score
