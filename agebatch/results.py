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

import contextlib
import csv
import errno
import fcntl
import io
import json
import logging
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from agebatch.common import atomic
from agebatch.common.files import read_regular
from agebatch.common.text import one_line, printable

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
# model without one; files written before these columns existed keep their own header on --resume.
EXTRA_COLUMNS = ("faces", "female_prob", "file_size", "file_mtime", "age_low", "age_high")
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS
FORMATS = ("csv", "jsonl")
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}  # the output's name decides its format
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = ("path", "error")

log = logging.getLogger(__name__)


class OutputError(Exception):
    """The output cannot be written (locked, unwritable, disk full, not ours); one-line message."""


def format_for(out: str | os.PathLike, requested: str | None = None) -> str:
    """The results format for ``out``: its extension decides (``.csv``; ``.jsonl``/``.ndjson``);
    ``requested`` (``--format``) must agree with it, and names the format of any other extension."""
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


def index_results(path: str | os.PathLike, fmt: str, raw: BinaryIO | None = None) -> ResumeIndex:
    """Read a results file for ``--resume`` (see ``ResumeIndex``); damage it cannot prove to be a torn
    last write is an ``OutputError`` (exit 2) rather than a guess that could drop rows. ``raw``: the
    file already open (the writer reads, cuts and appends through one descriptor)."""
    if raw is None:
        with open(path, "rb") as handle:
            return index_results(path, fmt, handle)
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
            image = _unprotected(str(record["path"]))
            if group is None or image != group.path:
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
    """A path as scanned, without the quote ``--excel-safe`` put before a formula-like start."""
    return path[1:] if path.startswith("'") and path[1:2] in _FORMULA_START and path[1:2] != "" else path


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


def check_not_an_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> None:
    """Refuse an ``--out`` that is one of the run's inputs (also through a link or another spelling):
    replacing it would destroy what the run reads."""
    for given in inputs:
        try:
            same = os.path.samefile(out, given)
        except OSError:
            same = os.path.abspath(out) == os.path.abspath(given)
        if same:
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


class OutputLock:
    """The exclusive ``flock`` on the hidden lock file beside an output: one writer at a time.

    The lock file is opened without following links (a planted link is refused, never followed) and
    must be a regular file; with ``wait`` a second writer waits instead of failing. The holder removes
    the file when it is done (no lock file is left behind); a writer that was waiting on a file removed
    meanwhile notices (its descriptor no longer names the path) and locks the new one.
    """

    def __init__(self, out: Path, wait: bool = False) -> None:
        self.path = out.with_name(f".{out.name}.lock")
        self.out = out
        self.wait = wait
        self._file = None

    def acquire(self) -> None:
        while not self._acquire_once():
            pass

    def _acquire_once(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o666)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(f"the lock file {self.path} is a symbolic link; remove it") from exc
            raise OutputError(f"cannot write in {self.out.parent}: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OutputError(f"the lock file {self.path} is not a regular file; remove it")
        self._file = os.fdopen(fd, "r+")
        flags = fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(self._file, flags)
        except OSError as exc:
            self._file.close()
            self._file = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(
                    f"another agebatch scan or merge is writing {self.out}; wait for it or use --wait"
                ) from exc
            raise
        if not self._names_our_file():  # removed by the holder we waited for: lock the path anew
            self._file.close()
            self._file = None
            return False
        return True

    def _names_our_file(self) -> bool:
        try:
            here = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._file.fileno())
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def release(self) -> None:
        if self._file is not None:
            if self._names_our_file():
                with contextlib.suppress(OSError):
                    os.unlink(self.path)  # still locked: nobody can hold it between unlink and unlock
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


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
        self.done: dict[str, tuple[int, float | None]] = {}  # path -> (size, mtime) already in --out
        self.changed = 0  # images skipped as done although their file changed since
        self.columns = ALL_COLUMNS  # on --resume, the columns of the file appended to
        self.existed = False  # decided once the lock is held (another run may be finishing it)
        self._lock = None
        self._fd: int | None = None
        self._tmp: Path | None = None
        self._committed = False

    # -- setup -------------------------------------------------------------------------------
    def __enter__(self) -> ResultsWriter:
        self._check_target()
        self._acquire_lock()
        try:
            # Every decision about what is there is taken here, under the lock: a run that waited
            # (--wait) sees what the run before it left, not what was there when it started.
            self._check_target()
            self.existed = self.out.exists()
            if self.existed and not self.resume:
                check_existing(self.out, self.fmt, replacing=True)
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
        except BaseException:
            self._release_lock()
            raise
        return self

    def _check_target(self) -> None:
        """``--out`` must be absent or a regular file (not a link, folder, FIFO or device)."""
        folder = self.out.parent
        if not folder.is_dir():
            raise OutputError(f"output folder does not exist: {folder}")
        try:
            info = os.lstat(self.out)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            raise OutputError(f"--out is a folder: {self.out}")
        if stat.S_ISLNK(info.st_mode):
            raise OutputError(f"--out is a symbolic link, refusing to write through it: {self.out}")
        if not stat.S_ISREG(info.st_mode):
            raise OutputError(f"--out is not a regular file (a FIFO, socket or device): {self.out}")

    def _acquire_lock(self) -> None:
        self._lock = OutputLock(self.out, self.wait)
        self._lock.acquire()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of earlier runs into this ``--out`` that were killed: with the lock held,
        nobody else owns them. Matched exactly (the name and mkstemp's random part), never by a glob
        built from the name, so another output's temporary file is never touched."""
        pattern = re.compile(rf"\.{re.escape(self.out.name)}\.[A-Za-z0-9_]{{8}}\.tmp")
        for entry in os.scandir(self.out.parent):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)

    def _create_with_header(self) -> None:
        """A new results file holding just the header, created atomically so --resume can append to it."""
        fd, name = tempfile.mkstemp(prefix=f".{self.out.name}.", suffix=".tmp", dir=self.out.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(header(self.fmt))
        _copy_mode(self.out, Path(name))
        os.replace(name, self.out)

    def _open_append(self) -> None:
        """Open ``--out`` once (never through a link) and read, cut and append through that descriptor,
        so the file checked is the file written even if the name is swapped meanwhile."""
        try:
            fd = os.open(self.out, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputError(f"--out is a symbolic link, refusing to write through it: {self.out}") from exc
            raise
        self._fd = fd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OutputError(f"--out is not a regular file: {self.out}")
        with os.fdopen(os.dup(fd), "rb") as raw:
            first_line = raw.readline(1 << 16)
            check_existing(self.out, self.fmt, first_line=first_line)
            if self.fmt == "csv" and first_line:
                self.columns = columns_of_header(first_line, self.out)
            index = index_results(self.out, self.fmt, raw)
        if index.cut_rows or index.keep < index.size:
            log.warning(
                "agebatch: %s ended in a torn write: removed %d byte(s) (%d complete row(s) of its last, "
                "unfinished image), which will be scanned again",
                printable(self.out),
                index.size - index.keep,
                index.cut_rows,
            )
        if index.keep < index.size:
            os.ftruncate(fd, index.keep)
            os.fsync(fd)
        self.done = index.done
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
        """True for an image the file already has rows for (by path), so each image appears once.

        An image whose size or modification time changed since is still skipped (appending it again
        would list it twice) and counted in ``changed``; a spreadsheet that rounded ``file_mtime`` to
        whole seconds does not count as a change.
        """
        if key is None or key.path not in self.done:
            return False
        size, mtime = self.done[key.path]
        if size != key.size or mtime is None or abs(mtime - key.mtime) >= 1.0:
            self.changed += 1
        return True

    def write_image(self, rows: list[dict]) -> None:
        """Append one image's rows with one unbuffered write, so a kill cannot tear earlier images.

        On failure (disk full, I/O error) the file is cut back to where this image began.
        """
        data = encode_rows(rows, self.fmt, self.excel, self.columns).encode("utf-8")
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
        with _signals_deferred():  # a second Ctrl-C or SIGTERM must not cut the saving of the rows short
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
            _copy_mode(self.out, self._tmp)
            os.replace(self._tmp, self.out)  # nothing to lose: keep partial rows for --resume
        else:
            self._tmp.unlink(missing_ok=True)
        self._tmp = None


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT and SIGTERM back (in the main thread) until the block is done; they arrive after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _copy_mode(existing: Path, new: Path) -> None:
    """Give the new file the old file's permissions (mkstemp creates 0600), or the umask default."""
    try:
        mode = existing.stat().st_mode & 0o777
    except OSError:
        mode = 0o666 & ~atomic.UMASK
    os.chmod(new, mode)


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
