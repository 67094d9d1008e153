"""Scan throughput benchmark: one command, one run, every throughput figure and their ratios.

    python benchmarks/throughput.py [--model M] [--crops N] [--photos N] [--crops-dir DIR]
                                    [--memory-images N] [--json out.json]

Prints and writes (JSON):
1. model-only faces/s (128x128 faces already in memory, batch 64), with the scan's engine (the
   LiteRT twin when present) and with Keras, and their ratio;
2. crops end to end: faces/s of ``scan --detector none`` over 200x200 JPEG crops, with process start
   (a real ``agebatch`` subprocess) and without it (in-process, model already loaded);
3. photos end to end: photos/s of ``scan`` with the default detector on ~1 MP and ~12 MP JPEGs with
   several faces each;
4. attainable compute: GFLOP/s of a large float32 matrix product, the model's FLOPs per face, and
   compute efficiency = faces/s x FLOPs per face / matrix GFLOP/s;
5. peak resident memory of each scan subprocess (and of a 5x larger crops folder, for boundedness;
   ``--memory-images 100000`` adds a folder of that many crops, hard-linked, against 1,000);
6. each stage's milliseconds per crop on one core and its share (``--stages-only`` prints just these):
   reading the file, decoding the JPEG, EXIF orientation, RGB, crop and resize, the row as CSV;
7. the limit of 2 / 1 when inference already uses every core: one core's milliseconds per crop for
   decoding and resizing (and the bound that puts on 2 / 1 even with perfect parallelism), and
   pipeline only, faces/s of the crops scan with a model that costs nothing (decode, resize, rows,
   CSV on all cores) with the ceiling that puts on 2 / 1.
Absolute timings drift on a shared machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()

FACE_SOURCE = REPO / "examples" / "sources" / "astronaut.png"


def face_crops(count: int, folder: Path, source_dir: Path | None) -> Path:
    """200x200 JPEG face crops: from a UTKFace-style folder if given, else varied crops of the example face."""
    folder.mkdir(parents=True, exist_ok=True)
    if source_dir:
        files = sorted(p for p in source_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
        for i, path in enumerate(files):
            shutil.copy(path, folder / f"crop_{i:06d}.jpg")
        return folder
    base = Image.open(FACE_SOURCE).convert("RGB")
    rng = np.random.default_rng(0)
    for i in range(count):
        x, y, s = int(rng.integers(150, 190)), int(rng.integers(20, 60)), int(rng.integers(130, 170))
        crop = base.crop((x, y, x + s, y + s)).resize((200, 200)).rotate(float(rng.uniform(-8, 8)))
        crop.save(folder / f"crop_{i:06d}.jpg", quality=90)
    return folder


def photos(count: int, size: tuple[int, int], folder: Path, faces_per_photo: int = 4) -> Path:
    """Photos of ``size`` with several faces pasted on a textured background, saved as JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    head = Image.open(FACE_SOURCE).convert("RGB").crop((120, 0, 320, 240))
    background = Image.open(REPO / "examples" / "sources" / "coffee.png").convert("RGB").resize(size)
    rng = np.random.default_rng(1)
    width, height = size
    for i in range(count):
        canvas = background.copy()
        for k in range(faces_per_photo):
            side = int(width * rng.uniform(0.08, 0.16))
            x = int((k + 0.1) * width / faces_per_photo)
            y = int(rng.uniform(0.1, 0.6) * height)
            canvas.paste(head.resize((side, int(side * 1.2))), (x, y))
        canvas.save(folder / f"photo_{i:04d}.jpg", quality=90)
    return folder


def portraits(count: int, folder: Path, source_dir: Path | None) -> Path:
    """Loose portraits: one face (a UTKFace crop if ``source_dir`` is given, else the example face)
    filling about half of a ~500x500 JPEG, on a part of a face-less photo."""
    folder.mkdir(parents=True, exist_ok=True)
    if source_dir:
        files = sorted(p for p in source_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[-count:]
        heads = [Image.open(path).convert("RGB") for path in files]
    else:
        heads = [Image.open(FACE_SOURCE).convert("RGB").crop((120, 0, 320, 240))]
    background = Image.open(REPO / "examples" / "sources" / "coffee.png").convert("RGB").resize((1200, 800))
    rng = np.random.default_rng(2)
    for i in range(count):
        width, height = int(rng.integers(440, 560)), int(rng.integers(440, 560))
        left, top = int(rng.integers(0, background.width - width)), int(rng.integers(0, background.height - height))
        canvas = background.crop((left, top, left + width, top + height))
        side = int(min(width, height) * rng.uniform(0.45, 0.65))
        head = heads[i % len(heads)].resize((side, side))
        canvas.paste(head, (int(rng.integers(0, width - side)), int(rng.integers(0, height - side))))
        canvas.save(folder / f"portrait_{i:04d}.jpg", quality=90)
    return folder


def model_flops(model) -> int:
    """Multiply-adds x 2 of the convolution and dense layers (the model's arithmetic per face)."""
    from keras import layers

    total = 0

    def walk(layer):
        nonlocal total
        if hasattr(layer, "layers") and layer.layers:
            for inner in layer.layers:
                walk(inner)
            return
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            out_shape = layer.output.shape
            kernel = layer.kernel.shape
            if isinstance(layer, layers.DepthwiseConv2D):
                macs = out_shape[1] * out_shape[2] * out_shape[3] * kernel[0] * kernel[1]
            elif isinstance(layer, layers.Conv2D):
                macs = out_shape[1] * out_shape[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3]
            else:
                macs = int(np.prod(kernel))
            total += 2 * int(macs)

    walk(model)
    return total


def matmul_gflops(n: int = 2048, repeats: int = 5) -> dict:
    """Best-of GFLOP/s of an n x n float32 matrix product, with NumPy and with TensorFlow (the model's engine)."""
    import tensorflow as tf

    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    flops = 2 * n**3
    best_np = min(_timed(lambda: a @ b) for _ in range(repeats))
    ta, tb = tf.constant(a), tf.constant(b)
    tf.linalg.matmul(ta, tb).numpy()
    best_tf = min(_timed(lambda: tf.linalg.matmul(ta, tb).numpy()) for _ in range(repeats))
    return {"numpy": flops / best_np / 1e9, "tensorflow": flops / best_tf / 1e9}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


class NullPredictor:
    """Stands in for the model: answers instantly, so a scan with it costs only everything else."""

    image_size = 128
    engine = "none"
    flip_average = False

    @property
    def model_path(self) -> Path:
        from agebatch.modelfile.load import default_model_path

        return default_model_path()

    def estimate(self, faces: np.ndarray):
        from agebatch.scanning.predictor import Estimates

        return Estimates(np.full(len(faces), 30.0), np.full(len(faces), 0.5))

    def predict_array(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        estimates = self.estimate(faces)
        return estimates.ages, estimates.females


def pipeline_only(folder: Path, out: Path) -> float:
    """Faces/s of scan --detector none with a model that costs nothing: discovery, decoding,
    resizing, threads, rows and CSV writing alone, on all cores.

    When inference already keeps every core busy the two costs add up per face, so the ceiling of
    crops/model-only is 1 / (1 + model_only / pipeline_only): decoding can overlap inference but not hide.
    """
    return max(scan_in_process(folder, out, NullPredictor(), detector="none")["faces_per_s"] for _ in range(3))


def decode_cost(folder: Path, image_size: int, limit: int = 500) -> float:
    """Seconds of one core per crop for scan's own per-image work (decode, EXIF, resize), in one thread.

    Even spread perfectly over C cores with no overhead, this bounds crops/model-only at
    1 / (1 + model_faces_per_s x this / C).
    """
    from agebatch.scanning.options import ScanOptions
    from agebatch.scanning.pipeline import Pipeline, Work

    pipeline = Pipeline(ScanOptions(detector="none"), image_size)
    files = sorted(str(p) for p in folder.iterdir())[:limit]
    return min(_timed(lambda: [pipeline.process(Work(f, None)) for f in files]) for _ in range(3)) / len(files)


def stage_costs(folder: Path, image_size: int, limit: int = 500) -> dict:
    """Milliseconds of one core per crop for each stage of a crop's way (best of three passes, one
    thread), and each stage's share of their sum: where the time goes besides the model."""
    import io

    from PIL import ImageOps

    from agebatch.results import encode_rows
    from agebatch.scanning import faces, images
    from agebatch.scanning.pipeline import Work, rows_of
    from agebatch.scanning.predictor import Estimates

    files = sorted(str(p) for p in folder.iterdir())[:limit]
    data = [Path(f).read_bytes() for f in files]
    decoded = [Image.open(io.BytesIO(d)) for d in data]
    for image in decoded:
        image.load()
    upright = [images.to_rgb(image) for image in decoded]
    whole = faces.WholeImageDetector()
    estimate = Estimates(np.array([30.0]), np.array([0.5]), np.array([25.0]), np.array([36.0]))
    works = [Work(f, None, faces=[faces.Face(0, 0, 200, 200, 1.0)]) for f in files]

    def decode_all():
        for d in data:
            Image.open(io.BytesIO(d)).load()

    stages = {
        "read the file": lambda: [Path(f).read_bytes() for f in files],
        "decode the JPEG": decode_all,
        "EXIF orientation": lambda: [ImageOps.exif_transpose(image, in_place=True) for image in decoded],
        "to RGB": lambda: [images.to_rgb(image) for image in decoded],
        "crop and resize": lambda: [faces.find_faces(image, whole, image_size) for image in upright],
        "row as CSV": lambda: [encode_rows(rows_of(w, estimate), "csv") for w in works],
    }
    costs = {name: min(_timed(fn) for _ in range(3)) / len(files) * 1000 for name, fn in stages.items()}
    total = sum(costs.values())
    return {name: {"ms": round(ms, 4), "share": round(ms / total, 3)} for name, ms in costs.items()}


def linked_copies(source: Path, folder: Path, count: int) -> Path:
    """A folder of ``count`` images made of hard links to ``source``'s files: a huge folder, no disk."""
    files = sorted(source.iterdir())
    for i in range(count):
        sub = folder / f"part{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        os.link(files[i % len(files)], sub / f"img_{i:07d}.jpg")
    return folder


def model_only(predictor, faces: int = 1024) -> float:
    batch = np.random.default_rng(0).integers(0, 255, (faces, predictor.image_size, predictor.image_size, 3), np.uint8)
    predictor.predict_array(batch[:128])  # trace and warm up
    best = min(_timed(lambda: predictor.predict_array(batch)) for _ in range(3))
    return faces / best


_LAUNCHER = """
import atexit, sys
PEAK_FILE = sys.argv[1]
def record():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(PEAK_FILE, "w").write(line.split()[1])
atexit.register(record)
sys.argv = ["agebatch"] + sys.argv[2:]
from agebatch.cli import main
main()
"""


def scan_subprocess(folder: Path, out: Path, model: Path, *extra: str) -> dict:
    """Run the real CLI; wall time includes process start. Peak RSS is the child's own VmHWM, read at
    its exit (ru_maxrss from wait4 would report the parent's peak, which Linux carries across exec)."""
    peak_file = out.with_suffix(".rss")
    command = [
        sys.executable,
        "-c",
        _LAUNCHER,
        str(peak_file),
        "scan",
        str(folder),
        "--out",
        str(out),
        "--quiet",
        "--model",
        str(model),
        *extra,
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"scan failed: {' '.join(command[3:])}")
    with open(out, encoding="utf-8") as handle:
        rows = sum(1 for _ in handle) - 1
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": int(peak_file.read_text()) / 1024}


def scan_in_process(folder: Path, out: Path, predictor, **options) -> dict:
    from agebatch.scanning.scanner import ScanOptions, scan_to_file

    started = time.perf_counter()
    summary = scan_to_file([folder], out, predictor, ScanOptions(**options))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "images": summary.images,
        "faces": summary.faces,
        "faces_per_s": summary.faces / seconds,
    }


def photo_speeds(args: argparse.Namespace) -> dict:
    """Photos/s of the default detector's scan, model loaded, best of three: loose portraits and
    1 MP photos with four faces (the figures the photo path is tuned on)."""
    from agebatch.modelfile.load import default_model_path
    from agebatch.scanning.predictor import Predictor

    predictor = Predictor(args.model or default_model_path(), batch_size=64)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="agebatch-bench-") as folder:
        sets = {
            "portraits": portraits(args.portraits, Path(folder) / "portraits", args.crops_dir),
            "1mp": photos(args.photos, (1280, 800), Path(folder) / "photos_1mp"),
        }
        for name, photo_folder in sets.items():
            runs = [scan_in_process(photo_folder, Path(folder) / f"{name}.csv", predictor) for _ in range(3)]
            best = min(runs, key=lambda run: run["seconds"])
            figures[f"{name}_per_s"] = round(best["images"] / best["seconds"], 2)
            figures[f"{name}_faces_found"] = best["faces"]
            figures[f"{name}_count"] = best["images"]
            sub = scan_subprocess(photo_folder, Path(folder) / f"{name}_sub.csv", predictor.model_path)
            figures[f"{name}_with_start_per_s"] = round(best["images"] / sub["seconds"], 2)
            figures[f"{name}_peak_rss_mb"] = round(sub["peak_rss_mb"])
    return figures


def main() -> None:
    from agebatch.modelfile.load import default_model_path
    from agebatch.scanning.predictor import Predictor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--crops-dir", type=Path, default=None, help="take crops from this UTKFace-style folder")
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument(
        "--memory-images",
        type=int,
        default=0,
        help="also scan a folder of this many crops (hard links) and compare its peak RSS with 1,000",
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "last-run.json")
    parser.add_argument("--stages-only", action="store_true", help="only each stage's cost per crop, and exit")
    parser.add_argument("--portraits", type=int, default=200, help="loose portraits (one face, ~500x500 JPEG)")
    parser.add_argument(
        "--photos-only", action="store_true", help="only photos/s of portraits and 1 MP photos (model loaded), and exit"
    )
    args = parser.parse_args()
    if args.photos_only:
        print(json.dumps(photo_speeds(args), indent=1))
        return
    if args.stages_only:
        with tempfile.TemporaryDirectory(prefix="agebatch-bench-") as folder:
            crops = face_crops(min(args.crops, 500), Path(folder) / "crops", args.crops_dir)
            print(json.dumps(stage_costs(crops, 128), indent=1))
        return
    model_path = args.model or default_model_path()
    predictor = Predictor(model_path, batch_size=64)
    figures: dict = {"model": str(model_path), "cpus": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="agebatch-bench-"))
    try:
        crops = face_crops(args.crops, work / "crops", args.crops_dir)
        big_crops = work / "crops5x"
        for k in range(5):
            shutil.copytree(crops, big_crops / f"copy{k}")
        photos_1mp = photos(args.photos, (1280, 800), work / "photos_1mp")
        photos_12mp = photos(max(4, args.photos // 4), (4000, 3000), work / "photos_12mp")

        figures["matmul_gflops"] = matmul_gflops()
        attainable = max(figures["matmul_gflops"].values())
        figures["flops_per_face"] = model_flops(predictor.model)
        figures["engine"] = predictor.engine
        figures["model_only_faces_per_s"] = model_only(predictor)
        keras_predictor = Predictor(model_path, batch_size=64, engine="keras")
        figures["model_only_keras_faces_per_s"] = model_only(keras_predictor)
        figures["ratio_engine_to_keras"] = figures["model_only_faces_per_s"] / figures["model_only_keras_faces_per_s"]

        inproc = scan_in_process(crops, work / "c_in.csv", predictor, detector="none")
        figures["crops_in_process_faces_per_s"] = inproc["faces"] / inproc["seconds"]
        sub = scan_subprocess(crops, work / "c_sub.csv", model_path, "--detector", "none")
        figures["crops_with_start_faces_per_s"] = sub["rows"] / sub["seconds"]
        figures["crops_peak_rss_mb"] = sub["peak_rss_mb"]
        sub5 = scan_subprocess(big_crops, work / "c5.csv", model_path, "--detector", "none")
        figures["crops_5x_peak_rss_mb"] = sub5["peak_rss_mb"]
        figures["crops_5x_faces_per_s"] = sub5["rows"] / sub5["seconds"]

        for name, folder in (("1mp", photos_1mp), ("12mp", photos_12mp)):
            run = scan_in_process(folder, work / f"p_{name}.csv", predictor)
            figures[f"photos_{name}_per_s"] = run["images"] / run["seconds"]
            figures[f"photos_{name}_faces_found"] = run["faces"]
            figures[f"photos_{name}_count"] = run["images"]
            sub = scan_subprocess(folder, work / f"p_{name}_sub.csv", model_path)
            figures[f"photos_{name}_peak_rss_mb"] = sub["peak_rss_mb"]

        if args.memory_images:
            small = scan_subprocess(
                linked_copies(crops, work / "m_small", 1000), work / "m1.csv", model_path, "--detector", "none"
            )
            large = scan_subprocess(
                linked_copies(crops, work / "m_large", args.memory_images),
                work / "m2.csv",
                model_path,
                "--detector",
                "none",
            )
            figures["memory_1000_peak_rss_mb"] = small["peak_rss_mb"]
            figures[f"memory_{args.memory_images}_peak_rss_mb"] = large["peak_rss_mb"]
            figures[f"memory_{args.memory_images}_rows"] = large["rows"]
            figures[f"memory_{args.memory_images}_faces_per_s"] = large["rows"] / large["seconds"]

        figures["decode_ms_per_crop_one_core"] = 1000 * decode_cost(crops, predictor.image_size)
        figures["stages_ms_per_crop_one_core"] = stage_costs(crops, predictor.image_size)
        figures["ratio_crops_bound_perfect_parallel"] = 1 / (
            1
            + figures["model_only_faces_per_s"] * figures["decode_ms_per_crop_one_core"] / 1000 / (os.cpu_count() or 1)
        )
        figures["pipeline_only_faces_per_s"] = pipeline_only(crops, work / "c_null.csv")
        figures["ratio_crops_ceiling"] = 1 / (
            1 + figures["model_only_faces_per_s"] / figures["pipeline_only_faces_per_s"]
        )
        figures["ratio_crops_to_model"] = figures["crops_in_process_faces_per_s"] / figures["model_only_faces_per_s"]
        figures["ratio_crops_to_ceiling"] = figures["ratio_crops_to_model"] / figures["ratio_crops_ceiling"]
        figures["ratio_crops_with_start_to_model"] = (
            figures["crops_with_start_faces_per_s"] / figures["model_only_faces_per_s"]
        )
        figures["efficiency_model_only"] = (
            figures["model_only_faces_per_s"] * figures["flops_per_face"] / (attainable * 1e9)
        )
        figures["efficiency_crops"] = (
            figures["crops_in_process_faces_per_s"] * figures["flops_per_face"] / (attainable * 1e9)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.json.write_text(json.dumps(figures, indent=2))
    width = max(map(len, figures))
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:.3f}" if isinstance(value, float) else f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
