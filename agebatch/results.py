"""The results file: its schema, and writing it so that nothing a user already has is ever damaged.

Guarantees, and how:
- A fresh run writes to a temporary file beside ``--out`` and renames it over ``--out`` only when it
  completes (``os.replace`` is atomic), so an earlier results file survives any failure.
- ``--resume`` appends. Each image's rows are written with one ``write`` and flushed, so a killed
  process leaves at most one torn image at the end; the next resume cuts the file back to the last
  complete image before appending (``repair_tail``). A failed write is undone by truncating.
- One writer at a time: an exclusive ``flock`` on a hidden lock file beside ``--out``.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

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
EXTRA_COLUMNS = ("faces", "female_prob", "file_size", "file_mtime")
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS
FORMATS = ("csv", "jsonl")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = ("path", "error")


class OutputError(Exception):
    """The output cannot be written (locked, unwritable, disk full, not ours); one-line message."""


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
    """Prefix a quote to cells a spreadsheet would run as a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


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


def encode_rows(rows: list[dict], fmt: str, excel: bool = False) -> str:
    """One image's rows as text in ``fmt``; each record ends with a newline."""
    if fmt == "jsonl":
        return "".join(json.dumps({c: row.get(c) for c in ALL_COLUMNS}, ensure_ascii=False) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        cells = [_cell(row.get(c)) for c in ALL_COLUMNS]
        if excel:
            for name in _TEXT_COLUMNS:
                i = ALL_COLUMNS.index(name)
                cells[i] = excel_safe(cells[i])
        writer.writerow(cells)
    return buffer.getvalue()


def header(fmt: str) -> str:
    return ",".join(ALL_COLUMNS) + "\n" if fmt == "csv" else ""


def _record_ends(data: bytes, fmt: str) -> list[int]:
    """Byte offsets just after each complete record (a newline outside CSV quotes)."""
    ends, inside = [], False
    if fmt == "jsonl":
        return [i + 1 for i, b in enumerate(data) if b == 0x0A]
    for i, b in enumerate(data):
        if b == 0x22:
            inside = not inside
        elif b == 0x0A and not inside:
            ends.append(i + 1)
    return ends


def _parse(text: str, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader)


def read_rows(path: str | os.PathLike, fmt: str) -> list[dict]:
    """All rows of a results file (strings for CSV, typed for JSONL)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return _parse(handle.read(), fmt)


def _complete_length(data: bytes, fmt: str) -> int:
    """Length of the longest prefix made of whole records and whole images (see module docstring)."""
    ends = _record_ends(data, fmt)
    first = 1 if fmt == "csv" else 0  # the header
    if len(ends) <= first:
        return 0
    keep = ends[-1]
    text = data[:keep].decode("utf-8", "replace")
    try:
        rows = _parse(text, fmt)
    except (ValueError, csv.Error):
        rows = []
    # Drop a trailing image whose rows are fewer than its ``faces`` count (a torn group).
    while rows:
        last = rows[-1]
        group = [r for r in rows[-64:] if r.get("path") == last.get("path")]
        try:
            expected = max(1, int(last.get("faces") or 0))
        except (TypeError, ValueError):
            expected = 1
        if len(group) >= expected and len(last) >= len(COLUMNS):
            break
        rows = rows[: len(rows) - len(group)]
        keep = ends[first + len(rows) - 1] if rows else ends[first - 1] if first else 0
    return keep


def repair_tail(path: str | os.PathLike, fmt: str) -> int:
    """Cut a results file back to its last complete image; returns the bytes removed."""
    with open(path, "r+b") as handle:
        data = handle.read()
        keep = _complete_length(data, fmt) if data else 0
        if fmt == "csv" and keep == 0 and data.startswith(header("csv").encode()):
            keep = len(header("csv"))
        removed = len(data) - keep
        if removed:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
    return removed


def check_existing(path: str | os.PathLike, fmt: str) -> None:
    """Refuse to append to a file that is not an agebatch results file in ``fmt``."""
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline()
    if not first:
        return
    if fmt == "csv":
        names = next(csv.reader([first]), [])
        if tuple(names[: len(COLUMNS)]) != COLUMNS:
            raise OutputError(f"{path} is not an agebatch CSV (its header differs); choose another --out")
    else:
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "path" not in record:
            raise OutputError(f"{path} is not an agebatch JSONL file; choose another --out")


def done_keys(rows: Iterable[dict]) -> set[FileKey]:
    keys = set()
    for row in rows:
        try:
            keys.add(FileKey(str(row["path"]), int(float(row["file_size"])), round(float(row["file_mtime"]), 6)))
        except (KeyError, TypeError, ValueError):
            continue
    return keys


class ResultsWriter:
    """Writes image row groups to ``out`` with the guarantees in the module docstring.

    Use as a context manager; ``commit()`` marks the run complete (a fresh run then replaces ``out``).
    Leaving without ``commit()`` keeps the partial rows only when ``out`` did not exist before, so
    they can be resumed; an earlier ``out`` is never replaced by a partial run.
    """

    def __init__(
        self, out: str | os.PathLike, fmt: str = "csv", resume: bool = False, excel: bool = False, wait: bool = False
    ) -> None:
        if fmt not in FORMATS:
            raise OutputError(f"unknown format {fmt!r}; choose csv or jsonl")
        self.out = Path(out)
        self.fmt = fmt
        self.resume = resume
        self.excel = excel
        self.wait = wait
        self.done: set[FileKey] = set()
        self.existed = self.out.exists()
        self._lock = None
        self._fd: int | None = None
        self._tmp: Path | None = None
        self._committed = False

    # -- setup -------------------------------------------------------------------------------
    def __enter__(self) -> ResultsWriter:
        if self.out.is_dir():
            raise OutputError(f"--out is a folder: {self.out}")
        folder = self.out.parent
        if not folder.is_dir():
            raise OutputError(f"output folder does not exist: {folder}")
        self._acquire_lock()
        try:
            self._remove_stale_temporaries()
            if self.resume:
                if not self.out.exists():
                    self._create_with_header()
                self._open_append()
            else:
                self._open_temporary()
        except OSError as exc:
            self._release_lock()
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        return self

    def _acquire_lock(self) -> None:
        lock_path = self.out.with_name(f".{self.out.name}.lock")
        try:
            self._lock = open(lock_path, "a")
        except OSError as exc:
            raise OutputError(f"cannot write in {self.out.parent}: {exc.strerror or exc}") from exc
        flags = fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(self._lock, flags)
        except OSError as exc:
            self._lock.close()
            self._lock = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"another agebatch scan is writing {self.out}; wait for it or use --wait") from exc
            raise

    def _release_lock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of earlier runs that were killed: with the lock held, nobody else owns them."""
        for stale in self.out.parent.glob(f".{self.out.name}.*.tmp"):
            stale.unlink(missing_ok=True)

    def _create_with_header(self) -> None:
        """A new results file holding just the header, created atomically so --resume can append to it."""
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(header(self.fmt))
        _copy_mode(self.out, Path(name))
        os.replace(name, self.out)

    def _open_append(self) -> None:
        check_existing(self.out, self.fmt)
        repair_tail(self.out, self.fmt)
        self.done = done_keys(read_rows(self.out, self.fmt))
        self._fd = os.open(self.out, os.O_WRONLY | os.O_APPEND)
        if os.fstat(self._fd).st_size == 0:
            self._write_all(header(self.fmt).encode())

    def _open_temporary(self) -> None:
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)
        self._tmp = Path(name)
        self._fd = fd
        self._write_all(header(self.fmt).encode())

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    # -- writing -----------------------------------------------------------------------------
    def is_done(self, key: FileKey | None) -> bool:
        return key is not None and key in self.done

    def write_image(self, rows: list[dict]) -> None:
        """Append one image's rows with one unbuffered write, so a kill cannot tear earlier images.

        On failure (disk full, I/O error) the file is cut back to where this image began.
        """
        data = encode_rows(rows, self.fmt, self.excel).encode("utf-8")
        before = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            self._write_all(data)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, before)
            except OSError:
                pass
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc

    def commit(self) -> None:
        """The run completed: make the rows durable and, for a fresh run, move them into place."""
        try:
            os.fsync(self._fd)
            self._close()
            if self._tmp is not None:
                _copy_mode(self.out, self._tmp)
                os.replace(self._tmp, self.out)
                self._tmp = None
        except OSError as exc:
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        self._committed = True

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._committed:
                self._finish_incomplete()
        finally:
            self._close()
            self._release_lock()

    def _finish_incomplete(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                pass
            self._close()
        if self._tmp is None:
            return
        if not self.existed and self._tmp.stat().st_size > len(header(self.fmt)):
            os.replace(self._tmp, self.out)  # nothing to lose: keep partial rows for --resume
        else:
            self._tmp.unlink(missing_ok=True)
        self._tmp = None


def _copy_mode(existing: Path, new: Path) -> None:
    """Give the new file the old file's permissions (mkstemp creates 0600), or the umask default."""
    try:
        mode = existing.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    os.chmod(new, mode)
