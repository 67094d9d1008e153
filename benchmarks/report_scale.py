"""How long a report of N result rows takes, how big it is, and how much memory it needs.

    python benchmarks/report_scale.py [--rows 1000000] [--parquet]

Writes a synthetic results CSV (faces spread over 1,000 folders, 2% no-face and 1% error rows), then
times ``build_report`` + ``write_report`` for HTML and JSON and reports the peak RSS of that step.
With ``--parquet`` the same rows are also written as a Parquet dataset (parts of 50,000 rows, as
``scan --out DIR/`` writes them) and reported on in a process of their own, for comparison.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agebatch.reporting.aggregate import build_report, write_report  # noqa: E402
from agebatch.reporting.options import ReportOptions  # noqa: E402
from agebatch.results import ALL_COLUMNS  # noqa: E402


def synthetic(rows: int, path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    folder = rng.integers(0, 1000, rows)
    status = rng.choice(["ok", "no_face", "error"], rows, p=[0.97, 0.02, 0.01])
    ok = status == "ok"
    frame = pd.DataFrame(
        {
            "path": [f"photos/site{f // 100}/cam{f}/img_{i}.jpg" for i, f in enumerate(folder)],
            "face": np.where(ok, 0, -1),
            "x": 10,
            "y": 20,
            "width": 80,
            "height": 90,
            "face_score": 0.99,
            "age": np.where(ok, np.clip(rng.normal(35, 15, rows), 1, 100).round(1), np.nan),
            "gender": np.where(ok, rng.choice(["male", "female"], rows), ""),
            "gender_prob": np.where(ok, rng.uniform(0.5, 1.0, rows).round(4), np.nan),
            "status": status,
            "error": np.where(status == "error", "not a recognised image", ""),
            "faces": ok.astype(int),
            "female_prob": 0.5,
            "file_size": 1000,
            "file_mtime": 1.0,
        }
    )
    frame["age_low"] = (frame["age"] - 8).clip(lower=0).round(1)
    frame["age_high"] = (frame["age"] + 8).round(1)
    days = rng.integers(0, 365, rows)  # capture dates over a year: the report's time section has weeks
    frame["taken_at"] = np.where(ok, [f"2024-{1 + d // 31 % 12:02d}-{1 + d % 28:02d}T12:00:00" for d in days], "")
    frame["face"] = frame["face"].astype(object).where(ok, "")
    frame[list(ALL_COLUMNS)].to_csv(path, index=False)
    return frame


def to_dataset(frame: pd.DataFrame, folder: Path, part_rows: int = 50_000) -> None:
    """The same rows as a Parquet dataset with the scan's schema (numbers as numbers, empty as null)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from agebatch.results.parquet import arrow_schema

    schema = arrow_schema()
    folder.mkdir()
    typed = frame[list(ALL_COLUMNS)].replace({"": None})
    typed["face"] = pd.to_numeric(typed["face"]).astype("Int32")
    for number, start in enumerate(range(0, len(typed), part_rows)):
        table = pa.Table.from_pandas(typed.iloc[start : start + part_rows], schema=schema, preserve_index=False)
        pq.write_table(table, folder / f"part-{number:05d}.parquet", compression="zstd")


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; unlike ru_maxrss it does not inherit the parent's peak across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv", type=Path, help="report on this file (or Parquet dataset) instead of generating one")
    parser.add_argument("--parquet", action="store_true", help="also report on the same rows as a Parquet dataset")
    args = parser.parse_args()
    if args.csv is None:  # generate in a child process, so the peak RSS below is the report's alone
        with tempfile.TemporaryDirectory() as folder:
            csv_path = Path(folder) / "results.csv"
            frame = synthetic(args.rows, csv_path)
            inputs = [csv_path]
            if args.parquet:
                to_dataset(frame, Path(folder) / "dataset")
                inputs.append(Path(folder) / "dataset")
            del frame
            import subprocess

            for path in inputs:
                subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--csv", str(path)], check=True)
        return
    csv_path = args.csv
    with tempfile.TemporaryDirectory() as folder:
        before = peak_rss_mb()
        started = time.perf_counter()
        data = build_report([csv_path], ReportOptions(depth=2))
        built = time.perf_counter()
        html = write_report(data, Path(folder) / "report.html")
        done = time.perf_counter()
        write_report(data, Path(folder) / "report.json", fmt="json")
        peak = peak_rss_mb()
        size = sum(p.stat().st_size for p in csv_path.rglob("*")) if csv_path.is_dir() else csv_path.stat().st_size
        kind = "Parquet dataset" if csv_path.is_dir() else "CSV"
        print(f"rows: {args.rows:,} ({kind} {size / 1e6:.0f} MB)")
        print(f"aggregate: {built - started:.1f} s, render HTML: {done - built:.1f} s, total {done - started:.1f} s")
        print(f"report.html: {html.stat().st_size / 1e6:.2f} MB; folders: {len(data['overall']['folders'])}")
        print(f"peak RSS: {peak:.0f} MB (after imports: {before:.0f} MB)")


if __name__ == "__main__":
    main()
