"""The results schema: columns, formats, how rows are encoded, and what counts as a results file."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from agebatch.common import atomic, urls
from agebatch.common.errors import SetupError
from agebatch.common.files import read_regular
from agebatch.common.text import one_line

COLUMNS = (
    "path",
    "face",
    "x",
    "y",
    "width",
    "height",
    "face_score",
    "age",
    "gender",
    "gender_prob",
    "status",
    "error",
)
# Beyond the required columns: how many faces the image has (lets a resume tell a complete image from
# a torn one, and the report count faces per image) and the file's identity for --resume.
# The age interval (age_low, age_high: the central 80% of the model's age distribution) is empty for a
# model without one; taken_at is when the photo was taken (EXIF DateTimeOriginal, ISO 8601), empty when
# the file does not say. Files written before these columns existed keep their own header on --resume.
# A video's rows add when the person was first and last seen (seconds into the video) and in how many
# sampled frames (``t_first``, ``t_last``, ``frames``); they are empty for photos.
EXTRA_COLUMNS = (
    "faces",
    "female_prob",
    "file_size",
    "file_mtime",
    "age_low",
    "age_high",
    "taken_at",
    "t_first",
    "t_last",
    "frames",
)
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS
FORMATS = ("csv", "jsonl", "parquet")
TEXT_FORMATS = ("csv", "jsonl")  # written row by row, to a file or to standard output
# The output's name decides its format; a folder (or a name ending in /) is a Parquet dataset.
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
QUOTED_STARTS = (*_FORMULA_START, "'")  # what ``--excel-safe`` puts a quote before
_TEXT_COLUMNS = ("path", "error")


class OutputError(SetupError):
    """The output cannot be written (locked, unwritable, disk full, not ours); one-line message."""


def is_dataset(out: str | os.PathLike) -> bool:
    """True when ``out`` names a folder of Parquet parts: it ends in ``/`` or is a local folder."""
    name = os.fspath(out)
    return name.endswith("/") or (not urls.is_url(name) and os.path.isdir(name))


def format_for(out: str | os.PathLike, requested: str | None = None) -> str:
    """The results format for ``out``: its extension decides (``.csv``; ``.jsonl``/``.ndjson``;
    ``.parquet``), a folder is a Parquet dataset; ``requested`` (``--format``) must agree with it, and
    names the format of any other extension."""
    if is_dataset(out):
        if requested not in (None, "parquet"):
            raise OutputError(f"--out {out} is a folder: results go there as a Parquet dataset (--format parquet)")
        return "parquet"
    suffix = Path(out).suffix.lower()
    if suffix == ".json":
        raise OutputError(f"{out}: results are CSV or JSON Lines; name the file .jsonl (one JSON object a line)")
    implied = EXTENSIONS.get(suffix)
    if implied and requested and requested != implied:
        raise OutputError(f"--format {requested} disagrees with the name {Path(out).name} ({implied}); change one")
    return implied or requested or FORMATS[0]


@dataclass(frozen=True)
class FileKey:
    """What identifies an already-scanned image for --resume: same path, size and mtime."""

    path: str
    size: int
    mtime: float


def reason_group(error: str | None) -> str:
    """The reason without file-specific detail (the part before the first colon), for counting errors by kind."""
    return (error or "").split(":")[0].strip() or "error"


def display_path(path: str) -> str:
    """Paths as text for the results: bytes that are not UTF-8 become ``\\xNN`` escapes, not a crash."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def excel_safe(value: str) -> str:
    """Prefix a quote to cells a spreadsheet would run as a formula (CSV injection), and to cells that
    start with a quote already, so reading one quote back off is never ambiguous (``--resume``)."""
    return "'" + value if value.startswith(QUOTED_STARTS) else value


def file_key(path: str) -> FileKey | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return FileKey(display_path(path), info.st_size, round(info.st_mtime, 6))


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def encode_rows(rows: list[dict], fmt: str, excel: bool = False, columns: tuple[str, ...] = ALL_COLUMNS) -> str:
    """One image's rows as text in ``fmt`` with ``columns``; each record ends with a newline."""
    if fmt == "jsonl":
        return "".join(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        cells = [_cell(row.get(c)) for c in columns]
        if excel:
            for name in _TEXT_COLUMNS:
                i = columns.index(name)
                cells[i] = excel_safe(cells[i])
        writer.writerow(cells)
    return buffer.getvalue()


def columns_of_header(first_line: bytes, name: object) -> tuple[str, ...]:
    """The columns a CSV results file was written with, from its header line. A file from an older
    version has fewer columns and rows appended to it keep its shape; any other header (columns
    reordered, renamed or added, say by a spreadsheet) is refused rather than appended to out of line."""
    names = tuple(next(csv.reader([first_line.decode("utf-8", "replace")]), []))
    if len(names) >= len(COLUMNS) and names == ALL_COLUMNS[: len(names)]:
        return names
    raise OutputError(f"{name}: its columns differ from an agebatch results file's; scan into a new file")


def header(fmt: str) -> str:
    return ",".join(ALL_COLUMNS) + "\n" if fmt == "csv" else ""


def _parse(text: str, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader)


def read_rows(path: str | os.PathLike, fmt: str) -> list[dict]:
    """All rows of a results file (strings for CSV, typed for JSONL)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return _parse(handle.read(), fmt)


def is_results_file(path: str | os.PathLike) -> str | None:
    """``"csv"`` or ``"jsonl"`` when ``path`` starts like an agebatch results file, else None."""
    try:
        return results_format(read_regular(path, 1 << 16, first_line=True))
    except (OSError, ValueError):
        return None


def results_format(first_line: bytes) -> str | None:
    """``"csv"`` or ``"jsonl"`` when ``first_line`` begins an agebatch results file, else None."""
    first = first_line.decode("utf-8", "replace")
    if tuple(next(csv.reader([first]), [])[: len(COLUMNS)]) == COLUMNS:
        return "csv"
    try:
        record = json.loads(first)
    except ValueError:
        return None
    return "jsonl" if isinstance(record, dict) and "path" in record and "status" in record else None


METADATA_SUFFIX = ".meta.json"


def lock_path(out: str | os.PathLike) -> Path:
    """The hidden file a writer of ``out`` locks (``OutputLock``)."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def metadata_path(out: str | os.PathLike) -> Path:
    """Where a results file's provenance is kept: beside it, so the CSV itself stays plain."""
    out = Path(out)
    return out.with_name(out.name + METADATA_SUFFIX)


def metadata_text(out: str | os.PathLike, info: dict) -> str:
    """The record of what made ``out`` (tool version, model and its SHA-256, settings), as JSON."""
    import datetime as dt

    record = {"results": Path(out).name, "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **info}
    return json.dumps(record, indent=1) + "\n"


def write_metadata(out: str | os.PathLike, info: dict) -> Path:
    """Record what made ``out``, written whole (``ResultsWriter.commit`` writes it with the rows)."""
    return atomic.write_text(metadata_path(out), metadata_text(out, info))


def check_not_an_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an ``--out`` that is one of the run's inputs (also through a link or another spelling):
    replacing it would destroy what the run reads."""
    for given in inputs:
        if atomic.same_file(out, given):
            raise OutputError(f"--out {out} is also an input of this run; choose another file")


def check_existing(path: str | os.PathLike, fmt: str, replacing: bool = False, first_line: bytes | None = None) -> None:
    """Refuse to append to (or, ``replacing``, to replace) a file that is not an agebatch results
    file in ``fmt``: a photo or someone's spreadsheet named by a slip of ``--out`` is kept."""
    if first_line is None:
        try:
            first_line = read_regular(path, 1 << 16, first_line=True)
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read {path}: {one_line(exc)}") from exc
    if not first_line:
        return
    found = results_format(first_line)
    if found is None:
        verb = "replace" if replacing else "append to"
        raise OutputError(f"{path} exists and is not an agebatch results file; refusing to {verb} it")
    if found != fmt:
        raise OutputError(f"{path} is an agebatch {found.upper()} file, not {fmt.upper()}; choose another --out")
