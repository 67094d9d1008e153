"""How often the stated 80 % age interval holds the truth, and its calibration (``modelfile.intervals``).

    python benchmarks/interval_coverage.py ../shared/datasets/utkface ../shared/datasets/fairface
                                           [--calibrate-on utkface] [--write-card]

Runs the model over the validation and test parts of ``models/split.csv`` (pooled features through
Keras, then the heads in NumPy: the same numbers the network gives), and prints the coverage per
source and per true age band of: the plain central 80 %; shares calibrated on each source's
validation faces, checked on both sources' test faces (leave one source out: UTKFace's exact ages
against FairFace's bands, where "covered" means the interval meets the band). ``--write-card`` stores
the shares calibrated on ``--calibrate-on``'s validation faces, and their test coverage, in the model
card's ``calibration``, and the test faces' age-band confusion (true band x estimated band, exact ages)
in its ``test_metrics``, and rewrites the card's Markdown. Needs the ``train`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.modelfile import intervals  # noqa: E402
from agebatch.modelfile.card import card_path_for  # noqa: E402
from agebatch.training import readout  # noqa: E402


def held_out_features(model_path: Path, data: dict[str, str], split: Path, parts=("val", "test"), transform=None):
    """(frame, pooled features, the model's read-out) for the faces of ``parts`` of every source in
    ``data`` (name -> folder), each face first passed through ``transform`` (uint8 array -> array) if given."""
    from agebatch.modelfile.load import load_model
    from agebatch.training.dataset import readable_faces
    from agebatch.training.network import pooled_features

    model, size = load_model(model_path)
    frame = pd.read_csv(split)
    frame = frame[frame["split"].isin(parts) & frame["source"].isin(list(data))].reset_index(drop=True)
    features, kept = [], []
    for name, folder in data.items():
        rows = frame[frame["source"] == name].reset_index(drop=True)
        rows, faces, _ = readable_faces(rows, "file", folder, size)
        if transform is not None:
            faces = np.stack([transform(face) for face in faces])
        features.append(pooled_features(model, faces))
        kept.append(rows)
    return pd.concat(kept, ignore_index=True), np.concatenate(features), readout.readout_of(model)


def _line(name: str, table: dict) -> str:
    bands = " ".join(f"{band} {100 * v['coverage']:.0f}%" for band, v in table.items() if band != "overall")
    whole = table["overall"]
    return f"  {name:<10} {100 * whole['coverage']:5.1f}%  width {whole['width']:4.1f} y  ({bands})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", help="source folders, named as in split.csv (utkface, fairface)")
    parser.add_argument("--model", type=Path, default=REPO / "models" / "agebatch.keras")
    parser.add_argument("--split", type=Path, default=REPO / "models" / "split.csv")
    parser.add_argument("--calibrate-on", default="utkface", help="the source whose validation faces --write-card uses")
    parser.add_argument("--write-card", action="store_true")
    args = parser.parse_args()
    data = {Path(folder).name: folder for folder in args.data}
    frame, features, heads = held_out_features(args.model, data, args.split)
    out = readout.outputs(heads, features)
    low, high = frame["age_low"].to_numpy(float), frame["age_high"].to_numpy(float)

    def part(source: str, split: str) -> np.ndarray:
        return ((frame["source"] == source) & (frame["split"] == split)).to_numpy()

    def tables(shares):
        return {
            s: intervals.coverage_table(
                out.distributions[part(s, "test")],
                out.ages[part(s, "test")],
                low[part(s, "test")],
                high[part(s, "test")],
                shares,
            )
            for s in data
        }

    results = {"central 80%": (None, tables(None))}
    for source in data:
        val = part(source, "val")
        shares = intervals.calibrate(out.distributions[val], out.ages[val], low[val], high[val])
        results[f"calibrated on {source} val"] = (shares, tables(shares))
    for name, (shares, by_source) in results.items():
        print(name + (f": shares {shares}" if shares else ""))
        for source, table in by_source.items():
            print(_line(source + " test", table))
    if args.write_card:
        from agebatch.training.evaluate import band_confusion

        shares, by_source = results[f"calibrated on {args.calibrate_on} val"]
        test = (frame["split"] == "test").to_numpy() & (low == high)  # faces with exact ages
        confusion = band_confusion(low[test], out.ages[test])
        _write_card(args.model, shares, by_source, results["central 80%"][1], args.calibrate_on, confusion)


def _write_card(model: Path, shares: dict, calibrated: dict, plain: dict, source: str, confusion: dict) -> None:
    from agebatch.common import atomic
    from agebatch.training.modelcard import to_markdown

    path = card_path_for(model)
    card = json.loads(path.read_text(encoding="utf-8"))
    card.setdefault("calibration", {})["interval_shares"] = shares
    card["calibration"]["interval_coverage"] = {
        "calibrated_on": f"{source} validation faces (exact ages)",
        "test": calibrated,
        "test_central_80": plain,
    }
    card["test_metrics"]["age_band_confusion"] = confusion  # what the report's corrected band shares undo
    atomic.write_text(path, json.dumps(card, indent=2))
    atomic.write_text(path.with_name(path.name.replace(".json", ".md")), to_markdown(card))
    print(f"wrote the shares and their coverage into {path}")


if __name__ == "__main__":
    main()
