"""What averaging over views of a face, and over several models, does to accuracy on the saved split.

    python benchmarks/test_time_averaging.py ../shared/datasets/utkface --model A.keras [--model B.keras ...]
        [--split models/split.csv] [--cache-dir D] [--json F]

Each model sees six views of every validation and test face: the face as is, zoomed in 10% (centre
crop), zoomed out 10% (edges repeated), and each of those mirrored. Printed per model and for the
average of all models: one view, the face and its mirror (what ``--flip-average`` does), and all six.
The view sets are fixed in advance rather than picked on the test split, and the validation figures
are printed beside the test ones so a choice can be made on validation. Cost grows with views x models.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

ZOOMS = {"as is": 1.0, "zoomed in": 0.9, "zoomed out": 1.1}
ALL_VIEWS = [*ZOOMS, *(f"{name}, mirrored" for name in ZOOMS)]
VIEW_SETS = {"one view": ["as is"], "with mirror": ["as is", "as is, mirrored"], "six views": ALL_VIEWS}


def zoom(faces: np.ndarray, factor: float) -> np.ndarray:
    """Faces zoomed in (factor < 1: centre crop) or out (factor > 1: edges repeated), same size, uint8."""
    import tensorflow as tf

    n = faces.shape[1]
    if factor < 1:
        side = int(round(n * factor))
        start = (n - side) // 2
        framed = faces[:, start : start + side, start : start + side]
    else:
        pad = int(round(n * (factor - 1) / 2))
        framed = np.pad(faces, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    resized = tf.image.resize(tf.cast(framed, tf.float32), (n, n)).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def views(faces: np.ndarray) -> dict[str, np.ndarray]:
    plain = {name: faces if factor == 1.0 else zoom(faces, factor) for name, factor in ZOOMS.items()}
    mirrored = {f"{name}, mirrored": np.ascontiguousarray(v[:, :, ::-1]) for name, v in plain.items()}
    return plain | mirrored


def main() -> None:
    import pandas as pd

    from agebatch.modelfile.load import load_model
    from agebatch.training import dataset, evaluate, splits

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", type=Path, action="append", required=True, help="repeat for an ensemble")
    parser.add_argument("--split", type=Path, default=REPO / "models" / "split.csv")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    frame = splits.load_split(args.split)
    frame, faces, _ = dataset.readable_faces(frame, "file", args.data_dir, 128, args.cache_dir)
    parts = {name: frame.index[frame["split"] == name].to_numpy() for name in ("val", "test")}
    truth = {name: frame.loc[index].reset_index(drop=True) for name, index in parts.items()}
    models = {str(path): load_model(path)[0] for path in args.model}
    predictions: dict[tuple[str, str, str], pd.DataFrame] = {}  # (model, part, view) -> estimates
    for part, index in parts.items():
        for view, images in views(np.asarray(faces[index])).items():  # each view made once, for all models
            for name, model in models.items():
                predictions[(name, part, view)] = evaluate.predict_arrays(model, images)
    groups = {str(p): [str(p)] for p in args.model}
    if len(args.model) > 1:
        groups["average of all models"] = [str(p) for p in args.model]
    results = {}
    for group, members in groups.items():
        for set_name, view_names in VIEW_SETS.items():
            row = {}
            for part in parts:
                estimates = [predictions[(m, part, v)] for m in members for v in view_names]
                scored = evaluate.score(truth[part], evaluate.mean_estimates(estimates))
                row[part] = {
                    "age_mae": scored["overall"]["age_mae"],
                    "gender_accuracy": scored["overall"]["gender_accuracy"],
                    "race_gender_gap": scored.get("race_gender_gap", {}).get("gap"),
                }
            results[f"{group} / {set_name}"] = row
            v, t = row["val"], row["test"]
            print(
                f"{group:40s} {set_name:12s} val MAE {v['age_mae']:.3f} gender {100 * v['gender_accuracy']:.2f}%"
                f"   test MAE {t['age_mae']:.3f} gender {100 * t['gender_accuracy']:.2f}%"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
