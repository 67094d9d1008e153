"""What this CPU can do at most, next to what a scan reaches: the physical limits of the figures.

    python benchmarks/cpu_limits.py [--json out.json]

Prints (and writes as JSON):
1. float32 matrix products, GFLOP/s: NumPy's BLAS on all cores, and LiteRT's XNNPACK (the engine
   scans use) on a network of 1x1 convolutions, MobileNetV2's main work, on all cores;
2. the same network quantised to 8 bits (per-channel weights, calibrated activations, as
   ``benchmarks/int8_engine.py`` makes the model's 8-bit twin), GOP/s, and its ratio to float32: on a
   CPU with 8-bit dot-product instructions (AVX-512 VNNI, AVX-VNNI) XNNPACK's 8-bit kernels run
   several times float32's rate, without them about float32's;
3. JPEG decoding on one core (Pillow, libjpeg-turbo): megapixels/s of a 1 MP photo and of a 200x200
   face crop, and crops/s;
4. which vector instructions the CPU reports (``/proc/cpuinfo``).
Needs the ``train`` extra (TensorFlow makes the two LiteRT networks).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

CHANNELS, SIDE, BATCH, LAYERS = 256, 32, 8, 8  # 1x1 convolutions: 2.1 GFLOP a batch


def best_seconds(fn, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def numpy_gflops(n: int = 2048) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    return 2 * n**3 / best_seconds(lambda: a @ b) / 1e9


def pointwise_networks(folder: Path) -> dict[str, Path]:
    """The same stack of 1x1 convolutions as float32 and full-integer 8-bit LiteRT files."""
    quiet.load_tensorflow()
    import tensorflow as tf

    inputs = tf.keras.Input((SIDE, SIDE, CHANNELS), batch_size=BATCH)
    x = inputs
    for _ in range(LAYERS):
        x = tf.keras.layers.Conv2D(CHANNELS, 1, activation="relu")(x)
    model = tf.keras.Model(inputs, x)
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(8):
            yield [rng.random((BATCH, SIDE, SIDE, CHANNELS), dtype=np.float32)]

    paths = {}
    for name in ("float32", "int8"):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if name == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        paths[name] = folder / f"pointwise_{name}.tflite"
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), quiet.native_stderr_silenced():
            warnings.simplefilter("ignore")
            paths[name].write_bytes(converter.convert())
    return paths


def litert_gops(path: Path) -> float:
    from ai_edge_litert.interpreter import Interpreter

    with quiet.native_stderr_silenced():
        interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
        interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.random.default_rng(0).random(detail["shape"], dtype=np.float32))
    operations = 2 * BATCH * SIDE * SIDE * CHANNELS * CHANNELS * LAYERS
    return operations / best_seconds(interpreter.invoke) / 1e9


def jpeg_decoding() -> dict:
    """One core's JPEG decoding: a 1 MP photo and a 200x200 crop of it, as Pillow decodes them in a scan."""
    photo = Image.open(REPO / "examples" / "sources" / "coffee.png").convert("RGB").resize((1280, 800))
    figures = {}
    for name, image in (("1mp", photo), ("crop", photo.crop((500, 300, 700, 500)))):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        data = buffer.getvalue()
        seconds = best_seconds(lambda data=data: [Image.open(io.BytesIO(data)).load() for _ in range(20)]) / 20
        figures[f"jpeg_{name}_megapixels_per_s"] = round(image.width * image.height / seconds / 1e6, 1)
        figures[f"jpeg_{name}_ms"] = round(seconds * 1000, 3)
    return figures


def vector_instructions() -> list[str]:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in set(flags) if flag.startswith(("avx", "fma", "amx")) or "vnni" in flag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    figures: dict = {"cpus": os.cpu_count(), "vector_instructions": vector_instructions()}
    figures["numpy_float32_gflops"] = round(numpy_gflops(), 1)
    with tempfile.TemporaryDirectory(prefix="agebatch-limits-") as folder:
        networks = pointwise_networks(Path(folder))
        for name, path in networks.items():
            figures[f"litert_{name}_gops"] = round(litert_gops(path), 1)
    figures["int8_over_float32"] = round(figures["litert_int8_gops"] / figures["litert_float32_gops"], 2)
    figures.update(jpeg_decoding())
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    for key, value in figures.items():
        print(f"{key:<32} {value}")


if __name__ == "__main__":
    main()
