"""Scale-out benchmark: one machine's scan against --ray (local cluster) and against --shard, in one run.

    python benchmarks/scale_out.py [--model M] [--crops N] [--photos N] [--json out.json]

Prints (and writes as JSON) for crops (--detector none) and ~1 MP photos (the default detector):
- local: the scan in this process, model loaded (images/s);
- ray: the same scan through ``scan_to_file(..., ray=...)`` on a local Ray cluster with this machine's
  cores, after Ray has started (its start-up time is printed on its own), and its ratio to local;
- ray_parquet: the same into a Parquet dataset, the workers writing the parts themselves;
- shards: two ``agebatch scan --shard I/2`` processes at once, then ``agebatch merge``, wall time with
  process start, and its ratio to local.
Absolute timings drift on a shared machine; compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from throughput import face_crops, photos  # noqa: E402

from agebatch.modelfile.load import default_model_path  # noqa: E402
from agebatch.scanning.options import DEFAULT_DETECTOR, ScanOptions  # noqa: E402
from agebatch.scanning.predictor import Predictor  # noqa: E402
from agebatch.scanning.scanner import scan_to_file  # noqa: E402


def local(folder: Path, out: Path, predictor, detector: str) -> float:
    started = time.perf_counter()
    summary = scan_to_file([folder], out, predictor, ScanOptions(detector=detector))
    return summary.images / (time.perf_counter() - started)


def on_ray(folder: Path, out: Path | str, predictor, detector: str, actors: int | None = None) -> float:
    from agebatch.scanning.distributed import RayOptions
    from agebatch.scanning.options import OutputOptions

    started = time.perf_counter()
    output = OutputOptions(str(out))
    summary = scan_to_file([folder], output, predictor, ScanOptions(detector=detector), ray=RayOptions(actors=actors))
    return summary.images / (time.perf_counter() - started)


def shards(folder: Path, out: Path, model: Path, detector: str, images: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parts = [out.with_name(f"{out.stem}.part{i}.csv") for i in range(2)]
    base = [sys.executable, "-m", "agebatch", "scan", str(folder), "--detector", detector, "--model", str(model), "-q"]
    started = time.perf_counter()
    running = [
        subprocess.Popen([*base, "--shard", f"{i}/2", "--jobs", "1", "--out", str(p)], env=env)
        for i, p in enumerate(parts)
    ]
    if any(process.wait() for process in running):
        raise RuntimeError("a shard failed")
    subprocess.run(
        [sys.executable, "-m", "agebatch", "merge", *map(str, parts), "--out", str(out), "-q"], env=env, check=True
    )
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--crops", type=int, default=2000)
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, help="the photos' detector")
    parser.add_argument("--ray-actors", type=int, default=None, help="model actors (default: the scan's default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = args.model or default_model_path()
    predictor = Predictor(model)
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    figures = {"ray_start_s": round(time.perf_counter() - started, 1), "engine": predictor.engine}
    with tempfile.TemporaryDirectory(prefix="agebatch-scale-") as work:
        work = Path(work)
        sets = {
            "crops": (face_crops(args.crops, work / "crops", None), "none", args.crops),
            "photos_1mp": (photos(args.photos, (1280, 800), work / "photos"), args.detector, args.photos),
        }
        for name, (folder, detector, count) in sets.items():
            local(folder, work / "warm.csv", predictor, detector)  # warm-up: detector and model loaded
            on_ray(folder, work / "warm-ray.csv", predictor, detector, args.ray_actors)  # warm-up
            row = {
                "local_per_s": local(folder, work / f"{name}.csv", predictor, detector),
                "ray_per_s": on_ray(folder, work / f"{name}-ray.csv", predictor, detector, args.ray_actors),
                "ray_parquet_per_s": on_ray(folder, f"{work / name}-ray/", predictor, detector, args.ray_actors),
                "two_shards_per_s": shards(folder, work / f"{name}-shards.csv", model, detector, count),
            }
            row["ray_ratio"] = row["ray_per_s"] / row["local_per_s"]
            row["ray_parquet_ratio"] = row["ray_parquet_per_s"] / row["local_per_s"]
            row["shards_ratio"] = row["two_shards_per_s"] / row["local_per_s"]
            figures[name] = {k: round(v, 3) for k, v in row.items()}
            print(name, json.dumps(figures[name]), flush=True)
    print(json.dumps(figures, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
