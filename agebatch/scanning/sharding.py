"""Splitting one scan over many processes or machines: ``--shard I/N`` for array jobs.

Shard ``I`` of ``N`` scans the images whose path (as reached from the PATH arguments) hashes to ``I``.
The hash depends on nothing but the path, so every shard agrees without talking to the others, and
adding files to the tree never moves an existing file to another shard (its results stay where they
are, and ``--resume`` on each shard keeps working). Every shard must be given the same PATH arguments.
Schedulers put the index in the environment: ``--shard auto/N`` reads it from there.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

# Where array-job schedulers put the task's index: Kubernetes Indexed Jobs, SLURM job arrays,
# AWS Batch array jobs. The first one set wins.
INDEX_VARIABLES = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "AWS_BATCH_JOB_ARRAY_INDEX")
_SHARD = re.compile(r"^\s*(\d+|auto)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: the index must be from 0 to {self.count - 1}")

    def holds(self, path: str) -> bool:
        """True when ``path`` belongs to this shard."""
        return shard_of(path, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(path: str, count: int) -> int:
    """The shard (0 .. count - 1) that ``path`` belongs to: a stable hash of its bytes."""
    digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(text: str, environ: Mapping[str, str] | None = None) -> Shard:
    """``"I/N"``, or ``"auto/N"`` with I from the scheduler's variable (see ``INDEX_VARIABLES``)."""
    match = _SHARD.match(text)
    if not match:
        raise ValueError(f"--shard takes I/N or auto/N (e.g. 0/4), not {text!r}")
    index, count = match.group(1), int(match.group(2))
    if count < 1:
        raise ValueError("--shard: N must be at least 1")
    if index == "auto":
        environ = os.environ if environ is None else environ
        found = next(((name, environ[name]) for name in INDEX_VARIABLES if environ.get(name, "").strip()), None)
        if found is None:
            raise ValueError(f"--shard auto/{count}: none of {', '.join(INDEX_VARIABLES)} is set")
        name, value = found
        if not value.strip().isdigit():
            raise ValueError(f"--shard auto/{count}: ${name} is {value!r}, not a whole number")
        index = value.strip()
    return Shard(int(index), count)
