"""Writing results as Parquet with the promises the CSV writer keeps: one writer at a time, an
existing file replaced only by a complete run, ``--resume`` adding only images not there yet.

- ``ParquetFileWriter``: one ``.parquet`` file. A Parquet file is readable only once its footer is
  written, so rows go to a temporary file beside it; ``--resume`` copies the old rows into it first and
  renames it over the old file when the run ends (also when it is interrupted: nothing is lost).
- ``DatasetWriter``: a folder or object-storage prefix of part files (``results.store``), each
  committed whole. A fresh run refuses a dataset that holds parts (``--resume`` adds to it); an
  interrupted run's parts stay, so ``--resume`` goes on from them.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from agebatch.common import atomic, urls
from agebatch.results.parquet import (
    ROW_GROUP_ROWS,
    arrow_schema,
    index_of_file,
    require_pyarrow,
    starts_like_parquet,
    table_of,
)
from agebatch.results.resume import already_done
from agebatch.results.schema import FileKey, OutputError, metadata_path, metadata_text
from agebatch.results.store import PartStore, run_prefix
from agebatch.results.writer import (
    OutputLock,
    check_target,
    move_into_place,
    remove_stale_temporaries,
    signals_deferred,
)

PART_ROWS = 50_000  # rows a dataset writer holds before it commits them as a part (lost at most on a kill)


class _BufferedWriter:
    """What both Parquet writers share: the resume index, rows buffered a group at a time, the lock,
    and signals held back while the rows are saved."""

    flush_rows = ROW_GROUP_ROWS

    def __init__(self, out: str | os.PathLike, resume: bool = False, wait: bool = False) -> None:
        self.out = os.fspath(out)
        self.resume = resume
        self.wait = wait
        self.done: dict = {}
        self.changed = 0
        self.existed = False
        self._rows: list[dict] = []
        self._lock: OutputLock | None = None
        self._committed = False

    def is_done(self, key: FileKey | None) -> bool:
        done, changed = already_done(self.done, key)
        self.changed += changed
        return done

    def write_image(self, rows: list[dict]) -> None:
        """Add one image's rows; a full buffer is written out (an image is never split)."""
        self._rows.extend(rows)
        if len(self._rows) >= self.flush_rows:
            self._flush()

    def commit(self, metadata: dict | None = None) -> None:
        """The run completed: every row written, then the record of what made them beside them."""
        with signals_deferred():
            self._flush()
            self._finish(metadata)
        self._committed = True

    def __enter__(self):
        require_pyarrow()
        self._lock_output()
        try:
            self._open()
        except BaseException:
            self._abandon()
            self._release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        with signals_deferred():
            try:
                if not self._committed:
                    self._keep_partial()
            finally:
                self._release()

    def _lock_output(self) -> None:
        if not urls.is_url(self.out):  # an object store has no locks: one writer per prefix is the user's rule
            self._lock = OutputLock(Path(self.out.rstrip("/")), self.wait)
            self._lock.acquire()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # Each writer fills these in.
    def _open(self) -> None: ...
    def _flush(self) -> None: ...
    def _finish(self, metadata: dict | None) -> None: ...
    def _keep_partial(self) -> None: ...
    def _abandon(self) -> None: ...


class ParquetFileWriter(_BufferedWriter):
    """One Parquet results file (local), written through a temporary file beside it."""

    def _open(self) -> None:
        pq = require_pyarrow().parquet
        check_target(Path(os.path.abspath(self.out)))
        self.existed = os.path.exists(self.out)
        if self.existed and not starts_like_parquet(self.out):
            verb = "append to" if self.resume else "replace"
            raise OutputError(f"{self.out} exists and is not a Parquet results file; refusing to {verb} it")
        if self.existed:
            self.done = index_of_file(self.out, self.out)  # also checks that its columns are ours
        remove_stale_temporaries(Path(os.path.abspath(self.out)))
        if not self.resume:
            self.done = {}
        fd, self._tmp = atomic.new_temp_fd(self.out)
        self._handle = os.fdopen(fd, "wb")
        self._writer = pq.ParquetWriter(self._handle, arrow_schema(), compression="zstd")
        if self.resume and self.existed:
            metadata_path(self.out).unlink(missing_ok=True)  # the rows change: the old record no longer describes them
            self._copy_existing()

    def _copy_existing(self) -> None:
        """The old file's rows first, a row group at a time (they were written with this schema)."""
        pa = require_pyarrow()
        reader = pa.parquet.ParquetFile(self.out)
        schema = arrow_schema()
        if not reader.schema_arrow.equals(schema):
            raise OutputError(f"{self.out} was written with other columns; scan into a new file")
        for group in range(reader.num_row_groups):
            self._writer.write_table(reader.read_row_group(group))

    def _flush(self) -> None:
        if self._rows:
            try:
                self._writer.write_table(table_of(self._rows))
            except OSError as exc:
                raise OutputError(f"cannot write {self.out}: {exc.strerror or exc}") from exc
            self._rows = []

    def _close(self) -> None:
        self._writer.close()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def _finish(self, metadata: dict | None) -> None:
        move_into_place(Path(self.out), self._tmp, metadata, self._close)

    def _keep_partial(self) -> None:
        """Interrupted: the rows so far replace the file when that loses nothing (it did not exist, or
        they include its rows: ``--resume``); otherwise the earlier file stays as it was."""
        keep = self.resume or not self.existed
        try:
            self._flush()
            self._close()
        except (OSError, OutputError):
            keep = False
        if keep:
            atomic.copy_mode(self.out, self._tmp)
            os.replace(self._tmp, self.out)
        else:
            self._tmp.unlink(missing_ok=True)

    def _abandon(self) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            writer = getattr(self, "_writer", None)
            with contextlib.suppress(OSError, ValueError, AttributeError):
                writer.close()  # before its file: pyarrow would close it again, later, on a closed file
            with contextlib.suppress(OSError):
                self._handle.close()
            tmp.unlink(missing_ok=True)


class DatasetWriter(_BufferedWriter):
    """A Parquet dataset: part files in a local folder or under an object-storage prefix.

    ``owner`` (a shard's ``shard3of10``) lets the shards of one scan write into one dataset at once:
    each locks, names, checks and records only its own parts (its record is ``NAME.OWNER.meta.json``).
    """

    flush_rows = PART_ROWS

    def __init__(self, out: str | os.PathLike, resume: bool = False, wait: bool = False, owner: str = "") -> None:
        super().__init__(out, resume, wait)
        self.owner = owner
        self.base = self.out.rstrip("/") + (f".{owner}" if owner else "")  # the lock's and the record's name
        self.part_prefix = ""  # every part this run writes starts with part-{part_prefix}
        self._parts = 0

    def _lock_output(self) -> None:
        if not urls.is_url(self.out):
            self._lock = OutputLock(Path(self.base), self.wait)
            self._lock.acquire()

    def _open(self) -> None:
        self.store = PartStore(self.out)
        if not self.store.remote and os.path.islink(self.out.rstrip("/")):
            raise OutputError(f"--out is a symbolic link, refusing to write through it: {self.out}")
        foreign = self.store.foreign_names()
        if foreign:
            raise OutputError(
                f"{self.out} holds other files ({foreign[0]}, ...); a Parquet dataset needs an empty folder "
                "or one agebatch wrote"
            )
        mine = f"part-{self.owner}-" if self.owner else "part-"
        parts = self.store.part_names()
        self.existed = any(name.startswith(mine) for name in parts)
        if not self.resume:
            self._check_fresh(parts)
        self.store.remove_stale_temporaries(mine)
        self.store.create()  # first: a dataset that cannot be written keeps its record
        if self.resume:
            self.done = self.store.index()
            self._remove_metadata()
        self.part_prefix = f"{self.owner}-{run_prefix()}" if self.owner else run_prefix()

    def _check_fresh(self, parts: list[str]) -> None:
        """A fresh run adds to a dataset only beside the other shards of the same split: never over its
        own earlier parts, nor over another scan's (which would list their images twice)."""
        if self.existed:
            whose = f"shard {self.owner}'s" if self.owner else "a scan's"
            raise OutputError(
                f"{self.out} already holds {whose} results; add --resume to add to them, or choose a new folder"
            )
        split = re.compile(r"part-shard\d+of" + re.escape(self.owner.rsplit("of", 1)[-1]) + "-") if self.owner else None
        others = [name for name in parts if split is None or not split.match(name)]
        if others:
            raise OutputError(
                f"{self.out} holds another scan's parts ({others[0]}); scan into a new folder, or add --resume"
            )

    def _flush(self) -> None:
        if self._rows:
            self.store.write_part(f"part-{self.part_prefix}-{self._parts:05d}.parquet", table_of(self._rows))
            self._parts += 1
            self._rows = []

    def _metadata_location(self) -> str:
        return self.base + ".meta.json" if self.store.remote else os.fspath(metadata_path(self.base))

    def _remove_metadata(self) -> None:
        where = self._metadata_location()
        if self.store.remote:
            if self.store.fs.exists(where):
                self.store.fs.rm(where)
        else:
            Path(where).unlink(missing_ok=True)

    def _finish(self, metadata: dict | None) -> None:
        if metadata is None:
            return
        where = self._metadata_location()
        text = metadata_text(self.out.rstrip("/"), metadata)
        try:
            if self.store.remote:
                self.store.fs.pipe_file(where, text.encode())
            else:
                atomic.write_text(where, text)
        except OSError as exc:
            raise OutputError(f"cannot write {where}: {exc.strerror or exc}") from exc

    def _keep_partial(self) -> None:
        """Interrupted: the buffered rows (whole images) become one more part, for ``--resume``."""
        with contextlib.suppress(OSError, OutputError):
            self._flush()
