"""Putting the shards of one scan together (``agebatch merge``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agebatch.common import atomic
from agebatch.common.text import printable
from agebatch.results.resume import index_results
from agebatch.results.schema import OutputError, check_existing, check_not_an_input, is_results_file
from agebatch.results.writer import OutputLock


@dataclass
class MergeSummary:
    parts: int
    images: int
    bytes: int


def merge(parts: list[str | os.PathLike], out: str | os.PathLike) -> MergeSummary:
    """Concatenate results files (the shards of one scan) into ``out``, written whole or not at all.

    Refused with an ``OutputError``, before anything is written: a part that is not an agebatch results
    file, parts of another format or other columns than the first, a part that ends in a torn write
    (finish it with ``--resume`` first), an image listed in two parts, and an ``out`` that is one of
    the parts or not a results file. The parts are copied byte for byte, in the order given.
    """
    parts = [Path(p) for p in parts]
    out = Path(out)
    if not parts:
        raise OutputError("merge needs at least one results file")
    check_not_an_input(out, parts)
    formats = {}
    for part in parts:
        if not part.is_file():
            raise OutputError(f"results file not found: {part}")
        formats[part] = is_results_file(part) if part.stat().st_size else None
        if formats[part] is None:
            raise OutputError(f"{part} is not an agebatch results file")
    fmt = formats[parts[0]]
    header_line = _first_line(parts[0]) if fmt == "csv" else b""
    seen: dict[str, Path] = {}
    for part in parts:
        if formats[part] != fmt or (fmt == "csv" and _first_line(part) != header_line):
            raise OutputError(f"{part} has other columns or another format than {parts[0]}; merge parts of one scan")
        index = index_results(part, fmt)
        if index.keep < index.size:
            raise OutputError(f"{part} ends in a torn write; finish it with scan --resume first")
        for image in index.done:
            if image in seen:
                raise OutputError(f"{printable(image)} is in both {seen[image]} and {part}: the parts overlap")
            seen[image] = part
    with OutputLock(out):
        if out.exists():
            check_existing(out, fmt, replacing=True)
        written = 0
        with atomic.atomic_writer(out, binary=True) as handle:
            handle.write(header_line)
            for part in parts:
                with open(part, "rb") as source:
                    source.seek(len(header_line))
                    while block := source.read(1 << 20):
                        handle.write(block)
                        written += len(block)
    return MergeSummary(len(parts), len(seen), written + len(header_line))


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.readline()
