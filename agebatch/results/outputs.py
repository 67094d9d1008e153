"""Which writer an ``--out`` gets: a CSV or JSON Lines file, one Parquet file, or a Parquet dataset
(a local folder or an object-storage prefix)."""

from __future__ import annotations

import os

from agebatch.common import urls
from agebatch.results.parquetwriter import DatasetWriter, ParquetFileWriter
from agebatch.results.schema import OutputError, is_dataset
from agebatch.results.writer import ResultsWriter

REMOTE_HINT = "in object storage results are a Parquet dataset: end --out with / (s3://bucket/results/)"


def open_writer(
    out: str | os.PathLike,
    fmt: str,
    resume: bool = False,
    excel: bool = False,
    wait: bool = False,
    owner: str = "",
) -> ResultsWriter | ParquetFileWriter | DatasetWriter:
    """The writer for ``out`` in ``fmt`` (``schema.format_for`` decided it), not yet entered; ``owner``
    names a shard, whose parts go into a shared dataset beside the other shards'."""
    if fmt == "parquet" and is_dataset(out):
        return DatasetWriter(out, resume, wait, owner)
    if urls.is_url(out):
        raise OutputError(f"{out}: {REMOTE_HINT}")
    if fmt == "parquet":
        return ParquetFileWriter(out, resume, wait)
    return ResultsWriter(out, fmt, resume, excel, wait)


def output_exists(out: str | os.PathLike) -> bool:
    """Whether rows of an interrupted run may be there to resume (an object-storage prefix is assumed to)."""
    return urls.is_url(out) or os.path.exists(out)
