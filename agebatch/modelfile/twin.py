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


def tflite_path_for(model_path: str | os.PathLike) -> Path:
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".keras") + ".tflite")


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


def export_tflite(model, path: str | os.PathLike, half_precision: bool = False) -> Path:
    """Convert a Keras model to a ``.tflite`` file (via a SavedModel export).

    Float32 keeps the weights exact. ``half_precision`` stores them as float16 (half the size) and the
    runtime turns them back into float32 when it loads, as ``precision.full_precision`` does for Keras.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="agebatch-export-") as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if half_precision:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        blob = converter.convert()
    return atomic.write_bytes(path, blob)
