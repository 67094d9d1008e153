"""Does bfloat16 make training faster on this CPU? Seconds per training step of the real network.

    python benchmarks/training_precision.py [--rounds 3] [--steps 12] [--batch-size 64] [--json out.json]

Times training steps (128 px faces, the whole backbone trainable, distribution age head, the
training augmentation) in three ways, each in its own process because TensorFlow's graph options
are global, alternated round by round so that load on a shared machine falls on all of them alike:

- ``float32``: what ``agebatch train`` does;
- ``mixed_bfloat16``: Keras' mixed-precision policy (bfloat16 arithmetic, float32 weights);
- ``onednn_bf16``: float32 layers, with TensorFlow's oneDNN graph rewrite to bfloat16
  (``auto_mixed_precision_onednn_bfloat16``), meant for CPUs with AVX-512 BF16 or AMX.

Prints the median seconds per step of each and its speed relative to float32 (above 1: faster).
Random faces and targets: only the arithmetic's cost is measured, not what is learnt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("float32", "mixed_bfloat16", "onednn_bf16")
WARMUP_STEPS = 3


def time_steps(mode: str, steps: int, batch_size: int) -> float:
    """Seconds per training step in ``mode``, after a few warm-up steps (tracing, allocation)."""
    import time

    import numpy as np

    if mode == "onednn_bf16":
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    import keras

    from agebatch.contract import AGE_OUTPUT, GENDER_OUTPUT
    from agebatch.training.config import TrainConfig
    from agebatch.training.network import build_model

    recipe = TrainConfig()  # train's defaults: input size, dropout, width, learning rate

    keras.utils.set_random_seed(0)
    if mode == "mixed_bfloat16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_model(
        recipe.image_size, None, recipe.dropout, recipe.alpha, color_jitter=0.2, age_head="distribution"
    )
    losses = {
        name: "sparse_categorical_crossentropy" if name == GENDER_OUTPUT else "categorical_crossentropy"
        for name in model.output_names
        if name != AGE_OUTPUT  # the expected age is read off the distribution, not trained
    }
    model.compile(optimizer=keras.optimizers.Adam(recipe.learning_rate), loss=losses)
    rng = np.random.default_rng(0)
    faces = rng.random((batch_size, recipe.image_size, recipe.image_size, 3), dtype=np.float32)
    targets = {
        name: rng.integers(0, 2, batch_size)
        if name == GENDER_OUTPUT
        else rng.dirichlet(np.ones(model.get_layer(name).output.shape[-1]), batch_size).astype("float32")
        for name in losses
    }
    for _ in range(WARMUP_STEPS):
        model.train_on_batch(faces, targets)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(faces, targets)
    return (time.perf_counter() - start) / steps


def _child(mode: str, steps: int, batch_size: int) -> float:
    command = [sys.executable, __file__, "--child", mode, "--steps", str(steps), "--batch-size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{mode} failed: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="Processes per mode, alternated. Defaults to 3.")
    parser.add_argument("--steps", type=int, default=12, help="Timed steps per process. Defaults to 12.")
    parser.add_argument("--batch-size", type=int, default=64, help="Faces per step. Defaults to 64 (as train).")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(time_steps(args.child, args.steps, args.batch_size))
        return
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            seconds[mode].append(_child(mode, args.steps, args.batch_size))
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    print(f"{'mode':16s} {'s/step':>8s} {'speed vs float32':>17s}  each round")
    for mode in MODES:
        rounds = ", ".join(f"{s:.3f}" for s in seconds[mode])
        print(f"{mode:16s} {medians[mode]:8.3f} {medians['float32'] / medians[mode]:16.2f}x  {rounds}")
    if args.json:
        args.json.write_text(json.dumps({"seconds_per_step": seconds, "median": medians}, indent=1))


if __name__ == "__main__":
    main()
