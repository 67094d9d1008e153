"""Where BlazeFace puts its box and landmarks against MTCNN on the same faces.

    python benchmarks/detector_framing.py ../shared/datasets/utkface [--samples 200]

The crops the model sees were framed from MTCNN's box and landmarks (``faces.UTK_*``). BlazeFace's
box is a square of another size and place, and it gives one mouth point instead of two corners, so
``blazeface.as_mtcnn_face`` restates a BlazeFace face in MTCNN's terms with the constants this
prints: medians over UTKFace crops (each centred on a black canvas twice its size) where both
detectors find the face. Also prints how far the resulting crop centre and side land from MTCNN's.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

from agebatch.scanning import blazeface, faces  # noqa: E402
from agebatch.scanning.mtcnn import MtcnnDetector  # noqa: E402
from agebatch.training.sources import read_source  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame, _ = read_source(args.data_dir)
    rng = np.random.default_rng(args.seed)
    picks = frame.iloc[rng.choice(len(frame), size=min(args.samples, len(frame)), replace=False)]
    mtcnn = MtcnnDetector(min_face=20, min_score=0.9)
    blaze = blazeface.BlazeFaceDetector(min_face=20, min_score=0.5)
    measured: dict[str, list[float]] = {k: [] for k in ("width", "height", "side", "centre_above", "mouth_above")}
    crop_shift, crop_scale = [], []
    for path in picks["path"]:
        crop = Image.open(path).convert("RGB")
        canvas = Image.new("RGB", (2 * crop.width, 2 * crop.height))
        canvas.paste(crop, (crop.width // 2, crop.height // 2))
        m, b = mtcnn.detect(canvas), blaze.detect_raw(canvas)
        if not m or not b:
            continue
        face, (_, box, points) = m[0], b[0]
        side = math.sqrt((box[2] - box[0]) * (box[3] - box[1]))
        (lx, ly), (rx, ry) = points[0], points[1]
        angle = math.atan2(ry - ly, rx - lx)
        up = np.array([math.sin(angle), -math.cos(angle)])
        m_centre = np.array([face.x + face.width / 2, face.y + face.height / 2])
        b_centre = (box[:2] + box[2:]) / 2
        m_mouth = (np.array(face.landmarks["mouth_left"]) + np.array(face.landmarks["mouth_right"])) / 2
        measured["width"].append(face.width / side)
        measured["height"].append(face.height / side)
        measured["side"].append(face.side / side)
        measured["centre_above"].append(float((m_centre - b_centre) @ up) / side)
        measured["mouth_above"].append(float((m_mouth - points[3]) @ up) / side)
        restated = blazeface.as_mtcnn_face(box, points, 1.0)
        (mx, my, ms, _), (bx, by, bs, _) = faces.framing(face), faces.framing(restated)
        crop_shift.append(math.hypot(bx - mx, by - my) / ms)
        crop_scale.append(bs / ms)
    print(f"faces found by both: {len(measured['side'])} of {len(picks)}")
    for name, values in measured.items():
        print(
            f"  {name}: median {np.median(values):.3f} (IQR {np.percentile(values, 25):.3f}-{np.percentile(values, 75):.3f})"
        )
    print(
        f"crop from BlazeFace vs MTCNN: centre off by {np.median(crop_shift):.3f} crop sides (median), "
        f"side ratio {np.median(crop_scale):.3f}"
    )


if __name__ == "__main__":
    main()
