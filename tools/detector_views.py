"""Training faces as the photo path sees them: each face pasted into a photo, found by the face
detector and cut by ``faces.crop_face``, saved as a labelled source that ``agebatch train`` reads.

    python tools/detector_views.py ../shared/datasets/utkface ../shared/datasets/fairface \\
        --split models/split.csv --out /tmp/detector_views [--per-source 15342] [--workers 2]

A detector's crop differs from a dataset's own crop by a few percent of side, centre and roll, and
the model's calls move with it (``benchmarks/photo_framing.py``). Training on these cuts as well as
on the crops teaches the model the framing it meets in photos. Only faces of the split's training
part are used, so validation and test stay untouched. Writes ``OUT/labels.csv`` (file, age,
gender, race: the plain CSV format) with the PNG crops beside it, and ``OUT/split.csv``: the given
split plus these faces as training rows, to pass to ``agebatch train --split``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import detectors as generated  # noqa: E402

from agebatch.scanning import detectors, faces  # noqa: E402
from agebatch.training.sources import read_sources  # noqa: E402

IMAGE_SIZE = 128
PHOTO_SIZE = (480, 360)  # small photos: the detector's framing depends on the face's pixels, not the photo's
CHUNK = 500  # faces a worker takes at a time (each chunk has its own seeded photo maker)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path, help="labelled sources, as given to agebatch train")
    parser.add_argument("--split", type=Path, required=True, help="the split.csv whose training faces to use")
    parser.add_argument("--out", type=Path, required=True, help="new folder for the crops and labels.csv")
    parser.add_argument("--per-source", type=int, default=None, help="at most this many faces of each source")
    parser.add_argument("--detector", default="blazeface")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    frame, _ = read_sources(args.sources)
    split = pd.read_csv(args.split)
    name = args.out.resolve().name
    if name in set(split["source"]) | set(frame["source"]):
        parser.error(f"--out must not be named like a source ({name!r}): training would rename it and split it afresh")
    train = split.loc[split["split"] == "train", ["source", "file"]]
    frame = frame.merge(train, on=["source", "file"])
    if args.per_source is not None:
        parts = [
            part.sample(min(len(part), args.per_source), random_state=args.seed) for _, part in frame.groupby("source")
        ]
        frame = pd.concat(parts)
    frame = frame.reset_index(drop=True)
    args.out.mkdir(parents=True, exist_ok=False)
    jobs = [
        (frame.iloc[start : start + CHUNK], args.out, args.detector, args.seed + start)
        for start in range(0, len(frame), CHUNK)
    ]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        rows = [row for part in pool.imap(cut_chunk, jobs) for row in part]
    unreadable = sum(1 for _, file in rows if file is None)
    rows = [(index, file) for index, file in rows if file is not None]
    cut = frame.loc[[index for index, _ in rows]].assign(file=[name for _, name in rows])
    labels = cut.assign(age=[age_text(record) for record in cut.itertuples()])
    labels[["file", "age", "gender", "race"]].to_csv(args.out / "labels.csv", index=False)
    extra = cut.assign(source=name, split="train")[list(split.columns)]
    pd.concat([split, extra], ignore_index=True).to_csv(args.out / "split.csv", index=False)
    print(f"{len(labels)} of {len(frame)} faces found and cut into {args.out} ({unreadable} unreadable, skipped)")


def cut_chunk(job: tuple) -> list[tuple[int, str | None]]:
    """Paste, detect and cut one chunk of faces: (row, crop file name) for those the detector found,
    (row, None) for images that cannot be read."""
    part, out, detector_name, seed = job
    maker = generated.Maker([], seed)
    detector = detectors.make_detector(detector_name)
    rows = []
    for record in part.itertuples():
        try:
            photo, truth = maker.pasted(record.path, PHOTO_SIZE)
        except (OSError, ValueError):  # PIL's unreadable-image errors are OSErrors
            rows.append((record.Index, None))
            continue
        hits = [face for face in detector.detect(photo) if generated.matches([face], [truth])[0]]
        if not hits:
            continue
        name = f"{record.source}/{record.Index:06d}_{Path(record.file).name}.png"  # unique, inside the folder
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        faces.crop_face(photo, hits[0], IMAGE_SIZE).save(out / name)
        rows.append((record.Index, name))
    return rows


def age_text(record) -> str:
    """The age label as the plain CSV format writes it: a number, or a band ``low-high``."""
    if not np.isnan(record.age):
        return f"{record.age:g}"
    return f"{record.age_low}-{record.age_high}"


if __name__ == "__main__":
    main()
