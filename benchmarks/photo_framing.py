"""Where the photo path's crop lands and how its framing moves accuracy: UTKFace faces pasted whole
into photos (so the right crop is known exactly: the pasted square), detected once, then cut with
the crop side and centre varied around today's ``faces.UTK_*`` framing.

    python benchmarks/photo_framing.py ../shared/datasets/utkface [--part val] [--faces 500]
                                       [--detector blazeface] [--flip-average]

First the geometry: the crop's side against the pasted square's (median and spread of the log
ratio), its centre's offset (across and down the face, in square sides), the roll it levels, and the
detector's box side over the square side (what ``faces.UTK_BOX_TO_CROP`` inverts). Then age MAE and
gender accuracy for each variant and for the same faces given as crops. Last, where the photo path's
distance from the crops path comes from: the detector's cut with the pasted square's own side, its own
centre, no roll, and all three (which is the pasted square itself: what pasting and JPEG cost), each
with the share of gender calls that differ from the crops path's. Uses the validation part of
``models/split.csv`` by default (choose framing there, confirm on ``--part test``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import detectors as generated  # noqa: E402

from agebatch.scanning import detectors, faces  # noqa: E402
from agebatch.scanning.images import resize_face  # noqa: E402
from agebatch.scanning.predictor import Predictor  # noqa: E402
from agebatch.training.sources import read_source  # noqa: E402

SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)  # times today's crop side
SHIFTS = (-0.03, 0.0, 0.03)  # face sides added to today's downward centring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--part", default="val", choices=("val", "test"))
    parser.add_argument("--faces", type=int, default=500)
    parser.add_argument("--detector", default="blazeface")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--scales", default=",".join(map(str, SCALES)), help="crop sides to try, times today's")
    parser.add_argument("--shifts", default=",".join(map(str, SHIFTS)), help="centre shifts to try, face sides")
    parser.add_argument(
        "--flip-average", action="store_true", help="also measure both paths with each face averaged with its mirror"
    )
    args = parser.parse_args()
    frame, _ = read_source(args.data_dir)
    split = pd.read_csv(REPO / "models" / "split.csv")
    files = set(split.loc[(split["split"] == args.part) & (split["source"] == "utkface"), "file"])
    sample = frame[frame["file"].isin(files)].sample(args.faces, random_state=args.seed)
    maker = generated.Maker(list(frame["path"].sample(200, random_state=args.seed)), args.seed)
    predictors = {"": Predictor()}
    if args.flip_average:
        predictors["flip-averaged: "] = Predictor(flip_average=True)
    size = predictors[""].image_size
    ages, genders = sample["age"].to_numpy(float), sample["gender"].to_numpy(int)
    placed = [maker.pasted(path) for path in sample["path"]]
    detector = detectors.make_detector(args.detector)
    found = []
    for photo, truth in placed:
        hits = [face for face in detector.detect(photo) if generated.matches([face], [truth])[0]]
        found.append(hits[0] if hits else None)
    kept = np.array([face is not None for face in found])
    print(f"{args.detector} found {kept.sum()} of {len(kept)} {args.part} faces")
    geometry([truth for _, truth in placed], found)
    crops = np.stack([resize_face(Image.open(p).convert("RGB"), size) for p in sample["path"]])
    for label, predictor in predictors.items():
        print(f"\n{label or 'plain: '}")
        compare(placed, found, crops, predictor, args, ages, genders)


def compare(placed: list, found: list, crops: np.ndarray, predictor: Predictor, args, ages, genders) -> None:
    """Print age MAE and gender accuracy for each framing variant, for the crops, and the gap's sources."""
    size = predictor.image_size
    kept = np.array([face is not None for face in found])
    scale0, shift0 = faces.UTK_BOX_TO_CROP, faces.UTK_CENTRE_BELOW_EYE_MOUTH
    try:
        for scale in map(float, args.scales.split(",")):
            for shift in map(float, args.shifts.split(",")):
                faces.UTK_BOX_TO_CROP, faces.UTK_CENTRE_BELOW_EYE_MOUTH = scale0 * scale, shift0 + shift
                cut = [np.asarray(faces.crop_face(p, f, size)) for (p, _), f in zip(placed, found) if f is not None]
                estimates = predictor.estimate(np.stack(cut))
                mae = np.abs(estimates.ages - ages[kept]).mean()
                right = ((estimates.females >= 0.5).astype(int) == genders[kept]).mean()
                print(
                    f"side x{scale:.2f}, centre {shift:+.2f} sides lower: age MAE {mae:.3f}, gender {100 * right:.1f}%"
                )
    finally:
        faces.UTK_BOX_TO_CROP, faces.UTK_CENTRE_BELOW_EYE_MOUTH = scale0, shift0
    estimates = predictor.estimate(crops)
    right = ((estimates.females >= 0.5).astype(int) == genders).mean()
    print(f"as crops: age MAE {np.abs(estimates.ages - ages).mean():.3f}, gender {100 * right:.1f}%")
    gap_sources(placed, found, predictor, estimates.females[kept] >= 0.5, ages[kept], genders[kept])


def gap_sources(placed: list, found: list, predictor: Predictor, crop_calls, ages, genders) -> None:
    """Print how far the photo path's cut lands from the crops path when each part of its framing
    (side, centre, roll) is replaced by the truth: the pasted square's."""
    variants = {
        "the detector's framing": lambda truth, framed: framed,
        "the square's own side": lambda truth, framed: (*framed[:2], truth[2], framed[3]),
        "the square's own centre": lambda truth, framed: (truth[0], truth[1], *framed[2:]),
        "no roll": lambda truth, framed: (*framed[:3], 0.0),
        "all three (the pasted square)": lambda truth, framed: (*truth, 0.0),
    }
    pairs = [
        (photo, (x + side / 2, y + side / 2, side), faces.framing(face))
        for (photo, (x, y, side, _)), face in zip(placed, found)
        if face is not None
    ]
    for label, choose in variants.items():
        cuts = [
            np.asarray(faces.cut_framed(photo, *choose(truth, framed), predictor.image_size))
            for photo, truth, framed in pairs
        ]
        estimates = predictor.estimate(np.stack(cuts))
        calls = estimates.females >= 0.5
        print(
            f"{label}: age MAE {np.abs(estimates.ages - ages).mean():.3f}, gender {100 * (calls == genders).mean():.2f}%, "
            f"gender calls differing from the crops path {100 * (calls != crop_calls).mean():.2f}%"
        )


def geometry(truths: list[tuple], found: list[faces.Face | None]) -> None:
    """Print where today's framing puts the crop against the pasted square it should reproduce."""
    log_side, across, down, roll, box = [], [], [], [], []
    for (x, y, side, _), face in zip(truths, found):
        if face is None:
            continue
        cx, cy, crop_side, angle = faces.framing(face)
        rad = math.radians(angle)
        dx, dy = (x + side / 2) - cx, (y + side / 2) - cy
        log_side.append(math.log(crop_side / side))
        across.append((dx * math.cos(rad) + dy * math.sin(rad)) / side)
        down.append((-dx * math.sin(rad) + dy * math.cos(rad)) / side)
        roll.append(angle)
        box.append(face.side / side)

    def spread(values: list[float]) -> str:
        low, mid, high = np.percentile(values, [10, 50, 90])
        return f"median {mid:+.3f} (10-90%: {low:+.3f} .. {high:+.3f})"

    print(f"crop side vs the pasted square, log ratio: {spread(log_side)}")
    print(f"true centre from the crop centre, in square sides: across {spread(across)}, down {spread(down)}")
    print(f"roll levelled, degrees: {spread(roll)}")
    print(f"detector box side / square side: median {np.median(box):.3f} (faces.UTK_BOX_TO_CROP = 1 / that)")


if __name__ == "__main__":
    main()
