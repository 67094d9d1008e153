"""Every face detector on the same generated photos: recall, false positives, speed, and accuracy
through the photo path.

    python benchmarks/detectors.py ../shared/datasets/utkface [--photos 60] [--accuracy 400]
                                   [--detectors mtcnn,blazeface] [--json out.json]

Photos are made from UTKFace crops pasted on the face-less example photos (each face's MTCNN-style
box is ``1 / faces.UTK_BOX_TO_CROP`` of the pasted crop, as measured there), saved as JPEG and decoded
as a scan would:

- portraits: one face of 100-300 px on a 1024x768 photo;
- groups: 5-20 faces of 24-80 px on one 1024x768 photo (detected with --min-face 20);
- rotated: portraits with the face turned 10-30 degrees either way;
- grey and dark: portraits in greyscale, or at a third of the brightness;
- no faces: the backgrounds alone (cropped, zoomed, flipped, greyscale) and noise textures.

A face counts as found when a detection's centre lies inside its pasted square and its size is
within a factor of 2. Speed: single-thread detection milliseconds per photo on portraits and
groups, and end-to-end ``scan`` photos/s (all cores, the shipped model) on 1 MP and 12 MP photos
with 4 faces each. Accuracy: UTKFace test faces (``models/split.csv``) scanned as portraits against
the same faces given as crops (``--detector none``), and the pasted square cut back out of the photo
(what pasting, resizing and JPEG cost without any detector): age MAE and gender accuracy of each.
Ratios are against the first detector listed (MTCNN, the default before BlazeFace); timings drift on a
shared machine. Last comes a Markdown table of the targets a detector must meet against that first one
(photos/s at 1 MP and 12 MP, recall, false faces, and with ``--accuracy`` the photo path against crops).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter, ImageOps

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.scanning import detectors, faces  # noqa: E402
from agebatch.scanning.options import ScanOptions  # noqa: E402
from agebatch.scanning.predictor import Predictor  # noqa: E402
from agebatch.scanning.scanner import scan_to_file  # noqa: E402
from agebatch.training.sources import read_source  # noqa: E402

BOX_PER_CROP = 1 / faces.UTK_BOX_TO_CROP  # MTCNN's box side over a UTKFace crop's side
BACKGROUNDS = ("coffee.png", "rocket.jpg", "chelsea.png")
SIZE = (1024, 768)


class Maker:
    """Seeded photo generator: backgrounds, pasted faces, JPEG round trip."""

    def __init__(self, crops: list[Path], seed: int) -> None:
        self.crops = crops
        self.rng = np.random.default_rng(seed)
        self.backgrounds = [Image.open(REPO / "examples" / "sources" / n).convert("RGB") for n in BACKGROUNDS]

    def background(self, size=SIZE) -> Image.Image:
        base = self.backgrounds[int(self.rng.integers(len(self.backgrounds)))]
        zoom = float(self.rng.uniform(1.0, 1.6))
        w, h = base.width / zoom, base.height / zoom
        x, y = float(self.rng.uniform(0, base.width - w)), float(self.rng.uniform(0, base.height - h))
        photo = base.resize(size, Image.Resampling.BILINEAR, box=(x, y, x + w, y + h))
        return ImageOps.mirror(photo) if self.rng.random() < 0.5 else photo

    def face(self, box_side: float, angle: float = 0.0) -> tuple[Image.Image, Image.Image]:
        """A crop whose face box is ``box_side`` px, turned by ``angle``, and its paste mask."""
        crop = Image.open(self.crops[int(self.rng.integers(len(self.crops)))]).convert("RGB")
        side = max(8, round(box_side / BOX_PER_CROP))
        crop = crop.resize((side, side), Image.Resampling.BILINEAR)
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(max(1, side // 30)))
        if angle:
            crop, mask = crop.rotate(angle, Image.Resampling.BILINEAR), mask.rotate(angle, Image.Resampling.BILINEAR)
        return crop, mask

    def portrait(self, angle: float = 0.0, box_range=(100, 300), size=SIZE) -> tuple[Image.Image, list[tuple]]:
        photo = self.background(size)
        box = float(self.rng.uniform(*box_range))
        crop, mask = self.face(box, angle)
        x = int(self.rng.integers(0, size[0] - crop.width))
        y = int(self.rng.integers(0, size[1] - crop.height))
        photo.paste(crop, (x, y), mask)
        return photo, [(x, y, crop.width, box)]

    def pasted(self, path, size=SIZE) -> tuple[Image.Image, tuple]:
        """One labelled crop pasted whole (a square of 150-260 px, no mask) on a photo, as a JPEG, and
        where it went: (x, y, square side, face box side)."""
        photo = self.background(size)
        side = int(self.rng.integers(150, 260))
        crop = Image.open(path).convert("RGB").resize((side, side), Image.Resampling.BICUBIC)
        x, y = int(self.rng.integers(0, size[0] - side)), int(self.rng.integers(0, size[1] - side))
        photo.paste(crop, (x, y))
        return jpeg(photo), (x, y, side, side * BOX_PER_CROP)

    def group(self, size=SIZE) -> tuple[Image.Image, list[tuple]]:
        photo = self.background(size)
        count = int(self.rng.integers(5, 21))
        cells = int(math.ceil(math.sqrt(count * 1.5)))
        cw, ch = size[0] // cells, size[1] // cells
        truth = []
        for cell in self.rng.choice(cells * cells, size=count, replace=False):
            box = float(self.rng.uniform(24, 80))
            crop, mask = self.face(box)
            col, row = divmod(int(cell), cells)
            x = col * cw + int(self.rng.integers(0, max(1, cw - crop.width)))
            y = row * ch + int(self.rng.integers(0, max(1, ch - crop.height)))
            photo.paste(crop, (x, y), mask)
            truth.append((x, y, crop.width, box))
        return photo, truth

    def no_face(self) -> Image.Image:
        if self.rng.random() < 0.2:
            noise = self.rng.integers(0, 255, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8)
            return Image.fromarray(noise).resize(SIZE, Image.Resampling.BICUBIC)
        photo = self.background()
        return ImageOps.grayscale(photo).convert("RGB") if self.rng.random() < 0.3 else photo


def jpeg(photo: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_sets(maker: Maker, count: int) -> dict[str, list]:
    def dark(photo):
        return Image.eval(photo, lambda v: v // 3)

    sets = {
        "portraits": [maker.portrait() for _ in range(count)],
        "groups": [maker.group() for _ in range(max(1, count // 3))],
        "rotated": [maker.portrait(float(maker.rng.choice([-1, 1]) * maker.rng.uniform(10, 30))) for _ in range(count)],
        "grey_dark": [],
        "no_face": [(maker.no_face(), []) for _ in range(count)],
    }
    for i in range(count):
        photo, truth = maker.portrait()
        photo = ImageOps.grayscale(photo).convert("RGB") if i % 2 else dark(photo)
        sets["grey_dark"].append((photo, truth))
    return {name: [(jpeg(photo), truth) for photo, truth in items] for name, items in sets.items()}


def matches(found: list[faces.Face], truth: list[tuple]) -> tuple[int, int]:
    """(faces of ``truth`` found, detections matching no face)."""
    used, hits = set(), 0
    for x, y, side, box in truth:
        for i, face in enumerate(found):
            cx, cy = face.x + face.width / 2, face.y + face.height / 2
            inside = x <= cx <= x + side and y <= cy <= y + side
            if i not in used and inside and 0.5 <= face.side / box <= 2.0:
                used.add(i)
                hits += 1
                break
    return hits, len(found) - len(used)


def recall_and_speed(name: str, sets: dict[str, list]) -> dict:
    figures: dict = {}
    for set_name, items in sets.items():
        min_face = 20 if set_name == "groups" else 40
        detector = detectors.make_detector(name, min_face=min_face)
        detector.detect(items[0][0])  # load the network outside the timing
        hits = total = false = 0
        started = time.perf_counter()
        for photo, truth in items:
            found = detector.detect(photo)
            h, f = matches(found, truth)
            hits, false, total = hits + h, false + f, total + len(truth)
        seconds = time.perf_counter() - started
        if total:
            figures[f"{set_name}_recall"] = hits / total
        figures[f"{set_name}_false_positives_per_photo"] = false / len(items)
        figures[f"{set_name}_detect_ms_per_photo"] = 1000 * seconds / len(items)
    return figures


def write_photos(maker: Maker, folder: Path, count: int, size: tuple[int, int]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = maker.background(size)
        for k in range(4):
            crop, mask = maker.face(float(maker.rng.uniform(0.08, 0.15)) * size[0])
            x = int((k + 0.05) * size[0] / 4)
            y = int(maker.rng.uniform(0.05, 0.55) * size[1])
            photo.paste(crop, (x, y), mask)
        photo.save(folder / f"photo_{i:04d}.jpg", quality=90)
    return folder


def end_to_end(name: str, folder: Path, predictor: Predictor, out: Path) -> dict:
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    summary = scan_to_file([folder], out, predictor, ScanOptions(detector=name))
    seconds = time.perf_counter() - started
    rows = pd.read_csv(out)
    return {
        "photos_per_s": summary.images / seconds,
        "faces_per_photo": float((rows["status"] == "ok").sum()) / summary.images,
    }


def accuracy(names: list[str], frame: pd.DataFrame, predictor: Predictor, maker: Maker) -> dict:
    """UTKFace test faces pasted as portraits and scanned per detector, against the crops path."""
    crops = np.stack(
        [np.asarray(Image.open(p).convert("RGB").resize((predictor.image_size,) * 2)) for p in frame["path"]]
    )
    truth_age, truth_gender = frame["age"].to_numpy(float), frame["gender"].to_numpy(int)
    figures = {}

    def score(label: str, ages: np.ndarray, genders: np.ndarray, found: np.ndarray) -> None:
        figures[f"{label}_found"] = float(found.mean())
        figures[f"{label}_age_mae"] = float(np.abs(ages[found] - truth_age[found]).mean())
        figures[f"{label}_gender_accuracy"] = float((genders[found] == truth_gender[found]).mean())

    estimates = predictor.estimate(crops)
    score("crops", estimates.ages, (estimates.females >= 0.5).astype(int), np.ones(len(frame), bool))
    placed = [maker.pasted(path) for path in frame["path"]]
    # The pasted square cut back out (no detector): what pasting, resizing and JPEG alone cost.
    pasted = np.stack(
        [
            np.asarray(photo.crop((x, y, x + side, y + side)).resize((predictor.image_size,) * 2))
            for photo, (x, y, side, _) in placed
        ]
    )
    back = predictor.estimate(pasted)
    score("pasted_square", back.ages, (back.females >= 0.5).astype(int), np.ones(len(frame), bool))
    for name in names:
        detector = detectors.make_detector(name)
        ages, genders, found = np.zeros(len(frame)), np.zeros(len(frame), int), np.zeros(len(frame), bool)
        for i, (photo, truth) in enumerate(placed):
            hits, cut = faces.find_faces(photo, detector, predictor.image_size)
            for face, crop in zip(hits, cut, strict=True):
                if matches([face], [truth])[0]:
                    p = predictor.estimate(crop[None])
                    ages[i], genders[i], found[i] = p.ages[0], int(p.females[0] >= 0.5), True
                    break
        score(name, ages, genders, found)
        both = found  # the same faces through both paths
        figures[f"{name}_age_mae_same_faces_crops"] = float(np.abs(estimates.ages[both] - truth_age[both]).mean())
    return figures


def targets_table(figures: dict, names: list[str]) -> str:
    """Each detector after the first (the baseline) against the detector targets, as a Markdown table."""
    base = figures[names[0]]

    def false_faces(f: dict) -> float:
        return sum(v for k, v in f.items() if k.endswith("false_positives_per_photo"))

    def accuracy_gap(name: str) -> tuple[float, float] | None:
        acc = figures.get("accuracy", {})
        if f"{name}_age_mae" not in acc:
            return None
        age = acc[f"{name}_age_mae"] - acc[f"{name}_age_mae_same_faces_crops"]
        return age, acc["crops_gender_accuracy"] - acc[f"{name}_gender_accuracy"]

    lines = [f"| target | {names[0]} | " + " | ".join(names[1:]) + " |", "|---|" + "---:|" * len(names)]

    def row(label: str, show, met) -> None:
        cells = [f"{show(figures[n], n)} ({'met' if met(figures[n], n) else 'not met'})" for n in names[1:]]
        lines.append(f"| {label} | {show(base, names[0])} | " + " | ".join(cells) + " |")

    one, twelve = "scan_1mp_photos_per_s", "scan_12mp_photos_per_s"
    row(
        f"1 MP scan, 4 faces: >= 10 photos/s and >= 3x {names[0]}",
        lambda f, n: f"{f[one]:.2f} photos/s ({f[one] / base[one]:.2f}x)",
        lambda f, n: f[one] >= 10 and f[one] >= 3 * base[one],
    )
    row("12 MP scan, 4 faces: >= 5 photos/s", lambda f, n: f"{f[twelve]:.2f} photos/s", lambda f, n: f[twelve] >= 5)
    row(
        f"groups found: within 3 points of {names[0]}",
        lambda f, n: f"{100 * f['groups_recall']:.1f}%",
        lambda f, n: f["groups_recall"] >= base["groups_recall"] - 0.03,
    )
    row(
        "portraits found: >= 99%",
        lambda f, n: f"{100 * f['portraits_recall']:.1f}%",
        lambda f, n: f["portraits_recall"] >= 0.99,
    )
    row(
        f"false faces per photo, all sets summed: no more than {names[0]}",
        lambda f, n: f"{false_faces(f):.3f}",
        lambda f, n: false_faces(f) <= false_faces(base) + 1e-9,
    )
    if all(accuracy_gap(n) for n in names):
        row(
            "photo path against crops (--accuracy): age within 0.1 years, gender within 0.3 points",
            lambda f, n: f"{accuracy_gap(n)[0]:+.3f} years, {-100 * accuracy_gap(n)[1]:+.2f} points",
            lambda f, n: accuracy_gap(n)[0] <= 0.1 and accuracy_gap(n)[1] <= 0.003,
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--photos", type=int, default=60)
    parser.add_argument("--accuracy", type=int, default=400, help="UTKFace test faces for the accuracy check (0: skip)")
    parser.add_argument("--scan-photos", type=int, default=24, help="photos per size for the end-to-end scans")
    parser.add_argument("--detectors", default="mtcnn,blazeface")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    names = args.detectors.split(",")
    frame, _ = read_source(args.data_dir)
    split = pd.read_csv(REPO / "models" / "split.csv")
    test_files = set(split.loc[(split["split"] == "test") & (split["source"] == "utkface"), "file"])
    test = frame[frame["file"].isin(test_files)]
    train_like = frame[~frame["file"].isin(test_files)]
    maker = Maker(list(train_like["path"].sample(2000, random_state=args.seed)), args.seed)
    sets = make_sets(maker, args.photos)
    figures: dict = {name: recall_and_speed(name, sets) for name in names}
    predictor = Predictor()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        folders = {
            "1mp": write_photos(maker, work / "1mp", args.scan_photos, (1155, 866)),
            "12mp": write_photos(maker, work / "12mp", max(4, args.scan_photos // 3), (4000, 3000)),
        }
        for name in names:
            for label, folder in folders.items():
                for key, value in end_to_end(name, folder, predictor, work / "out.csv").items():
                    figures[name][f"scan_{label}_{key}"] = value
    if args.accuracy:
        sample = test.sample(min(args.accuracy, len(test)), random_state=args.seed)
        figures["accuracy"] = accuracy(names, sample, predictor, maker)
    base = figures[names[0]]
    for name in names[1:]:
        for key in [k for k in base if k.endswith(("photos_per_s",))]:
            figures[name][f"{key}_ratio_to_{names[0]}"] = figures[name][key] / base[key]
        for key in [k for k in base if k.endswith("detect_ms_per_photo")]:
            figures[name][f"{key.replace('_ms_per_photo', '')}_speedup_vs_{names[0]}"] = base[key] / figures[name][key]
    print(json.dumps(figures, indent=1))
    if len(names) > 1:
        print(targets_table(figures, names))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
