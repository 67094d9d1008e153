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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    model = StageONet()._model  # the Keras O-Net with the wheel's weights loaded
    with tempfile.TemporaryDirectory() as saved:
        # Through a SavedModel: converting the Keras 3 model's function directly leaves its weights out.
        model.export(saved, input_signature=[tf.TensorSpec([1, 48, 48, 3], tf.float32)])
        args.out.write_bytes(tf.lite.TFLiteConverter.from_saved_model(saved).convert())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
