"""What MTCNN's three networks would cost through LiteRT instead of TensorFlow eager.

    python benchmarks/mtcnn_litert.py ../shared/datasets/utkface [--photos 8]

Runs today's MTCNN path on generated 1 MP portraits (as ``benchmarks/detectors.py`` makes them),
recording every input its P-Net, R-Net and O-Net receive and how long TensorFlow takes for each; then
converts each network to LiteRT (in memory) and times the same inputs through it, on one thread (a scan
runs one detector per core). The rest of MTCNN (pyramid building, NMS) is the difference between the
whole path and its networks. Prints milliseconds per photo for each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tools"))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

import detectors as generated  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402
from export_mtcnn_onet import to_litert  # noqa: E402

from agebatch.scanning import detectors  # noqa: E402
from agebatch.training.sources import read_source  # noqa: E402


def recorded(model, inputs: list):
    """``model``, calling through which records (input, seconds) into ``inputs``."""

    def call(batch, *args, **kwargs):
        started = time.perf_counter()
        outputs = model(batch, *args, **kwargs)
        _ = [np.asarray(o) for o in outputs]  # wait for the result
        inputs.append((np.asarray(batch, np.float32), time.perf_counter() - started))
        return outputs

    return call


def litert_seconds(model, inputs: list, variable_size: bool) -> float:
    shape = [None, None, None, 3] if variable_size else [None, *inputs[0][0].shape[1:]]
    interpreter = Interpreter(model_content=to_litert(model, shape), num_threads=1)
    index = interpreter.get_input_details()[0]["index"]
    total = 0.0
    for batch, _ in inputs:
        interpreter.resize_tensor_input(index, list(batch.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(index, batch)
        started = time.perf_counter()
        interpreter.invoke()
        total += time.perf_counter() - started
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--photos", type=int, default=8)
    args = parser.parse_args()
    frame, _ = read_source(args.data_dir)
    maker = generated.Maker(list(frame["path"].sample(200, random_state=1)), 1)
    photos = [maker.portrait(size=(1155, 866))[0] for _ in range(args.photos)]
    detector = detectors.make_detector("mtcnn")
    detector.detect(photos[0])  # load the networks outside the timing
    networks = {}
    for stage in detector._net().stages:
        inputs: list = []
        networks[type(stage._model).__name__] = (stage._model, inputs)
        stage._model = recorded(stage._model, inputs)
    started = time.perf_counter()
    for photo in photos:
        detector.detect(photo)
    whole = 1000 * (time.perf_counter() - started) / len(photos)
    in_networks = 0.0
    print(f"MTCNN path: {whole:.1f} ms a photo (TensorFlow uses every core)")
    for name, (model, inputs) in networks.items():
        eager = 1000 * sum(seconds for _, seconds in inputs) / len(photos)
        lite = 1000 * litert_seconds(model, inputs, name == "PNet") / len(photos)
        in_networks += eager
        print(
            f"  {name}: {len(inputs) / len(photos):.0f} calls a photo, TensorFlow {eager:.1f} ms, LiteRT (1 thread) {lite:.1f} ms"
        )
    print(f"  outside the networks (pyramid, NMS): {whole - in_networks:.1f} ms")


if __name__ == "__main__":
    main()
