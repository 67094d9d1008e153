"""The 8-bit LiteRT twin: made from a model, scored against the float32 twin, timed in the same run.

    python benchmarks/int8_engine.py ../shared/datasets/utkface ../shared/datasets/fairface
                                     [--model models/agebatch.keras] [--calibration-faces 300] [--write]

Quantises the model (``modelfile.twin.export_tflite`` with calibration faces drawn from the training
part of ``models/split.csv``, half from each source), scores the float32 and the 8-bit twins on the
test part of each source, and times both on the same faces (model only, batches of 64, all cores,
best of 3 alternating rounds). ``--write`` keeps the 8-bit twin beside the model with its record and
puts both twins' test figures in the card's ``engines``, from which ``--engine auto`` decides
(``modelfile.twin.int8_approved``). Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.modelfile.card import card_path_for  # noqa: E402
from agebatch.modelfile.twin import export_tflite, int8_approved, tflite_path_for, write_twin_record  # noqa: E402
from agebatch.scanning.engines import TFLiteRunner  # noqa: E402
from agebatch.training import evaluate  # noqa: E402
from agebatch.training.dataset import readable_faces  # noqa: E402

SHOWN = ("n", "age_mae", "age_band_accuracy", "gender_accuracy")


def faces_of(frame: pd.DataFrame, data: dict[str, str], size: int) -> tuple[pd.DataFrame, np.ndarray]:
    parts, faces = [], []
    for name, folder in data.items():
        rows, images, _ = readable_faces(frame[frame["source"] == name].reset_index(drop=True), "file", folder, size)
        parts.append(rows)
        faces.append(np.asarray(images))
    return pd.concat(parts, ignore_index=True), np.concatenate(faces)


def scores(runner: TFLiteRunner, frame: pd.DataFrame, faces: np.ndarray) -> dict:
    """source -> the headline test figures of ``runner`` on these faces."""
    truth = frame.assign(age=frame["age"].where(frame["age_low"] == frame["age_high"]))
    scored = evaluate.score(truth, evaluate.predict_with(runner, faces))
    by_source = scored.get("by_source") or {frame["source"].iloc[0]: scored}
    return {s: {k: v["overall"].get(k) for k in SHOWN} for s, v in by_source.items()}


def faces_per_second(runners: dict, faces: np.ndarray, rounds: int = 3) -> dict:
    best = dict.fromkeys(runners, 0.0)
    batch = faces.astype(np.float32) / 255.0
    for _ in range(rounds):
        for name, runner in runners.items():
            started = time.perf_counter()
            for start in range(0, len(batch), 64):
                runner(batch[start : start + 64])
            best[name] = max(best[name], len(batch) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", help="source folders, named as in split.csv (utkface, fairface)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "agebatch.keras")
    parser.add_argument("--split", type=Path, default=REPO / "models" / "split.csv")
    parser.add_argument("--calibration-faces", type=int, default=300)
    parser.add_argument("--timing-faces", type=int, default=2048)
    parser.add_argument("--write", action="store_true", help="keep the twin and put the figures in the card")
    args = parser.parse_args()
    from agebatch.modelfile.load import load_model

    data = {Path(folder).name: folder for folder in args.data}
    model, size = load_model(args.model)
    split = pd.read_csv(args.split)
    per_source = args.calibration_faces // len(data)
    calibration = split[(split["split"] == "train") & split["source"].isin(list(data))]
    calibration = calibration.groupby("source", group_keys=False).sample(per_source, random_state=0)
    _, calibration_faces = faces_of(calibration, data, size)
    target = tflite_path_for(args.model, "int8") if args.write else Path(tempfile.mkdtemp()) / "m.int8.tflite"
    started = time.time()
    export_tflite(model, target, calibration_faces=calibration_faces)
    print(f"8-bit twin: {target.stat().st_size / 1e6:.1f} MB, quantised in {time.time() - started:.0f} s")
    test, test_faces = faces_of(split[(split["split"] == "test") & split["source"].isin(list(data))], data, size)
    runners = {"tflite": TFLiteRunner(tflite_path_for(args.model)), "int8": TFLiteRunner(target)}
    figures = {name: scores(runner, test, test_faces) for name, runner in runners.items()}
    speed = faces_per_second(runners, test_faces[: args.timing_faces])
    for name in runners:
        print(f"{name}: {speed[name]:.0f} faces/s; " + "; ".join(f"{s} {v}" for s, v in figures[name].items()))
    print(f"8-bit / float32 speed: {speed['int8'] / speed['tflite']:.2f}x")
    engines = {
        "measured": dt.date.today().isoformat(),
        "tflite": {"test_metrics": figures["tflite"], "faces_per_second": round(speed["tflite"])},
        "int8": {
            "test_metrics": figures["int8"],
            "faces_per_second": round(speed["int8"]),
            "calibration_faces": len(calibration_faces),
        },
    }
    print("auto would run the 8-bit twin:", int8_approved({"engines": engines}))
    if args.write:
        write_twin_record(args.model, target)
        _write_card(args.model, engines)


def _write_card(model: Path, engines: dict) -> None:
    from agebatch.common import atomic
    from agebatch.training.modelcard import to_markdown

    path = card_path_for(model)
    card = json.loads(path.read_text(encoding="utf-8"))
    card["engines"] = engines
    atomic.write_text(path, json.dumps(card, indent=2))
    atomic.write_text(path.with_name(path.name.replace(".json", ".md")), to_markdown(card))
    print(f"wrote the engines' figures into {path}")


if __name__ == "__main__":
    main()
