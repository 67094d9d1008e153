"""How often the default detector finds the face in a portrait photo.

    python benchmarks/detection_rate.py ../shared/datasets/utkface [--samples 500]

Each sampled UTKFace crop is placed, at a random size (100-300 px) and position, on a 640x480 background
(one of the example photos without faces) and saved as a JPEG, as a loose portrait would be; the scan
detector (MTCNN, default --min-face and --min-score) must find a face overlapping the pasted crop.
The raw crops are also tried as they are. Prints both rates and lists misses.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

from agebatch.scanning import faces  # noqa: E402
from agebatch.training.dataset import read_labels  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-score", type=float, default=0.9)
    args = parser.parse_args()
    frame, _ = read_labels(args.data_dir)
    rng = np.random.default_rng(args.seed)
    picks = frame.iloc[rng.choice(len(frame), size=min(args.samples, len(frame)), replace=False)]
    backgrounds = [
        Image.open(REPO / "examples" / "sources" / n).convert("RGB").resize((640, 480))
        for n in ("coffee.png", "rocket.jpg", "chelsea.png")
    ]
    detector = faces.MtcnnDetector(min_score=args.min_score)
    crops_only = faces.MtcnnDetector(min_face=20)
    found_photo = found_crop = 0
    misses = []
    for i, name in enumerate(picks["file"]):
        crop = Image.open(args.data_dir / name).convert("RGB")
        side = int(rng.integers(100, 300))
        x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
        canvas = backgrounds[i % len(backgrounds)].copy()
        canvas.paste(crop.resize((side, side)), (x, y))
        buffer = io.BytesIO()
        canvas.save(buffer, "JPEG", quality=90)
        photo = Image.open(buffer).convert("RGB")
        hits = [
            f
            for f in detector.detect(photo)
            if x - side * 0.2 < f.x + f.width / 2 < x + side * 1.2
            and y - side * 0.2 < f.y + f.height / 2 < y + side * 1.2
        ]
        found_photo += bool(hits)
        if not hits:
            misses.append(name)
        found_crop += bool(crops_only.detect(crop))
    n = len(picks)
    print(f"portraits on backgrounds: face found in {found_photo}/{n} = {100 * found_photo / n:.1f}%")
    print(f"raw 200x200 crops (min-face 20): face found in {found_crop}/{n} = {100 * found_crop / n:.1f}%")
    if misses:
        print("misses:", ", ".join(misses[:20]))


if __name__ == "__main__":
    main()
