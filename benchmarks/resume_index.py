"""How long --resume takes to read a large results file, and its peak memory.

Usage: python benchmarks/resume_index.py [ROWS]  (default 1,000,000; writes /tmp/agebatch-resume-bench.csv)
"""

import os
import resource
import sys
import time

from agebatch import results

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
path = "/tmp/agebatch-resume-bench.csv"
if not os.path.exists(path) or os.path.getsize(path) < 1000:
    with open(path, "w") as h:
        h.write(results.header("csv"))
        batch = []
        for i in range(n):
            batch.append(
                {
                    "path": f"/photos/2026/{i // 1000:04d}/IMG_{i:07d}.jpg",
                    "face": 0,
                    "x": 10,
                    "y": 20,
                    "width": 100,
                    "height": 120,
                    "face_score": 0.99,
                    "age": 31.4,
                    "gender": "female",
                    "gender_prob": 0.97,
                    "status": "ok",
                    "faces": 1,
                    "female_prob": 0.97,
                    "file_size": 2345678,
                    "file_mtime": 1700000000.123456,
                    "age_low": 25.0,
                    "age_high": 38.0,
                }
            )
            if len(batch) == 10000:
                h.write(results.encode_rows(batch, "csv"))
                batch = []
        h.write(results.encode_rows(batch, "csv"))
print("file MB", os.path.getsize(path) / 1e6)
t = time.time()
index = results.index_results(path, "csv")
print(
    f"index {n} rows: {time.time() - t:.1f} s, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB, images {len(index.done)}"
)
