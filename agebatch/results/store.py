"""Where a Parquet dataset's parts live: a local folder or an object-storage prefix.

A part is committed whole or not at all: locally through a temporary name and a rename, in an object
store with one upload of the finished bytes (an object becomes visible only when its upload
completes). So a reader (the report, pandas, DuckDB, Spark) never counts half a part, whatever kills
the writer; temporary names start with a dot, which those readers leave out.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path
from typing import Any

from agebatch.common import atomic, urls
from agebatch.results.parquet import read_index, require_pyarrow, starts_like_parquet
from agebatch.results.schema import OutputError

PART_NAME = re.compile(r"part-[0-9A-Za-z_.-]+\.parquet")
_OUR_TEMPORARY = re.compile(r"\.part-[0-9A-Za-z_.-]+\.parquet\.[A-Za-z0-9_]+\.tmp")


def run_prefix() -> str:
    """The start of one run's part names: its UTC start time (parts sort in the order they were made)
    and a random tag (two writers never pick the same name)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


class PartStore:
    """The parts of one dataset: listing them, writing one, reading the ``--resume`` index from them."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.remote = urls.is_url(location)
        if self.remote:
            self.fs, self.root = urls.filesystem(location)
        else:
            self.fs, self.root = None, os.fspath(location).rstrip("/") or "/"

    # -- what is there ----------------------------------------------------------------------
    def exists(self) -> bool:
        if self.remote:
            self.fs.invalidate_cache(self.root)  # another shard's parts may have appeared since the last look
            return self.fs.exists(self.root)
        return Path(self.root).is_dir()

    def names(self) -> list[str]:
        """Every name directly inside the dataset, sorted (empty when it does not exist yet)."""
        if not self.exists():
            return []
        try:
            if self.remote:
                return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))
            return sorted(os.listdir(self.root))
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot list {self.location}: {exc}") from exc

    def part_names(self) -> list[str]:
        return [n for n in self.names() if PART_NAME.fullmatch(n)]

    def part_paths(self) -> list[str]:
        return [self.path_of(n) for n in self.part_names()]

    def path_of(self, name: str) -> str:
        return f"{self.root}/{name}"

    def foreign_names(self) -> list[str]:
        """Names that are neither parts nor our temporary files: a folder someone else uses."""
        return [n for n in self.names() if not (PART_NAME.fullmatch(n) or _OUR_TEMPORARY.fullmatch(n))]

    def remove_stale_temporaries(self, prefix: str = "part-") -> None:
        """Temporary parts of killed runs whose names start with ``prefix`` (a shard's own: another
        shard may be writing its part right now). Local only: an object store shows no unfinished upload."""
        if not self.remote:
            for name in self.names():
                if _OUR_TEMPORARY.fullmatch(name) and name.startswith("." + prefix):
                    Path(self.root, name).unlink(missing_ok=True)

    # -- writing ----------------------------------------------------------------------------
    def create(self) -> None:
        """Make the dataset's folder; its parent must exist (a typo is not a new tree), and in object
        storage its bucket (a store would make a mistyped bucket; prefixes need no making)."""
        if self.remote:
            bucket = self.root.split("/", 1)[0]
            try:
                found = self.fs.exists(bucket)
            except Exception as exc:  # the store's own errors (credentials, endpoint) in one line
                raise OutputError(f"cannot reach {self.location}: {exc}") from exc
            if not found:
                raise OutputError(f"no such bucket: {bucket} (for {self.location})")
            return
        folder = Path(self.root)
        if not folder.parent.is_dir():
            raise OutputError(f"output folder does not exist: {folder.parent}")
        try:
            folder.mkdir(exist_ok=True)
            fd, probe = atomic.new_temp_fd(folder / "part-probe.parquet")  # can parts be written here?
            os.close(fd)
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"cannot write in {self.location}: {exc.strerror or exc}") from exc

    def write_part(self, name: str, table: Any) -> str:
        """Commit ``table`` as the part ``name``, whole or not at all; returns its path."""
        pa = require_pyarrow()
        sink = pa.BufferOutputStream()
        pa.parquet.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        path = self.path_of(name)
        try:
            if self.remote:
                self.fs.pipe_file(path, data)
            else:
                atomic.write_bytes(path, data)
        except OSError as exc:
            raise OutputError(f"cannot write {self.location}: {exc.strerror or exc}") from exc
        return path

    # -- reading ----------------------------------------------------------------------------
    def dataset(self, paths: list[str] | None = None) -> Any:
        """The parts as one ``pyarrow.dataset`` (only the part files, never anything else in the folder)."""
        paths = self.part_paths() if paths is None else paths
        return _arrow_dataset(paths, self.fs)

    def index(self) -> dict:
        """The ``--resume`` index over every part: path -> (size, mtime)."""
        paths = self.part_paths()
        if not paths:
            return {}
        try:
            dataset = self.dataset(paths)
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read the parts of {self.location}: {exc}") from exc
        return read_index(dataset, self.location)


def _arrow_dataset(paths: list[str], fs: Any = None) -> Any:
    """``paths`` (local, or in the fsspec filesystem ``fs``) as one ``pyarrow.dataset``."""
    require_pyarrow()
    import pyarrow.dataset as ds

    if fs is None:
        return ds.dataset(paths, format="parquet")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return ds.dataset(paths, format="parquet", filesystem=PyFileSystem(FSSpecHandler(fs)))


def parquet_results(location: str) -> Any | None:
    """The Parquet results at ``location`` as a ``pyarrow.dataset``: a dataset's parts (a folder or an
    object-storage prefix) or one ``.parquet`` file; None for a local file or folder that is not Parquet
    (a CSV file, a folder without parts). Raises ``OutputError`` for a URL that names nothing."""
    if urls.is_url(location):
        fs, path = urls.filesystem(location)
        try:
            if fs.isdir(path):
                store = PartStore(location)
                return store.dataset() if store.part_names() else None
            if fs.isfile(path):
                return _arrow_dataset([path], fs)
        except (OSError, ValueError) as exc:
            raise OutputError(f"cannot read {location}: {exc}") from exc
        raise OutputError(f"nothing at {location}")
    if os.path.isdir(location):
        store = PartStore(location)
        return store.dataset() if store.part_names() else None
    return _arrow_dataset([location]) if starts_like_parquet(location) else None
