"""Every choice and default of the scanning layer, in one cheap module (no numpy, no TensorFlow).

The command line builds its options from these (help text included, see ``common.settings``), so a
default is written once; ``faces``, ``engines``, ``photo`` and ``scanner`` read them from here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from agebatch.common.settings import setting
from agebatch.scanning.detectors import DEFAULT_MIN_FACE, REGISTRY
from agebatch.scanning.sharding import Shard

# The default is chosen on benchmarks/detectors.py: BlazeFace finds what MTCNN finds on portraits, turned,
# grey and dark faces with no more false positives (a few points fewer of the tiniest group faces), at
# several times the speed, and needs no TensorFlow.
DETECTORS = tuple(REGISTRY)  # "none": each whole image is one face crop
DEFAULT_DETECTOR = "blazeface"
DETECTOR_MIN_SCORE = {name: entry.min_score for name, entry in REGISTRY.items()}
TENSORFLOW_DETECTORS = tuple(name for name, entry in REGISTRY.items() if entry.needs_tensorflow)
# Faces per model batch: 32 runs as fast as 64 on two cores and holds about 65 MB less (the network's
# working memory grows with the batch; benchmarks/throughput.py, 2026-12-06).
DEFAULT_BATCH_SIZE = 32
ENGINES = ("auto", "keras", "tflite", "int8")  # auto: the best twin beside the .keras file its card vouches for
EXPLAIN_HEADS = ("age", "gender")  # the estimates Grad-CAM can explain


VIDEO_ROWS = ("tracks", "frames")


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
        None,
        "Scan only shard I of N (I/N, or auto/N from $JOB_COMPLETION_INDEX, $SLURM_ARRAY_TASK_ID or "
        "$AWS_BATCH_JOB_ARRAY_INDEX).",
    )
    video_fps: float = setting(2.0, "Frames a second sampled from each video.")
    video_rows: str = setting(
        VIDEO_ROWS[0], "Rows for a video: tracks (one per person seen) or frames (one per face per sampled frame)."
    )

    def score_threshold(self) -> float:
        """``min_score``, or the chosen detector's own threshold when none was given."""
        return score_threshold(self.detector, self.min_score)


@dataclass(frozen=True)
class ModelOptions:
    """Which model estimates the faces and how it runs; ``predict``, ``explain`` and ``serve`` take these too."""

    model: str | None = setting(None, "Model file (.keras); default: the shipped model or $AGEBATCH_MODEL.")
    engine: str = setting(
        ENGINES[0],
        "Inference engine: tflite (float32 twin), int8 (8-bit twin, fastest), keras; auto: int8 where the "
        "card shows it as accurate as float32, else tflite, else keras.",
    )
    flip_average: bool = setting(
        False, "Also run each face mirrored and average the two: slightly more accurate, half the speed."
    )


@dataclass(frozen=True)
class OutputOptions:
    """Where a scan's rows go and how they are written."""

    out: str = setting(
        "-",
        "Results file to write (CSV, JSONL, Parquet), or a Parquet dataset DIR/ (also s3://bucket/prefix/); - for stdout.",
    )
    format: str | None = setting(None, "Output format (default: from --out's extension, else csv).")
    resume: bool = setting(False, "Skip images already in --out (same path, size, mtime); append new ones.")
    excel_safe: bool = setting(False, "Neutralise cells a spreadsheet would run as formulas.")
    wait: bool = setting(False, "If another scan is writing --out, wait for it instead of failing.")
    summary_json: str | None = setting(None, "Also write the run's summary as JSON to this file.")

    @property
    def to_stdout(self) -> bool:
        return self.out == "-"


def score_threshold(detector: str, min_score: float | None) -> float:
    """The confidence a face needs: ``min_score`` if given, else ``detector``'s own threshold."""
    return DETECTOR_MIN_SCORE[detector] if min_score is None else min_score
