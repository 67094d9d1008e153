"""Videos: how many people the tracker counts, how well it reads their ages, and how fast a video scans.

    python benchmarks/video_tracks.py [--people 24] [--seconds 90] [--speed 1280x720:60,...] [--json out.json]

- tracking: a generated 960x540 video (10 frames/s) of ``--people`` labelled UTKFace faces (from
  ../shared; the bundled portraits without it) crossing the picture one after another, up to three at
  once, each for 8-12 s. Scanned at 2 sampled frames/s with the shipped model: the tracks counted
  against the true number of people, and the per-person age MAE of the tracks' pooled estimates
  against scanning each person's best frame (their middle moment, saved as a JPEG) as a photo.
- speed: generated videos of the same kind (``--speed`` WIDTHxHEIGHT:SECONDS, each in a process of its
  own): video seconds scanned per wall-clock second at 2 sampled frames/s with the model loaded (all
  cores), and the process's peak RSS (the same for a longer video when memory stays flat).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.modelfile.load import default_model_path  # noqa: E402
from agebatch.scanning.options import ScanOptions  # noqa: E402
from agebatch.scanning.predictor import Predictor  # noqa: E402
from agebatch.scanning.scanner import scan_to_file  # noqa: E402
from tests.imagegen import PORTRAITS, write_video  # noqa: E402

UTKFACE = REPO.parent / "shared" / "datasets" / "utkface"


def labelled_faces(count: int, seed: int = 0) -> list[tuple[Image.Image, float]]:
    """``count`` faces with their true ages: UTKFace (age first in the name) or the bundled portraits."""
    rng = np.random.default_rng(seed)
    if UTKFACE.is_dir():
        names = sorted(p.name for p in UTKFACE.iterdir() if p.suffix == ".jpg")
        chosen = rng.choice(names, count, replace=False)
        return [(Image.open(UTKFACE / n).convert("RGB"), float(n.split("_")[0])) for n in chosen]
    faces = []
    for path in sorted(PORTRAITS.iterdir()):
        match = re.search(r"(\d+)-(\d+)", path.name)
        if match and "phone" not in path.name:
            faces.append((Image.open(path).convert("RGB"), (int(match[1]) + int(match[2])) / 2))
    return [faces[i % len(faces)] for i in range(count)]


def schedule(people: list, seconds: float, size: tuple[int, int], seed: int = 0) -> list[tuple]:
    """Who crosses when: evenly spread entries over three lanes (each walked one way, the middle one
    the other way), 8-12 s across, so that up to three people are on screen at once."""
    rng = np.random.default_rng(seed)
    width, height = size
    plan = []
    gap = (seconds - 12) / max(len(people) - 1, 1)
    for i, (face, age) in enumerate(people):
        start, duration = i * gap, float(rng.uniform(8, 12))
        side = int(rng.integers(110, 160))
        lane = [0.08, 0.38, 0.68][i % 3] * height
        y0, y1 = int(lane), int(lane + rng.integers(-20, 20))
        x0, x1 = (-side // 2, width - side // 2) if i % 3 != 1 else (width - side // 2, -side // 2)
        plan.append((face, start, min(start + duration, seconds), (x0, y0), (x1, y1), side, age))
    return plan


def best_frame_photos(plan: list, size: tuple[int, int], folder: Path) -> list[Path]:
    """Each person's middle moment as a photo of the whole frame (everyone on screen then included)."""
    rng = np.random.default_rng(0)
    background = Image.fromarray((rng.random((size[1], size[0], 3)) * 60 + 100).astype(np.uint8))
    paths = []
    for i, (_, start, stop, *_rest) in enumerate(plan):
        t, canvas = (start + stop) / 2, background.copy()
        for face, s, e, (x0, y0), (x1, y1), side, _age in plan:
            if s <= t < e:
                a = (t - s) / max(e - s, 1e-6)
                canvas.paste(face.resize((side, side)), (round(x0 + (x1 - x0) * a), round(y0 + (y1 - y0) * a)))
        paths.append(folder / f"person{i:03d}.jpg")
        canvas.save(paths[-1], quality=92)
    return paths


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def person_position(entry: tuple, t: float) -> tuple[float, float]:
    _, start, stop, (x0, y0), (x1, y1), side, _ = entry
    a = min(max((t - start) / max(stop - start, 1e-6), 0), 1)
    return x0 + (x1 - x0) * a + side / 2, y0 + (y1 - y0) * a + side / 2


def tracking(predictor, people: int, seconds: float, folder: Path) -> dict:
    size = (960, 540)
    plan = schedule(labelled_faces(people), seconds, size)
    video = write_video(folder / "people.mp4", [p[:6] for p in plan], size=size, fps=10, seconds=seconds)
    out = folder / "video.csv"
    scan_to_file([video], out, predictor, ScanOptions())
    tracks = [r for r in _rows(out) if r["status"] == "ok"]
    # Each track is the person of its lane (the box's height in the picture) whose time on screen
    # overlaps the track's most (the box is from the track's best frame, whose time is not kept).
    track_errors, matched = [], set()
    for row in tracks:
        first, last = float(row["t_first"]), float(row["t_last"])
        centre_y = float(row["y"]) + float(row["height"]) / 2
        lane = [i for i, p in enumerate(plan) if abs(person_position(p, (p[1] + p[2]) / 2)[1] - centre_y) < 80]
        overlap = {i: min(last, plan[i][2]) - max(first, plan[i][1]) for i in lane}
        if not overlap or max(overlap.values()) <= 0:
            continue
        i = max(overlap, key=overlap.get)
        matched.add(i)
        track_errors.append(abs(float(row["age"]) - plan[i][6]))
    photos = folder / "photos"
    photos.mkdir()
    photo_errors = []
    for i, path in enumerate(best_frame_photos(plan, size, photos)):
        out = folder / f"photo{i}.csv"
        scan_to_file([path], out, predictor, ScanOptions())
        faces = [r for r in _rows(out) if r["status"] == "ok"]
        t = (plan[i][1] + plan[i][2]) / 2
        x, y = person_position(plan[i], t)
        if faces:
            near = min(
                faces,
                key=lambda r: np.hypot(
                    float(r["x"]) + float(r["width"]) / 2 - x, float(r["y"]) + float(r["height"]) / 2 - y
                ),
            )
            photo_errors.append(abs(float(near["age"]) - plan[i][6]))
    return {
        "people": people,
        "tracks": len(tracks),
        "tracks_ratio": round(len(tracks) / people, 3),
        "people_matched": len(matched),
        "track_age_mae": round(float(np.mean(track_errors)), 2) if track_errors else None,
        "best_frame_photo_age_mae": round(float(np.mean(photo_errors)), 2) if photo_errors else None,
        "photos_with_the_face_found": len(photo_errors),
    }


def speed(predictor, size: tuple[int, int], seconds: float, folder: Path) -> dict:
    plan = schedule(labelled_faces(max(3, int(seconds / 4))), seconds, size, seed=1)
    video = write_video(folder / "speed.mp4", [p[:6] for p in plan], size=size, fps=25, seconds=seconds)
    scan_to_file([video], folder / "warm.csv", predictor, ScanOptions(video_fps=0.2))  # detector and model warm
    started = time.perf_counter()
    scan_to_file([video], folder / "speed.csv", predictor, ScanOptions())
    wall = time.perf_counter() - started
    return {
        "size": f"{size[0]}x{size[1]}",
        "video_seconds": seconds,
        "wall_seconds": round(wall, 2),
        "video_seconds_per_second": round(seconds / wall, 2),
        "peak_rss_mb": round(_peak_rss_mb()),
    }


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--speed", default="1280x720:60,1280x720:180,1920x1080:30", help="videos to time")
    parser.add_argument("--no-tracking", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--speed-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    predictor = Predictor(default_model_path())
    if args.speed_child:
        size, seconds = args.speed_child.split(":")
        with tempfile.TemporaryDirectory(prefix="agebatch-video-") as work:
            print(json.dumps(speed(predictor, tuple(map(int, size.split("x"))), float(seconds), Path(work))))
        return
    figures = {"faces": "UTKFace" if UTKFACE.is_dir() else "bundled portraits", "speed": []}
    if not args.no_tracking:
        with tempfile.TemporaryDirectory(prefix="agebatch-video-") as work:
            figures["tracking"] = tracking(predictor, args.people, args.seconds, Path(work))
        print("tracking", json.dumps(figures["tracking"]), flush=True)
    for spec in filter(None, args.speed.split(",")):
        run = subprocess.run(
            [sys.executable, __file__, "--speed-child", spec], check=True, capture_output=True, text=True
        )
        figures["speed"].append(json.loads(run.stdout.strip().splitlines()[-1]))
        print("speed", json.dumps(figures["speed"][-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
