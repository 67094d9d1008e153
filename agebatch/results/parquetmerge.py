"""Putting Parquet parts together (``agebatch merge`` of Parquet files or datasets, local or in object
storage) into one Parquet file, with the checks a CSV merge makes: every part agebatch's, no image
twice, the output written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from agebatch import __version__
from agebatch.common import atomic, urls
from agebatch.common.text import one_line, printable
from agebatch.results.parquet import arrow_schema, check_schema, require_pyarrow, starts_like_parquet
from agebatch.results.schema import OutputError, is_dataset, metadata_path, write_metadata
from agebatch.results.store import parquet_results
from agebatch.results.writer import OutputLock


def is_parquet_part(name: str) -> bool:
    """True for a part a Parquet merge reads: a URL, a dataset folder, or a Parquet file."""
    return urls.is_url(name) or is_dataset(name) or name.lower().endswith(".parquet") or starts_like_parquet(name)


def merge_parquet(parts: list[str], out: str) -> tuple[int, int]:
    """Concatenate Parquet ``parts`` into the Parquet file ``out``; returns (images, rows)."""
    if out == "-" or urls.is_url(out) or is_dataset(out) or not out.lower().endswith(".parquet"):
        raise OutputError(f"--out {out}: Parquet parts merge into one local .parquet file")
    if not all(is_parquet_part(p) for p in parts):
        raise OutputError("the parts mix Parquet and CSV or JSON Lines: merge parts of one scan, in one format")
    local = [p for p in parts if not urls.is_url(p)]
    try:
        atomic.check_output(out, local)
    except atomic.UnsafeOutputError as exc:
        raise OutputError(str(exc)) from exc
    folder = os.path.dirname(os.path.abspath(out))
    if any(os.path.isdir(p) and atomic.same_file(folder, p) for p in local):
        raise OutputError(f"--out {out} is inside a dataset being merged; write it elsewhere")
    pa = require_pyarrow()
    try:
        datasets = [_opened(p) for p in parts]
        images = _check_disjoint(parts, datasets)
        rows = _write(datasets, Path(out), parts)
    except (ValueError, pa.ArrowException) as exc:  # a damaged part: a footer missing, a column's type
        raise OutputError(f"cannot read the parts: {one_line(exc)}") from exc
    return images, rows


def _opened(part: str):
    try:
        dataset = parquet_results(part)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read {part}: {one_line(exc)}") from exc
    if dataset is None:
        raise OutputError(f"{part} is not agebatch Parquet results")
    check_schema(dataset.schema, part)
    return dataset


def _check_disjoint(parts: list[str], datasets: list) -> int:
    """The number of images, once no image is in two parts, nor in two files of one dataset."""
    seen: dict[str, str] = {}
    for part, dataset in zip(parts, datasets):
        mine: dict[str, str] = {}
        for fragment in dataset.get_fragments():
            for path in set(fragment.to_table(columns=["path"]).column("path").to_pylist()):
                if path in seen:
                    raise OutputError(f"{printable(path)} is in both {seen[path]} and {part}: the parts overlap")
                if path in mine and mine[path] != fragment.path:
                    raise OutputError(f"{printable(path)} is listed twice in {part}: it is not one scan's part")
                mine[path] = fragment.path
        seen.update(dict.fromkeys(mine, part))
    return len(seen)


def _write(datasets: list, out: Path, parts: list[str]) -> int:
    pq = require_pyarrow().parquet
    schema = arrow_schema()
    rows = 0
    with OutputLock(out):
        if out.exists() and not starts_like_parquet(out):
            raise OutputError(f"{out} exists and is not a Parquet results file; refusing to replace it")
        metadata_path(out).unlink(missing_ok=True)  # it described the rows this replaces
        try:
            with (
                atomic.atomic_path(out) as path,
                pq.ParquetWriter(os.fspath(path), schema, compression="zstd") as writer,
            ):
                for dataset in datasets:
                    for batch in dataset.to_batches(columns=list(schema.names)):
                        writer.write_batch(batch.cast(schema))
                        rows += batch.num_rows
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror or exc}") from exc
        write_metadata(out, {"agebatch": __version__, "merged_from": parts})
    return rows
