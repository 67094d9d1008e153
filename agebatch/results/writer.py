"""Writing a results file: one writer at a time, a fresh run replaces ``--out`` only when complete,
``--resume`` appends whole images."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

from agebatch.common import atomic
from agebatch.common.text import printable
from agebatch.results.resume import already_done, index_results
from agebatch.results.schema import (
    ALL_COLUMNS,
    FORMATS,
    FileKey,
    OutputError,
    check_existing,
    columns_of_header,
    encode_rows,
    header,
    lock_path,
    metadata_path,
    metadata_text,
)

log = logging.getLogger(__name__)


class OutputLock:
    """The exclusive ``flock`` on the hidden lock file beside an output: one writer at a time.

    The lock file is opened without following links (a planted link is refused, never followed) and
    must be a regular file; with ``wait`` a second writer waits instead of failing. The holder removes
    the file when it is done (no lock file is left behind); a writer that was waiting on a file removed
    meanwhile notices (its descriptor no longer names the path) and locks the new one.
    """

    def __init__(self, out: Path, wait: bool = False) -> None:
        self.path = lock_path(out)
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
        check_target(self.out)
        self._acquire_lock()
        try:
            # Every decision about what is there is taken here, under the lock: a run that waited
            # (--wait) sees what the run before it left, not what was there when it started.
            check_target(self.out)
            self.existed = self.out.exists()
            if self.existed and not self.resume:
                check_existing(self.out, self.fmt, replacing=True)
            remove_stale_temporaries(self.out)
            if self.resume:  # the rows change in place from here on: the old record no longer describes them
                metadata_path(self.out).unlink(missing_ok=True)
                if not self.out.exists():
                    self._create_with_header()
                self._open_append()
            else:
                self._open_temporary()
        except OSError as exc:
            self._abandon()
            raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
        except BaseException:
            self._abandon()
            raise
        return self

    def _abandon(self) -> None:
        """Setup failed: nothing of this run stays (its temporary file, if made) and the lock is free."""
        self._close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        self._release_lock()

    def _acquire_lock(self) -> None:
        self._lock = OutputLock(self.out, self.wait)
        self._lock.acquire()

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _create_with_header(self) -> None:
        """A new results file holding just the header, created atomically so --resume can append to it."""
        atomic.write_text(self.out, header(self.fmt))

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
            index = index_results(self.out, self.fmt, raw, self.excel)
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
        self._fd, self._tmp = atomic.new_temp_fd(self.out)
        self._write_all(header(self.fmt).encode())

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    # -- writing -----------------------------------------------------------------------------
    def is_done(self, key: FileKey | None) -> bool:
        """True for an image the file already has rows for (``resume.already_done``)."""
        done, changed = already_done(self.done, key)
        self.changed += changed
        return done

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

    def commit(self, metadata: dict | None = None) -> None:
        """The run completed: make the rows durable and, for a fresh run, move them into place, with
        ``metadata`` (what made them) beside them.

        This run's record is written in full first, and the old one removed before the rows move (a
        resumed run removed it when it began appending), so a kill at any point leaves either no record
        or the one describing the rows beside it; a temporary file it leaves is removed by the next run.
        """
        with signals_deferred():  # a Ctrl-C or SIGTERM now must not cost a complete run its rows
            self._commit(metadata)
        self._committed = True

    def _commit(self, metadata: dict | None) -> None:
        def close() -> None:
            os.fsync(self._fd)
            self._close()

        move_into_place(self.out, self._tmp, metadata, close)
        self._tmp = None

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __exit__(self, exc_type, exc, tb) -> None:
        with signals_deferred():  # a second Ctrl-C or SIGTERM must not cut the saving of the rows short
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
            metadata_path(self.out).unlink(missing_ok=True)  # a record left alone there is not these rows'
            atomic.copy_mode(self.out, self._tmp)
            os.replace(self._tmp, self.out)  # nothing to lose: keep partial rows for --resume
        else:
            self._tmp.unlink(missing_ok=True)
        self._tmp = None


def check_target(out: Path) -> None:
    """``--out`` must be absent or a regular file (not a link, folder, FIFO or device), in a folder
    that exists."""
    folder = out.parent
    if not folder.is_dir():
        raise OutputError(f"output folder does not exist: {folder}")
    try:
        info = os.lstat(out)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"--out is a folder: {out}")
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"--out is a symbolic link, refusing to write through it: {out}")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"--out is not a regular file (a FIFO, socket or device): {out}")


def remove_stale_temporaries(out: Path) -> None:
    """Temporary files of earlier runs into ``out`` (and its record) that were killed: with the lock
    held, nobody else owns them. Matched exactly (the name and mkstemp's random part), never by a glob
    built from the name, so another output's temporary file is never touched."""
    patterns = [atomic.temp_name_pattern(out), atomic.temp_name_pattern(metadata_path(out))]
    for entry in os.scandir(out.parent):
        if any(p.fullmatch(entry.name) for p in patterns) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)


def move_into_place(out: Path, tmp: Path | None, metadata: dict | None, close: Callable[[], None]) -> None:
    """Finish a results file: its record of what made it written in full first, the rows made durable
    (``close``), the old record removed, ``tmp`` renamed over ``out`` (none: the rows were appended
    in place), the new record moved beside them. A kill at any point leaves either no record or the
    one describing the rows beside it; a temporary file it leaves is removed by the next run."""
    record = None
    try:
        if metadata is not None:
            record = atomic.write_temporary(metadata_path(out), metadata_text(out, metadata))
        close()
        metadata_path(out).unlink(missing_ok=True)  # never the old record beside the new rows
        if tmp is not None:
            atomic.copy_mode(out, tmp)
            os.replace(tmp, out)
        if record is not None:
            os.replace(record, metadata_path(out))
            record = None
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
    finally:
        if record is not None:
            record.unlink(missing_ok=True)


@contextlib.contextmanager
def signals_deferred():
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
