"""Results as Parquet: the CSV's columns with numbers stored as numbers, rows to tables, and the
``--resume`` index read back from the three columns it needs."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from agebatch.results.schema import ALL_COLUMNS, COLUMNS, OutputError

PARQUET_HINT = "Parquet results need pyarrow: pip install 'agebatch[parquet]' (from a clone: pip install '.[parquet]')"
MAGIC = b"PAR1"  # the first (and last) four bytes of every Parquet file
ROW_GROUP_ROWS = 65_536  # rows held in memory before they are written out as a row group
_INTEGERS = ("face", "x", "y", "width", "height", "faces", "frames")
_WHOLE = ("file_size",)
_TEXT = ("path", "gender", "status", "error", "taken_at")
_KEY_COLUMNS = ("path", "file_size", "file_mtime")


def require_pyarrow() -> Any:
    """The ``pyarrow`` module with its Parquet reader and writer, or ``OutputError`` with the hint."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the writer and reader used throughout
    except ImportError as exc:
        raise OutputError(PARQUET_HINT) from exc
    return pyarrow


def arrow_type(column: str) -> Any:
    """The Arrow type of a results column: counts and boxes as 32-bit integers, sizes as 64-bit, the
    names and words as text, every estimate and score as a double."""
    pa = require_pyarrow()
    if column in _INTEGERS:
        return pa.int32()
    if column in _WHOLE:
        return pa.int64()
    return pa.string() if column in _TEXT else pa.float64()


def arrow_schema(columns: tuple[str, ...] = ALL_COLUMNS) -> Any:
    """The schema every Parquet file agebatch writes has (the CSV's columns, in the CSV's order)."""
    pa = require_pyarrow()
    return pa.schema([pa.field(c, arrow_type(c)) for c in columns])


def table_of(rows: Iterable[dict]) -> Any:
    """Rows (as ``scanning.rows`` makes them) as an Arrow table of ``arrow_schema``; missing cells null."""
    pa = require_pyarrow()
    rows = list(rows)
    return pa.table({c: pa.array([row.get(c) for row in rows], arrow_type(c)) for c in ALL_COLUMNS})


def check_schema(schema: Any, name: object) -> None:
    """Refuse a Parquet file that is not agebatch results (its columns must include the CSV's required ones)."""
    missing = [c for c in COLUMNS if c not in schema.names]
    if missing:
        raise OutputError(
            f"{name} is a Parquet file without agebatch's columns ({', '.join(missing[:3])}); choose another --out"
        )


def starts_like_parquet(path: str | os.PathLike) -> bool:
    """True when the local file begins with Parquet's magic bytes."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == MAGIC
    except OSError:
        return False


def add_to_index(done: dict, batch: Any) -> None:
    """Add each image of a record batch (``path``, ``file_size``, ``file_mtime``) to ``done``, the
    ``--resume`` index: path -> (size, mtime)."""
    columns = batch.to_pydict()
    for path, size, mtime in zip(columns["path"], columns["file_size"], columns["file_mtime"]):
        if path is not None and path not in done:
            done[path] = (-1 if size is None else int(size), None if mtime is None else float(mtime))


def read_index(dataset: Any, name: object) -> dict:
    """The ``--resume`` index of Parquet results (a ``pyarrow.dataset``), read column-wise."""
    done: dict = {}
    try:
        check_schema(dataset.schema, name)
        for batch in dataset.to_batches(columns=list(_KEY_COLUMNS)):
            add_to_index(done, batch)
    except OutputError:
        raise
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {name} as Parquet: {exc}") from exc
    return done


def index_of_file(path: str | os.PathLike, name: object) -> dict:
    """The ``--resume`` index of one local Parquet file."""
    require_pyarrow()
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset(os.fspath(path), format="parquet")
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {name} as Parquet: {exc}") from exc
    return read_index(dataset, name)
