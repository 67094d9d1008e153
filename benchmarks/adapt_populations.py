"""Does ``agebatch adapt`` help on populations unlike the training faces? Simulated ones, measured on
the faces the adaptation did not see.

    python benchmarks/adapt_populations.py ../shared/datasets/utkface ../shared/datasets/fairface
                                           [--sample 300] [--seeds 3]

Each population is drawn from the held-out (validation and test) faces of ``models/split.csv``: one
FairFace race group, UTKFace's faces of 50 and over, UTKFace's faces under 30, and UTKFace's faces made
to look like old scanned prints (36 pixels wide, blurred, sepia, faded, noisy). For each, ``--sample``
labelled faces go through ``adapt``'s own k-fold choice and final fit (``training.adaptfolds``), and
the rest are scored with the shipped read-out and the adapted one: age MAE and bias (exact ages), the
nine-band distribution's total variation distance from the truth, gender accuracy and the 80 %
interval's coverage (shipped: the card's calibration; adapted: recalibrated on the sample). Pooled
features come from Keras once (needs the ``train`` extra); the read-outs run in NumPy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from interval_coverage import held_out_features  # noqa: E402

from agebatch.modelfile.card import interval_shares_for  # noqa: E402
from agebatch.training import readout  # noqa: E402
from agebatch.training.adapt import AdaptOptions  # noqa: E402
from agebatch.training.adaptfolds import cross_validate  # noqa: E402

SHOWN = ("age_mae", "age_bias", "band_distance", "gender_accuracy", "interval_coverage")


def old_scan(face: np.ndarray, seed: int = 0) -> np.ndarray:
    """A face as an old scanned print: little detail left, blurred, sepia, faded, grainy."""
    size = face.shape[0]
    small = Image.fromarray(face).resize((36, 36), Image.BILINEAR).filter(ImageFilter.GaussianBlur(0.8))
    array = np.asarray(small.resize((size, size), Image.BICUBIC), np.float32)
    sepia = array.mean(axis=2, keepdims=True) * np.array([1.07, 0.95, 0.78]) + 10
    grain = np.random.default_rng(seed + int(face.sum()) % 1000).normal(0, 6, sepia.shape)
    return np.clip(0.75 * sepia + 0.25 * 128 + grain, 0, 255).astype(np.uint8)


def populations(frame, features, scanned) -> dict:
    """name -> (rows of ``frame``, features) for each simulated population."""
    utk, ff = frame["source"] == "utkface", frame["source"] == "fairface"
    chosen = {
        "FairFace East Asian": ff & (frame["race"] == "east asian"),
        "FairFace Black": ff & (frame["race"] == "black"),
        "UTKFace 50 and over": utk & (frame["age_low"] >= 50),
        "UTKFace under 30": utk & (frame["age_low"] < 30),
    }
    result = {name: (frame[mask].reset_index(drop=True), features[mask.to_numpy()]) for name, mask in chosen.items()}
    result["UTKFace as old scans"] = scanned
    return result


def run(name, rows, features, prior, base_shares, sample: int, seed: int) -> dict:
    order = np.random.default_rng(seed).permutation(len(rows))
    fit, rest = order[:sample], order[sample:]
    validation = cross_validate(
        prior, features[fit], rows.iloc[fit].reset_index(drop=True), AdaptOptions(), base_shares
    )
    adapted = validation.final_readout(prior, features[fit], rows.iloc[fit].reset_index(drop=True))
    labels = (
        rows["age_low"].to_numpy(float)[rest],
        rows["age_high"].to_numpy(float)[rest],
        rows["gender"].to_numpy(int)[rest],
    )
    before = readout.figures(readout.outputs(prior, features[rest]), *labels, base_shares)
    after = readout.figures(readout.outputs(adapted, features[rest]), *labels, validation.interval_shares)
    heads = f"age {'refit' if validation.age_strength else 'kept'}, gender {'refit' if validation.gender_strength else 'kept'}"
    return {"before": before, "after": after, "heads": heads, "rest": len(rest)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", help="source folders, named as in split.csv (utkface, fairface)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "agebatch.keras")
    parser.add_argument("--split", type=Path, default=REPO / "models" / "split.csv")
    parser.add_argument("--sample", type=int, default=300, help="labelled faces adapt sees per population")
    parser.add_argument("--seeds", type=int, default=3, help="draws of the sample per population")
    args = parser.parse_args()
    data = {Path(folder).name: folder for folder in args.data}
    frame, features, prior = held_out_features(args.model, data, args.split)
    utk_data = {k: v for k, v in data.items() if k == "utkface"}
    scanned_frame, scanned_features, _ = held_out_features(args.model, utk_data, args.split, transform=old_scan)
    base_shares = interval_shares_for(args.model)
    for name, (rows, feats) in populations(frame, features, (scanned_frame, scanned_features)).items():
        runs = [run(name, rows, feats, prior, base_shares, args.sample, seed) for seed in range(args.seeds)]
        print(
            f"{name}: {len(rows)} faces, {args.sample} to adapt on, {runs[0]['rest']} scored; heads: "
            + "; ".join(r["heads"] for r in runs)
        )
        for key in SHOWN:
            if runs[0]["before"][key] is None:
                continue
            before = np.mean([r["before"][key] for r in runs])
            after = np.mean([r["after"][key] for r in runs])
            print(f"  {key:<18} {before:8.3f} -> {after:8.3f}  (mean of {len(runs)} draws)")


if __name__ == "__main__":
    main()
