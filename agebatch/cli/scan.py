"""``agebatch scan`` and ``agebatch merge``: photos in, a results file out (``scanning.job``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from agebatch import results
from agebatch.cli._app import (
    EXIT_FAILED_FILES,
    EXIT_NO_IMAGES,
    Fail,
    app,
    fail_message,
    interrupted_code,
    reader_gone,
    say,
)
from agebatch.cli._params import (
    DEFAULT_DETECTOR,
    DetectorOption,
    Engine,
    FlipAverageOption,
    Format,
    MinFaceOption,
    MinScoreOption,
    ModelOption,
    QuietOption,
    VideoRows,
    library_option,
    library_values,
    scan_default,
    scan_option,
)
from agebatch.common import progress, stdio
from agebatch.common.text import count, printable
from agebatch.scanning.options import ModelOptions, OutputOptions, ScanOptions


def _output(name: str, *flags: str, **limits):
    return library_option(OutputOptions, name, *flags, **limits)


EXAMPLES_SCAN = """
Examples:

\b
  agebatch scan ./photos --out results.csv
  agebatch scan ./photos --out results.csv --resume --quiet   # nightly
  agebatch scan faces/ --detector none --out crops.jsonl --format jsonl
"""


@app.command(epilog=EXAMPLES_SCAN)
def scan(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Image files and/or folders (or s3://, gs:// prefixes) to scan; - reads the paths from stdin.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    out: Annotated[str, _output("out", "--out", "-o", metavar="FILE", show_default=False)],
    fmt: Annotated[Format | None, _output("format", "--format", "-f", metavar=None)] = None,
    resume: Annotated[bool, _output("resume")] = False,
    recursive: Annotated[bool, scan_option("recursive")] = scan_default("recursive"),
    exclude: Annotated[list[str] | None, scan_option("exclude", metavar="GLOB")] = None,
    follow_symlinks: Annotated[bool, scan_option("follow_symlinks")] = scan_default("follow_symlinks"),
    detector: DetectorOption = DEFAULT_DETECTOR,
    min_face: MinFaceOption = scan_default("min_face"),
    min_score: MinScoreOption = scan_default("min_score"),
    batch_size: Annotated[int, scan_option("batch_size", min=1, max=4096)] = scan_default("batch_size"),
    jobs: Annotated[int | None, scan_option("jobs", min=1)] = scan_default("jobs"),
    shard: Annotated[str | None, scan_option("shard", metavar="I/N")] = None,
    video_fps: Annotated[float, scan_option("video_fps", min=0.01, max=120.0)] = scan_default("video_fps"),
    video_rows: Annotated[VideoRows, scan_option("video_rows", metavar=None)] = VideoRows(scan_default("video_rows")),
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Run the scan on Ray (a cluster at $RAY_ADDRESS or --ray-address, else local)."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray).", metavar="ADDRESS"),
    ] = None,
    model: ModelOption = None,
    engine: Annotated[Engine, library_option(ModelOptions, "engine", metavar=None)] = Engine.auto,
    flip_average: FlipAverageOption = False,
    excel_safe: Annotated[bool, _output("excel_safe")] = False,
    wait: Annotated[bool, _output("wait")] = False,
    null: Annotated[
        bool, typer.Option("--null", "-0", help="With PATH -, the paths on stdin end with NUL (find -print0).")
    ] = False,
    summary_json: Annotated[Path | None, _output("summary_json", metavar="FILE")] = None,
    strict: Annotated[
        bool, typer.Option(help="Exit 5 when any image is an error row (without it: only when every image is).")
    ] = False,
    quiet: QuietOption = False,
) -> None:
    """Find faces in PATHS and write one row per face with estimated age and gender."""
    from agebatch.scanning.job import paths_from, run_scan
    from agebatch.scanning.sharding import parse_shard

    values = dict(locals(), format=fmt)
    try:
        values["shard"] = parse_shard(shard) if shard is not None else None
    except ValueError as exc:
        raise Fail(str(exc)) from exc
    listed = [str(p) for p in paths] == ["-"]
    if listed:
        if sys.stdin.isatty() and not quiet:
            say("agebatch: reading paths from stdin, one a line; end with Ctrl-D")
        paths = paths_from(sys.stdin.buffer, null)
    ray_options = None
    if ray or ray_address:
        from agebatch.scanning.distributed import RayOptions

        ray_options = RayOptions(address=ray_address)
    try:
        summary = run_scan(
            paths,
            ScanOptions(**library_values(ScanOptions, values)),
            ModelOptions(**library_values(ModelOptions, values)),
            OutputOptions(**library_values(OutputOptions, values)),
            ray_options,
            progress.interactive(quiet),
            listed,
        )
    except BrokenPipeError:  # --out - and the reader went away (``| head``)
        reader_gone()
    except KeyboardInterrupt as exc:
        summary = getattr(exc, "summary", None)
        done = f" after {summary.images} images" if summary else ""
        hint = "run the same command with --resume to continue" if results.output_exists(out) else "nothing was written"
        say(f"agebatch: interrupted{done}; {hint}")
        raise typer.Exit(interrupted_code()) from None
    if not quiet:  # the one-line summary, also when stderr is a log file or a pipe
        say(f"{'stdout' if str(out) == '-' else printable(out)}: {summary.line()}")
    raise typer.Exit(_exit_code(summary, strict, shard is not None))


def _exit_code(summary, strict: bool, sharded: bool) -> int:
    """4 when nothing was found to scan (not for a shard, which may hold no image of its own); 5 when
    every image failed, or with ``strict`` any did; else 0. Said on stderr even with --quiet."""
    if summary.images == 0 and summary.skipped == 0 and not sharded:
        fail_message("no image found to scan")
        return EXIT_NO_IMAGES
    if summary.errors and (strict or summary.errors == summary.images):
        fail_message(f"{count(summary.errors, 'image')} of {summary.images} could not be read (see the error rows)")
        return EXIT_FAILED_FILES
    return 0


@app.command()
def merge(
    parts: Annotated[
        list[str],
        typer.Argument(
            help="Results files (or Parquet datasets) of one scan's shards.", show_default=False, metavar="PART"
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out", "-o", help="Results file to write (all the parts, once each); - for stdout.", metavar="FILE"
        ),
    ],
    quiet: QuietOption = False,
) -> None:
    """Put the shards of one scan together: refuses overlapping parts and parts with other columns."""
    from agebatch.results import merge as merge_parts

    if str(out) == "-":
        stdio.require_stdout()
    try:
        summary = merge_parts(parts, out, sys.stdout.buffer)
    except BrokenPipeError:  # --out - and the reader went away
        reader_gone()
    if not quiet:
        say(f"{printable(out)}: {count(summary.images, 'image')} from {count(summary.parts, 'part')}")
