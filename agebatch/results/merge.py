"""Putting the shards of one scan together (``agebatch merge``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agebatch import __version__
from agebatch.common import atomic
from agebatch.common.text import printable
from agebatch.results.parquetmerge import is_parquet_part, merge_parquet
from agebatch.results.resume import index_results
from agebatch.results.schema import (
    EXTENSIONS,
    OutputError,
    check_existing,
    is_results_file,
    metadata_path,
    write_metadata,
)
from agebatch.results.writer import OutputLock


@dataclass
class MergeSummary:
    parts: int
    images: int
    bytes: int  # for Parquet parts: the rows written


def merge(parts: list[str | os.PathLike], out: str | os.PathLike, stream: BinaryIO | None = None) -> MergeSummary:
    """Concatenate results files (the shards of one scan) into ``out``, written whole or not at all.

    Refused with an ``OutputError``, before anything is written: a part that is not an agebatch results
    file, parts of another format or other columns than the first, a part that ends in a torn write
    (finish it with ``--resume`` first), an image listed twice (in two parts or in one), an ``out``
    whose name says another format, and an ``out`` that is one of the parts, a link, or a file other
    than a results file. The parts are copied byte for byte, in the order given. ``out`` ``-`` writes
    to ``stream`` (standard output) instead. Parquet parts (files or datasets, local or in object
    storage) merge into one Parquet file (``parquetmerge``).
    """
    if not parts:
        raise OutputError("merge needs at least one results file")
    names = [os.fspath(p) for p in parts]
    if any(is_parquet_part(name) for name in names):
        images, rows = merge_parquet(names, os.fspath(out))
        return MergeSummary(len(names), images, rows)
    parts = [Path(p) for p in names]
    to_stream = str(out) == "-"
    if not to_stream:
        try:
            atomic.check_output(out, parts)
        except atomic.UnsafeOutputError as exc:
            raise OutputError(str(exc)) from exc
    fmt, header_line, images = _checked_parts(parts)
    if not to_stream and EXTENSIONS.get(Path(out).suffix.lower(), fmt) != fmt:
        raise OutputError(f"--out {Path(out).name} names another format than the parts ({fmt}); name it .{fmt}")
    try:
        if to_stream:
            written = _copy(parts, header_line, stream)
        else:
            written = _write_file(parts, header_line, Path(out), fmt)
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return MergeSummary(len(parts), images, written)


def _checked_parts(parts: list[Path]) -> tuple[str, bytes, int]:
    """The parts' format, header line and number of images, once every check above has passed."""
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
        if index.repeated:
            raise OutputError(f"{printable(index.repeated[0])} is listed twice in {part}: it is not one scan's part")
        for image in index.done:
            if image in seen:
                raise OutputError(f"{printable(image)} is in both {seen[image]} and {part}: the parts overlap")
            seen[image] = part
    return fmt, header_line, len(seen)


def _write_file(parts: list[Path], header_line: bytes, out: Path, fmt: str) -> int:
    with OutputLock(out):
        if out.exists():
            check_existing(out, fmt, replacing=True)
        metadata_path(out).unlink(missing_ok=True)  # it described the scan whose rows this replaces
        with atomic.atomic_writer(out, binary=True) as handle:
            written = _copy(parts, header_line, handle)
        write_metadata(out, {"agebatch": __version__, "merged_from": [str(part) for part in parts]})
        return written


def _copy(parts: list[Path], header_line: bytes, handle: BinaryIO) -> int:
    """The header once, then each part's rows byte for byte; returns the bytes written."""
    handle.write(header_line)
    written = len(header_line)
    for part in parts:
        with open(part, "rb") as source:
            source.seek(len(header_line))
            while block := source.read(1 << 20):
                handle.write(block)
                written += len(block)
    handle.flush()
    return written


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.readline()
