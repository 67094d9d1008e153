"""Reading an existing results file for ``--resume``: one streaming pass, and only a provably torn
last write is ever cut."""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from typing import BinaryIO

from agebatch.common.text import one_line
from agebatch.results.schema import QUOTED_STARTS, FileKey, OutputError

FIELD_LIMIT = 64 << 20  # the longest cell a results file may hold (csv's own default is 128 KB)
TORN_RECORD_LINES = 3  # a torn last record spanning more lines than this is damage, not a torn write


@dataclass
class ResumeIndex:
    """What ``--resume`` needs from an existing results file, read in one streaming pass.

    ``keep`` is the length of the file made of whole records and whole images: only a torn write at
    the very end (one image's rows, cut short) lies beyond it. ``done`` maps each image's path to the
    (size, mtime) it had when scanned. Nothing else is kept, so a million rows cost a few hundred MB
    at most, not a copy of the file.
    """

    keep: int = 0
    size: int = 0
    done: dict = field(default_factory=dict)
    cut_rows: int = 0  # complete rows of an incomplete last image, beyond ``keep``
    repeated: list = field(default_factory=list)  # images listed again after their rows (a merge refuses them)


def already_done(done: dict, key: FileKey | None) -> tuple[bool, bool]:
    """(skip, changed) for an image under ``--resume``: skip one the output already has rows for (by
    path), so each image appears once; ``changed`` when its size or modification time differ from
    those rows' (it is still skipped: appending it again would list it twice). A spreadsheet that
    rounded ``file_mtime`` to whole seconds does not count as a change."""
    if key is None or key.path not in done:
        return False, False
    size, mtime = done[key.path]
    return True, size != key.size or mtime is None or abs(mtime - key.mtime) >= 1.0


class _Group:
    """The run of consecutive rows of one image."""

    def __init__(self, path: str, start: int, expected: int) -> None:
        self.path, self.start, self.expected, self.rows = path, start, expected, 0


def _int(value, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _records(raw: BinaryIO, fmt: str):
    """(record as a dict, or None when it is not a whole record; byte offset after it; its line number;
    how many physical lines it spans) for each record of an open results file, streamed from its start."""
    raw.seek(0)
    if fmt == "jsonl":
        offset = 0
        for number, line in enumerate(raw, start=1):
            offset += len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            yield (record if isinstance(record, dict) else None), offset, number, 1
        return
    offset = 0  # bytes consumed: csv.reader reads no further than the record it returns

    def lines():
        nonlocal offset
        for line in raw:
            offset += len(line)
            yield line.decode("utf-8", "replace")

    reader = csv.reader(lines())
    names = next(reader, None)
    consumed = reader.line_num
    for cells in reader if names else ():
        spanned, consumed = reader.line_num - consumed, reader.line_num
        record = dict(zip(names, cells)) if len(cells) == len(names) else None
        yield record, offset, reader.line_num, spanned


def _ends_with_newline(raw: BinaryIO, size: int) -> bool:
    if size == 0:
        return True
    raw.seek(size - 1)
    return raw.read(1) == b"\n"


def index_results(path: str | os.PathLike, fmt: str, raw: BinaryIO | None = None, excel: bool = False) -> ResumeIndex:
    """Read a results file for ``--resume`` (see ``ResumeIndex``); damage it cannot prove to be a torn
    last write is an ``OutputError`` (exit 2) rather than a guess that could drop rows. ``raw``: the
    file already open (the writer reads, cuts and appends through one descriptor). ``excel``: the file
    was written with ``--excel-safe``, so a quote before a formula-like path is that option's, not the
    file name's."""
    if raw is None:
        with open(path, "rb") as handle:
            return index_results(path, fmt, handle, excel)
    csv.field_size_limit(FIELD_LIMIT)
    index = ResumeIndex(size=os.fstat(raw.fileno()).st_size)
    if fmt == "csv":  # the header line as written (a file from an older version has fewer columns)
        raw.seek(0)
        index.keep = len(raw.readline())
    complete_end = _ends_with_newline(raw, index.size)
    group: _Group | None = None
    previous_end = index.keep
    try:
        for record, end, line, spanned in _records(raw, fmt):
            last = end >= index.size
            if last and not complete_end:
                if spanned <= TORN_RECORD_LINES:
                    break  # a torn last write (no newline at the end): everything before it stays
                record = None
            if record is None or "path" not in record:
                raise OutputError(
                    f"{path}: line {line} is damaged (not a complete {fmt.upper()} record); --resume will not "
                    "guess which rows to keep: fix or remove that line, or scan into a new file"
                )
            image = _unprotected(str(record["path"])) if excel else str(record["path"])
            if group is not None and image == group.path and group.rows >= group.expected:
                index.repeated.append(image)  # more rows than the image has faces: listed again
            if group is None or image != group.path:
                if image in index.done:
                    index.repeated.append(image)
                group = _Group(image, previous_end, max(1, _int(record.get("faces"), 1)))
                index.done[image] = (_int(record.get("file_size"), -1), _float(record.get("file_mtime")))
            group.rows += 1
            previous_end = end
            if group.rows >= group.expected:
                index.keep = end
    except csv.Error as exc:
        raise OutputError(f"{path}: cannot be read as CSV ({one_line(exc)}); --resume will not guess") from exc
    if group is not None and group.rows < group.expected:
        index.cut_rows = group.rows  # the last image is short of rows: it is scanned again after the cut
        index.done.pop(group.path, None)
        index.keep = group.start
    return index


def _unprotected(path: str) -> str:
    """A path as scanned, without the quote ``--excel-safe`` put before a formula-like or quoted start."""
    return path[1:] if path.startswith("'") and path[1:2] in QUOTED_STARTS else path


def repair_tail(path: str | os.PathLike, fmt: str) -> int:
    """Cut a results file back to its last complete image; returns the bytes removed."""
    index = index_results(path, fmt)
    return _truncate(path, index.keep)


def _truncate(path: str | os.PathLike, keep: int) -> int:
    size = os.path.getsize(path)
    if keep >= size:
        return 0
    with open(path, "r+b") as handle:
        handle.truncate(keep)
        handle.flush()
        os.fsync(handle.fileno())
    return size - keep
