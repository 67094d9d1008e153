"""What ``agebatch scan`` does from its options: check what can be checked cheaply, load the model
once, scan into the results file (or stdout), and write the summary.

The checks come first and each runs once, so a bad path, a damaged detector file, a missing extra or
an unusable output is one clear ``SetupError`` before the model loads, not an error row per image.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING

from agebatch import results
from agebatch.common import atomic, progress, stdio
from agebatch.common.errors import SetupError
from agebatch.scanning.options import ModelOptions, OutputOptions, ScanOptions
from agebatch.scanning.predictor import Predictor
from agebatch.scanning.scanner import ScanSummary, check_inputs, write_to_file, write_to_stream

if TYPE_CHECKING:
    from agebatch.scanning.distributed import RayOptions


def paths_from(stream: IO[bytes], null: bool = False) -> list[str]:
    """PATH ``-``: one path a line (or NUL-separated with ``null``) from ``stream``, like xargs."""
    data = stream.read()
    if not null and b"\0" in data:
        raise SetupError("the paths on stdin are separated by NUL bytes (find -print0): add --null (-0)")
    names = data.split(b"\0") if null else data.splitlines()
    paths = [os.fsdecode(name) for name in names if name.strip()]  # text, so an s3:// URL stays one
    if not paths:
        raise SetupError("no paths on stdin (PATH -)")
    return paths


def output_format(output: OutputOptions) -> str:
    """The results format: ``--format``, else from the output's name (CSV for stdout)."""
    if output.to_stdout:
        return output.format or results.FORMATS[0]
    return results.format_for(output.out, output.format)


def run_scan(
    paths: Iterable[str | os.PathLike],
    options: ScanOptions,
    model: ModelOptions,
    output: OutputOptions,
    ray: RayOptions | None = None,
    show_progress: bool = False,
    listed: bool = False,
) -> ScanSummary:
    """Scan ``paths`` into ``output`` with the model ``model`` names, checking everything first.

    ``listed``: the paths came as a list (``scan -``, from ``find``): one that does not exist is an
    error row, not a refusal of the whole run (a file may vanish between ``find`` and the scan).

    Raises ``SetupError`` (one line) for anything that stops the run before it starts; on
    KeyboardInterrupt the exception carries the summary so far as ``exc.summary``.
    """
    paths = list(paths)
    if output.to_stdout and output.resume:
        raise SetupError("--resume needs a results file, not --out -")
    if output.to_stdout:
        stdio.require_stdout()
        if output.format not in (None, *results.TEXT_FORMATS):
            raise SetupError(f"--out - takes {' or '.join(results.TEXT_FORMATS)}; name a file or folder for Parquet")
    if output.summary_json is not None:
        check_summary_out(output.summary_json, output, paths)
    fmt = output_format(output)
    check_inputs(paths, options, listed)
    if ray is not None:
        from agebatch.scanning.distributed import require_ray

        require_ray()
    predictor = Predictor.from_options(model, options.batch_size)
    total = _count_images(paths, options) if show_progress and not output.resume else None
    with progress.scan_progress(show_progress, total) as update:
        if output.to_stdout:
            summary = write_to_stream(paths, sys.stdout, predictor, options, fmt, output.excel_safe, update)
        else:
            summary = write_to_file(paths, predictor, options, output, fmt, update, ray)
    if output.summary_json is not None:
        _write_summary(output, summary)
    return summary


def is_summary(head: bytes) -> bool:
    """True for the first bytes of a summary an earlier scan wrote (``--summary-json``)."""
    return head.lstrip().startswith(b"{") and b'"out"' in head and b'"images"' in head


def check_summary_out(path: str | os.PathLike, output: OutputOptions, paths: list) -> None:
    """The summary may go to ``path``: not the results file, not an input, not a link, and not a file
    other than an earlier summary (it would be lost to a slip of the name)."""
    if str(path) == "-":
        raise SetupError("--summary-json takes a file name (the rows or the summary line may be on stdout)")
    if not output.to_stdout:
        beside = (output.out, results.metadata_path(output.out), results.lock_path(output.out))
        if any(atomic.same_file(path, taken) for taken in beside):
            raise SetupError(f"--summary-json {path} is --out or a file kept beside it: name another file")
    atomic.check_output(path, paths, is_summary, "an agebatch summary")


def _write_summary(output: OutputOptions, summary: ScanSummary) -> None:
    text = json.dumps({"out": output.out, **summary.as_dict()}, indent=1) + "\n"
    try:
        atomic.write_text(output.summary_json, text)
    except OSError as exc:  # the results are committed already: say so, and what failed
        kept = "the rows went to stdout" if output.to_stdout else f"the results in {output.out} are complete"
        raise SetupError(f"cannot write the summary {output.summary_json}: {exc.strerror or exc}; {kept}") from exc


def _count_images(paths: list, options: ScanOptions) -> int:
    """How many images the scan will process, for the progress bar's total and ETA (discovery is quick)."""
    from agebatch.scanning.pipeline import pending_work

    return sum(1 for _ in pending_work(paths, options))
