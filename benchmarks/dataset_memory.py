"""The memory a Parquet dataset's writer and a ``--ray`` scan's driver need as the rows grow.

    python benchmarks/dataset_memory.py [--rows 10000,100000,1000000] [--ray-images 1000,10000]

- writer: N generated rows (one face an image) through ``DatasetWriter`` into a local folder, each
  size in a process of its own: peak RSS and rows/s. Flat peaks mean the rows are not held.
- ray: a real ``--ray`` scan (``--detector none``, generated 64x64 crops, the shipped model) into a
  Parquet dataset (the workers write the parts) and into a CSV (the rows come back to the driver),
  each in a process of its own: the driver's peak RSS and images/s.
Absolute figures drift on a shared machine; compare the sizes of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def peak_rss_mb() -> float:
    from report_scale import peak_rss_mb as peak

    return peak()


def generated_rows(count: int):
    for i in range(count):
        yield [
            {
                "path": f"s3://bucket/site{i % 97}/img_{i:08d}.jpg",
                "face": 0,
                "x": 10,
                "y": 12,
                "width": 80,
                "height": 90,
                "face_score": 0.97,
                "age": 20 + i % 50 + 0.5,
                "gender": "female" if i % 2 else "male",
                "gender_prob": 0.9,
                "status": "ok",
                "error": None,
                "faces": 1,
                "female_prob": 0.9 if i % 2 else 0.1,
                "file_size": 30_000 + i % 1000,
                "file_mtime": 1.7e9 + i,
                "age_low": 15.0,
                "age_high": 60.0,
                "taken_at": None,
            }
        ]


def writer_child(rows: int) -> dict:
    from agebatch.results import open_writer

    with tempfile.TemporaryDirectory() as folder:
        before = peak_rss_mb()
        started = time.perf_counter()
        with open_writer(f"{folder}/ds/", "parquet") as writer:
            for image in generated_rows(rows):
                writer.write_image(image)
            writer.commit({"benchmark": True})
        seconds = time.perf_counter() - started
        parts = len(list(Path(folder, "ds").iterdir()))
    return {
        "rows": rows,
        "parts": parts,
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_after_imports_mb": round(before),
    }


def ray_child(images: int, out_kind: str) -> dict:
    import logging
    import os

    import ray

    from agebatch.modelfile.load import default_model_path
    from agebatch.scanning.distributed import RayOptions
    from agebatch.scanning.options import OutputOptions, ScanOptions
    from agebatch.scanning.predictor import Predictor
    from agebatch.scanning.scanner import scan_to_file
    from tests.imagegen import noise_image

    with tempfile.TemporaryDirectory() as folder:
        crops = Path(folder, "crops")
        crops.mkdir()
        for i in range(images):
            noise_image((64, 64), seed=i % 500).save(crops / f"c{i:07d}.jpg", quality=80)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        predictor = Predictor(default_model_path())
        out = f"{folder}/ds/" if out_kind == "parquet" else f"{folder}/r.csv"
        before = peak_rss_mb()
        started = time.perf_counter()
        summary = scan_to_file([crops], OutputOptions(out), predictor, ScanOptions(detector="none"), ray=RayOptions())
        seconds = time.perf_counter() - started
        assert summary.images == images, summary
    return {
        "images": images,
        "out": out_kind,
        "images_per_s": round(images / seconds, 1),
        "driver_peak_rss_mb": round(peak_rss_mb()),
        "rss_before_scan_mb": round(before),
    }


def child(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))  # Ray's workers import this checkout too
    result = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--ray-images", default="1000,10000")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size = args.child
        figures = writer_child(int(size)) if kind == "writer" else ray_child(int(size), kind)
        print(json.dumps(figures))
        return
    figures = {"writer": [], "ray": []}
    for rows in [int(n) for n in args.rows.split(",") if n]:
        figures["writer"].append(child(["--child", "writer", str(rows)]))
        print("writer", json.dumps(figures["writer"][-1]), flush=True)
    for images in [int(n) for n in args.ray_images.split(",") if n]:
        for kind in ("parquet", "csv"):
            figures["ray"].append(child(["--child", kind, str(images)]))
            print("ray", json.dumps(figures["ray"][-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
