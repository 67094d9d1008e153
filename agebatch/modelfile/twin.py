"""The LiteRT twin of a model file: exporting it, and the record that binds it to its ``.keras`` file.

``train`` writes ``agebatch.tflite`` beside ``agebatch.keras`` and a record
(``agebatch.tflite.json``) holding the SHA-256 of both. A scan runs the twin only when the record
binds it to the very Keras file it was given, so neither file can be swapped without notice.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from agebatch.common import atomic
from agebatch.common.files import read_regular

TWIN_LIMIT = 1 << 30  # a LiteRT model of this network is ~10 MB; a larger file is not read into memory


TWIN_SUFFIXES = {"tflite": ".tflite", "int8": ".int8.tflite"}  # engine -> the twin file it runs


def tflite_path_for(model_path: str | os.PathLike, engine: str = "tflite") -> Path:
    """Where the ``engine`` twin of a ``.keras`` file lies: float32 ``X.tflite`` or 8-bit ``X.int8.tflite``."""
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".keras") + TWIN_SUFFIXES[engine])


def twin_record_path(tflite_path: str | os.PathLike) -> Path:
    path = Path(tflite_path)
    return path.with_name(path.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_twin_record(keras_path: str | os.PathLike, tflite_path: str | os.PathLike) -> Path:
    """Record that ``tflite_path`` was exported from exactly this ``keras_path`` file: the SHA-256
    of both, so neither can be swapped without the record noticing."""
    record = {
        "keras_file": Path(keras_path).name,
        "keras_sha256": file_sha256(keras_path),
        "tflite_file": Path(tflite_path).name,
        "tflite_sha256": file_sha256(tflite_path),
    }
    return atomic.write_text(twin_record_path(tflite_path), json.dumps(record, indent=1) + "\n")


def checked_twin(keras_path: str | os.PathLike, tflite_path: str | os.PathLike) -> bytes | None:
    """The twin's bytes when its record binds this very Keras file and these very bytes, else None.

    The bytes are read once, hashed and returned, and the interpreter is built from them, so the
    file that runs is the file that was checked.
    """
    try:
        record = json.loads(read_regular(twin_record_path(tflite_path), 1 << 20))
        blob = read_regular(tflite_path, TWIN_LIMIT)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tflite_sha256") != hashlib.sha256(blob).hexdigest():
        return None
    try:
        return blob if record.get("keras_sha256") == file_sha256(keras_path) else None
    except OSError:
        return None


def export_tflite(model, path: str | os.PathLike, half_precision: bool = False, calibration_faces=None) -> Path:
    """Convert a Keras model to a ``.tflite`` file (via a SavedModel export).

    Float32 keeps the weights exact. ``half_precision`` stores them as float16 (half the size) and the
    runtime turns them back into float32 when it loads, as ``precision.full_precision`` does for Keras.
    ``calibration_faces`` (uint8, a few hundred faces of the training sources) makes the 8-bit twin
    instead: every weight and activation an integer (weights per channel, activations scaled to the
    ranges these faces produce), with float input and outputs kept, so it runs where the float twin runs.
    """
    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="agebatch-export-") as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if calibration_faces is not None:
            faces = np.asarray(calibration_faces)

            def representative():
                for face in faces:
                    yield [face[None].astype(np.float32) / 255.0]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        elif half_precision:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        blob = converter.convert()
    return atomic.write_bytes(path, blob)


INT8_AGE_TOLERANCE = 0.05  # years of age MAE the 8-bit twin may lose against float32 and still run by default
INT8_GENDER_TOLERANCE = 0.003  # share of gender calls right it may lose (0.3 points)


def int8_approved(card: dict | None) -> bool:
    """Whether ``--engine auto`` may run the 8-bit twin: the card's ``engines`` figures show it within
    ``INT8_*_TOLERANCE`` of the float32 twin on every source of the test split (judged here from the
    figures, never from a stored verdict)."""
    engines = (card or {}).get("engines") if isinstance(card, dict) else None
    try:
        plain, small = engines["tflite"]["test_metrics"], engines["int8"]["test_metrics"]
        if not plain or set(plain) - set(small):
            return False
        for source, figures in plain.items():
            other = small[source]
            if figures.get("age_mae") is not None and not other["age_mae"] - figures["age_mae"] <= INT8_AGE_TOLERANCE:
                return False
            if not figures["gender_accuracy"] - other["gender_accuracy"] <= INT8_GENDER_TOLERANCE:
                return False
        return True
    except (KeyError, TypeError):
        return False
