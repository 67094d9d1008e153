"""Write MTCNN's O-Net (the ``mtcnn`` wheel's weights) as the LiteRT file agebatch ships.

    python tools/export_mtcnn_onet.py agebatch/vendor/mtcnn_onet.tflite

BlazeFace's unsure candidates get a second opinion from O-Net (``scanning/onet.py``). Scans run it
through LiteRT, as they run BlazeFace, so they never import TensorFlow; this script is the one place
TensorFlow is needed, once, to convert the weights. After re-exporting, put the new file's SHA-256
into ``agebatch/common/vendored.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

import tensorflow as tf  # noqa: E402
from mtcnn.stages.stage_onet import StageONet  # noqa: E402


def to_litert(model, shape: list[int | None]) -> bytes:
    """``model`` (one of the mtcnn package's Keras networks) as a LiteRT flatbuffer taking ``shape``.

    Through a SavedModel: converting the Keras 3 model's function directly leaves its weights out
    (the network then returns NaN)."""
    with tempfile.TemporaryDirectory() as saved:
        model.export(saved, input_signature=[tf.TensorSpec(shape, tf.float32)], verbose=False)
        return tf.lite.TFLiteConverter.from_saved_model(saved).convert()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    model = StageONet()._model  # the Keras O-Net with the wheel's weights loaded
    args.out.write_bytes(to_litert(model, [1, 48, 48, 3]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
