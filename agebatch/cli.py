"""The ``agebatch`` command: argument parsing only; every command calls the Python API.

Exit codes: 0 the run completed (per-file problems are rows, not failures); 1 unexpected internal
error; 2 usage or setup error (bad argument, missing path, unusable model, unwritable output);
3 nothing to explain (``explain`` on an image without a face); 130 interrupted (Ctrl-C / SIGINT).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agebatch.common import atomic, progress, quiet
from agebatch.common.settings import default_of, help_of
from agebatch.common.text import count, one_line, printable
from agebatch.reporting.options import BIN_WIDTHS, BREAKDOWNS, REPORT_FORMATS, ReportOptions
from agebatch.results import FORMATS
from agebatch.scanning.options import DETECTORS, ENGINES, EXPLAIN_HEADS, ScanOptions
from agebatch.training.config import AGE_HEADS, SAMPLINGS, SCHEDULES, TrainConfig
from agebatch.web.options import ServeOptions

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    import click.exceptions as click_exceptions

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_NO_FACE = 0, 1, 2, 3  # interrupted: 128 + signal (130, 143)


def _argument_type_hidden(self, ctx) -> None:
    """Arguments name their values in their metavar (PATH..., IMAGE); typer would append a Python type."""
    return None


typer.core.TyperArgument.display_type_rich = _argument_type_hidden

app = typer.Typer(
    name="agebatch",
    help="Estimate age and gender for every face in a folder of photos, and report on the results.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done, 1 unexpected error, 2 usage or setup error, 3 no face to explain, 130 interrupted "
    "(143 on SIGTERM, 141 when the reader of stdout goes away).",
)


def _version(value: bool) -> None:
    if value:
        from agebatch import __version__

        typer.echo(f"agebatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Estimate age and gender for every face in a folder of photos, and report on the results."""


class Fail(Exception):
    """A setup or usage problem: printed as one line, exit code 2."""


def _fail_message(message: str) -> None:
    progress.error_console().print(f"agebatch: error: {printable(message)}", markup=False)


def _interrupted_code() -> int:
    """130 after Ctrl-C (SIGINT), 143 after SIGTERM: the shell's 128 + signal number."""
    return 128 + _RECEIVED.get("signal", signal.SIGINT)


_RECEIVED: dict[str, int] = {}


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (systemd, ``timeout``, a scheduler) stops like Ctrl-C: finished rows are kept."""
    _RECEIVED["signal"] = signum
    raise KeyboardInterrupt


def _choices(name: str, values: tuple) -> type[StrEnum]:
    """A typer choice type for one of the library's choice lists."""
    return StrEnum(name, [(str(value), str(value)) for value in values])


# Choices that the library defines, as enums for typer's help and validation.
Detector = _choices("Detector", DETECTORS)
Format = _choices("Format", FORMATS)
Engine = _choices("Engine", ENGINES)
Schedule = _choices("Schedule", SCHEDULES)
AgeHead = _choices("AgeHead", AGE_HEADS)
Sampling = _choices("Sampling", SAMPLINGS)
ReportFormat = _choices("ReportFormat", REPORT_FORMATS)
BinWidth = _choices("BinWidth", BIN_WIDTHS)
Breakdown = _choices("Breakdown", BREAKDOWNS)
Head = _choices("Head", EXPLAIN_HEADS)


def _metavar(cls: type, name: str) -> str | None:
    """A short placeholder for an option's value in --help (N, X, PATH...), from the field's type."""
    kind = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    for words, metavar in (("bool", None), ("tuple", "VALUE"), ("int", "N"), ("float", "X"), ("str", "TEXT")):
        if kind.startswith(words) or f" {words}" in kind or f"[{words}" in kind:
            return metavar
    return None


def _library_option(cls: type, name: str, flags: tuple[str, ...], limits: dict):
    """A typer option whose help text (and value placeholder) come from the library's field ``name``."""
    limits.setdefault("metavar", _metavar(cls, name))
    return typer.Option(*flags, help=help_of(cls, name), **limits)


def _scan(name: str, *flags: str, **limits):
    """A typer option whose help text is ScanOptions' field ``name`` (declared once, in the library)."""
    return _library_option(ScanOptions, name, flags, limits)


def _report(name: str, *flags: str, **limits):
    return _library_option(ReportOptions, name, flags, limits)


def _train(name: str, *flags: str, **limits):
    return _library_option(TrainConfig, name, flags, limits)


def _scan_default(name: str):
    return default_of(ScanOptions, name)


def _train_default(name: str):
    return default_of(TrainConfig, name)


# Options that scan, predict and explain share, declared once.
DetectorOption = Annotated[Detector, _scan("detector", metavar=None)]
MinFaceOption = Annotated[int, _scan("min_face", min=1)]
MinScoreOption = Annotated[float | None, _scan("min_score", min=0.0, max=1.0, show_default=False)]
FlipAverageOption = Annotated[
    bool,
    typer.Option(
        help="Also run each face mirrored and average the two: slightly more accurate, half the speed.",
    ),
]
ModelOption = Annotated[
    Path | None,
    typer.Option(help="Model file (.keras); default: the shipped model or $AGEBATCH_MODEL.", metavar="MODEL"),
]


PREDICT_COLUMNS = ("image", "face", "box (x, y, w, h)", "age", "gender", "confidence")


def _print_table(columns: tuple[str, ...], rows: list[list[str]]) -> None:
    """A table on a terminal; tab-separated lines (header first) for a pipe or a file."""
    if not sys.stdout.isatty():
        for row in (list(columns), *rows):
            typer.echo("\t".join(cell.replace("\t", " ") for cell in row))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text cells: a file name is never read as markup
    Console().print(table)


def _check_detector(detector: Detector) -> None:
    from agebatch.common.vendored import VendoredFileError
    from agebatch.scanning.faces import check_detector

    try:
        check_detector(detector.value)
    except VendoredFileError as exc:
        raise Fail(str(exc)) from exc


def _predictor(model: Path | None, batch_size: int, engine: Engine = Engine.auto, flip_average: bool = False):
    from agebatch.scanning.predictor import ModelLoadError, Predictor

    try:
        return Predictor(model, batch_size=batch_size, engine=engine.value, flip_average=flip_average)
    except ModelLoadError as exc:
        raise Fail(str(exc)) from exc


EXAMPLES_SCAN = """
Examples:

\b
  agebatch scan ./photos --out results.csv
  agebatch scan ./photos --out results.csv --resume --quiet    # nightly cron job
  agebatch scan faces/ --detector none --out crops.jsonl --format jsonl
"""


@app.command(epilog=EXAMPLES_SCAN)
def scan(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Image files and/or folders to scan; - reads the paths from stdin.",
            show_default=False,
            metavar="PATH",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results file to write (CSV or JSONL); - for stdout.", metavar="FILE")
    ],
    fmt: Annotated[
        Format | None, typer.Option("--format", "-f", help="Output format (default: from --out's extension, else csv).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip images already in --out (same path, size, mtime); append new ones.")
    ] = False,
    recursive: Annotated[bool, _scan("recursive")] = _scan_default("recursive"),
    exclude: Annotated[list[str] | None, _scan("exclude", metavar="GLOB")] = None,
    follow_symlinks: Annotated[bool, _scan("follow_symlinks")] = _scan_default("follow_symlinks"),
    detector: DetectorOption = Detector(_scan_default("detector")),
    min_face: MinFaceOption = _scan_default("min_face"),
    min_score: MinScoreOption = _scan_default("min_score"),
    batch_size: Annotated[int, _scan("batch_size", min=1, max=4096)] = _scan_default("batch_size"),
    jobs: Annotated[int | None, _scan("jobs", min=1)] = _scan_default("jobs"),
    shard: Annotated[str | None, _scan("shard", metavar="I/N")] = None,
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Run the scan on Ray (a cluster at $RAY_ADDRESS or --ray-address, else local)."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (default: $RAY_ADDRESS, else a local Ray).", metavar="ADDRESS"),
    ] = None,
    model: ModelOption = None,
    engine: Annotated[
        Engine, typer.Option(help="Inference engine: tflite (fast, used when the model has a .tflite twin) or keras.")
    ] = Engine.auto,
    flip_average: FlipAverageOption = False,
    excel_safe: Annotated[bool, typer.Option(help="Neutralise cells a spreadsheet would run as formulas.")] = False,
    wait: Annotated[
        bool, typer.Option(help="If another scan is writing --out, wait for it instead of failing.")
    ] = False,
    null: Annotated[
        bool, typer.Option("--null", "-0", help="With PATH -, the paths on stdin end with NUL (find -print0).")
    ] = False,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the run's summary as JSON to this file.", metavar="FILE")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Find faces in PATHS and write one row per face with estimated age and gender."""
    from agebatch.results import OutputError, format_for
    from agebatch.scanning.scanner import scan_to_file, scan_to_stream

    to_stdout = str(out) == "-"
    if to_stdout and resume:
        raise Fail("--resume needs a results file, not --out -")
    if summary_json is not None:
        _check_plain_out(summary_json, paths)
    paths = _stdin_paths(null) if [str(p) for p in paths] == ["-"] else paths
    try:
        output_format = format_for(out, fmt.value if fmt else None) if not to_stdout else (fmt.value if fmt else "csv")
    except OutputError as exc:
        raise Fail(str(exc)) from exc
    from agebatch.scanning.sharding import parse_shard

    try:
        part = parse_shard(shard) if shard is not None else None
    except ValueError as exc:
        raise Fail(str(exc)) from exc
    options = ScanOptions(
        shard=part,
        recursive=recursive,
        exclude=tuple(exclude or ()),
        follow_symlinks=follow_symlinks,
        detector=detector.value,
        min_face=min_face,
        min_score=min_score,
        batch_size=batch_size,
        jobs=jobs,
    )
    from agebatch.scanning.discovery import check_paths

    check_paths(paths)
    _check_detector(detector)
    ray_options = None
    if ray or ray_address:
        from agebatch.scanning.distributed import RayOptions, RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as exc:
            raise Fail(str(exc)) from exc
        ray_options = RayOptions(address=ray_address)
    predictor = _predictor(model, batch_size, engine, flip_average)
    show = progress.interactive(quiet)
    total = _count_images(paths, options) if show and not resume else None
    try:
        with progress.scan_progress(show, total) as update:
            if to_stdout:
                summary = scan_to_stream(paths, sys.stdout, predictor, options, output_format, excel_safe, update)
            else:
                summary = scan_to_file(
                    paths, out, predictor, options, output_format, resume, excel_safe, wait, update, ray=ray_options
                )
    except BrokenPipeError:  # --out - and the reader went away (``| head``)
        _reader_gone()
    except KeyboardInterrupt as exc:
        summary = getattr(exc, "summary", None)
        done = f" after {summary.images} images" if summary else ""
        kept = Path(out).exists()
        hint = "run the same command with --resume to continue" if kept else "nothing was written"
        progress.error_console().print(f"agebatch: interrupted{done}; {hint}", markup=False)
        raise typer.Exit(_interrupted_code()) from None
    if summary_json is not None:
        atomic.write_text(summary_json, json.dumps({"out": str(out), **summary.as_dict()}, indent=1) + "\n")
    if not quiet:  # the one-line summary, also when stderr is a log file or a pipe
        progress.error_console().print(f"{printable(out)}: {summary.line()}", markup=False)


def _stdin_paths(null: bool) -> list[Path]:
    """PATH ``-``: one path a line (or NUL-separated with ``--null``) from standard input, like xargs."""
    data = sys.stdin.buffer.read()
    names = data.split(b"\0") if null else data.splitlines()
    paths = [Path(os.fsdecode(name)) for name in names if name.strip()]
    if not paths:
        raise Fail("no paths on stdin (PATH -)")
    return paths


def _count_images(paths: list[Path], options) -> int:
    """How many images the scan will process, for the progress bar's total and ETA (discovery is quick)."""
    from agebatch.scanning.pipeline import pending_work

    return sum(1 for _ in pending_work(paths, options))


def _check_plain_out(out: Path, inputs: list[Path]) -> None:
    try:
        atomic.check_output(out, inputs)
    except atomic.UnsafeOutputError as exc:
        raise Fail(str(exc)) from exc


@app.command()
def models(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show the model scans use (or --model): file, SHA-256, LiteRT twin, and its card's test figures."""
    from agebatch.scanning.engines import checked_twin, file_sha256, tflite_path_for
    from agebatch.scanning.predictor import MODEL_ENV, default_model_path
    from agebatch.training.modelcard import card_for_model

    path = model or default_model_path()
    if not path.is_file():
        raise Fail(f"model file not found: {path}")
    lite = tflite_path_for(path)
    card = card_for_model(path) or {}
    figures = {
        name: {
            k: v
            for k, v in scored.get("overall", {}).items()
            if k in ("n", "age_mae", "gender_accuracy", "age_band_accuracy")
        }
        for name, scored in (
            (card.get("test_metrics") or {}).get("by_source") or {"test": card.get("test_metrics") or {}}
        ).items()
    }
    info = {
        "model": str(path),
        "source": "--model" if model else f"${MODEL_ENV}" if os.environ.get(MODEL_ENV) else "shipped with agebatch",
        "sha256": file_sha256(path),
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "litert_twin": str(lite) if lite.is_file() else None,
        "twin_verified": bool(lite.is_file() and checked_twin(path, lite)),
        "card": card.get("name"),
        "created": card.get("created"),
        "test_figures": figures,
    }
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key != "test_figures":
            typer.echo(f"{key:>13}: {printable(value)}")
    for name, scored in figures.items():
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scored.items()]
        typer.echo(f"{'test ' + name:>13}: {', '.join(parts)}")


@app.command()
def merge(
    parts: Annotated[
        list[Path], typer.Argument(help="Results files of one scan's shards.", show_default=False, metavar="PART")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Results file to write (all the parts, once each).", metavar="FILE")
    ],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Put the shards of one scan together: refuses overlapping parts and parts with other columns."""
    from agebatch.results import merge as merge_parts

    summary = merge_parts(parts, out)
    if not quiet:
        progress.error_console().print(
            f"{printable(out)}: {count(summary.images, 'image')} from {count(summary.parts, 'part')}", markup=False
        )


EXAMPLES_REPORT = """
Examples:

\b
  agebatch report results.csv --out report.html
  agebatch report results.csv --depth 2 --out report.html
  agebatch report monday.csv tuesday.csv --out compare.html
  agebatch report results.csv --format json --out report.json
  agebatch report results.csv --by taken_at --out by-date.html
"""


@app.command(epilog=EXAMPLES_REPORT)
def report(
    results_files: Annotated[
        list[Path],
        typer.Argument(help="One or more results files from agebatch scan.", show_default=False, metavar="RESULTS"),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report file to write; - for stdout.", metavar="FILE")],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="html (self-contained page) or json (aggregates).")
    ] = ReportFormat(REPORT_FORMATS[0]),
    depth: Annotated[int, _report("depth", min=1)] = default_of(ReportOptions, "depth"),
    bins: Annotated[BinWidth, _report("bins", metavar=None)] = BinWidth(str(default_of(ReportOptions, "bins"))),
    min_gender_prob: Annotated[float, _report("min_gender_prob", min=0.0, max=1.0)] = default_of(
        ReportOptions, "min_gender_prob"
    ),
    low_confidence: Annotated[float, _report("low_confidence", min=0.5, max=1.0)] = default_of(
        ReportOptions, "low_confidence"
    ),
    by: Annotated[list[Breakdown], _report("by", metavar=f"<{'|'.join(BREAKDOWNS)}>", show_default=False)] = [  # noqa: B006 - typer reads it
        Breakdown(b) for b in default_of(ReportOptions, "by")
    ],
    model_card: Annotated[
        Path | None,
        typer.Option(
            help="Model card JSON for the 'how to read this' figures (default: the shipped model's).", metavar="FILE"
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Turn scan results into a self-contained HTML report (or JSON aggregates)."""
    import time

    from agebatch.common.files import read_regular
    from agebatch.reporting.aggregate import ReportError, build_report, report_text, write_report
    from agebatch.scanning.predictor import default_model_path
    from agebatch.training.modelcard import CARD_LIMIT, card_for_model

    to_stdout = str(out) == "-"
    if not to_stdout:  # before any results file is read: a bad --out fails at once
        _check_plain_out(out, results_files)
    card = None
    if model_card is not None:
        try:
            card = json.loads(read_regular(model_card, CARD_LIMIT))
        except (OSError, ValueError) as exc:
            raise Fail(f"cannot read model card {model_card}: {exc}") from exc
    else:
        card = card_for_model(default_model_path())
    started = time.monotonic()
    try:
        data = build_report(
            results_files,
            depth=depth,
            min_gender_prob=min_gender_prob,
            low_confidence=low_confidence,
            model_card=card,
            by=[b.value for b in by],
        )
        if to_stdout:
            sys.stdout.write(report_text(data, fmt.value, int(bins.value)))
        else:
            write_report(data, out, fmt.value, int(bins.value))
    except ReportError as exc:
        raise Fail(str(exc)) from exc
    except BrokenPipeError:  # --out - and the reader went away
        _reader_gone()
    except OSError as exc:
        raise Fail(f"cannot write {out}: {exc.strerror or exc}") from exc
    if not quiet:
        o = data["overall"]
        progress.error_console().print(
            f"{printable(out)}: {count(o['images'], 'image')}, {count(o['faces'], 'face')}, "
            f"{count(o['errors'], 'error')} "
            f"({time.monotonic() - started:.1f} s)",
            markup=False,
        )


@app.command()
def train(
    data_dir: Annotated[
        Path, typer.Argument(help=help_of(TrainConfig, "data_dir"), show_default=False, metavar="DATA")
    ],
    data: Annotated[list[Path] | None, _train("more_data", "--data", metavar="PATH")] = None,
    out: Annotated[Path, _train("out_dir", "--out", metavar="DIR")] = Path(_train_default("out_dir")),
    epochs: Annotated[int, _train("epochs", min=0)] = _train_default("epochs"),
    head_epochs: Annotated[int, _train("head_epochs", min=0)] = _train_default("head_epochs"),
    batch_size: Annotated[int, _train("batch_size", min=1)] = _train_default("batch_size"),
    image_size: Annotated[int, _train("image_size", min=32)] = _train_default("image_size"),
    val_split: Annotated[float, _train("val_split", min=0.0, max=0.9)] = _train_default("val_split"),
    test_split: Annotated[float, _train("test_split", min=0.01, max=0.9)] = _train_default("test_split"),
    seed: Annotated[int, _train("seed")] = _train_default("seed"),
    split_from: Annotated[Path | None, _train("split_from", "--split", metavar="FILE")] = None,
    patience: Annotated[int, _train("patience", min=1)] = _train_default("patience"),
    learning_rate: Annotated[float, _train("learning_rate", min=0.0)] = _train_default("learning_rate"),
    schedule: Annotated[Schedule, _train("schedule", metavar=None)] = Schedule(_train_default("schedule")),
    backbone_weights: Annotated[str, _train("backbone_weights", metavar="WEIGHTS")] = _train_default(
        "backbone_weights"
    ),
    cache_dir: Annotated[Path | None, _train("cache_dir", metavar="DIR")] = None,
    time_limit: Annotated[
        float | None, _train("time_limit_minutes", "--time-limit", min=0.0, metavar="MINUTES")
    ] = None,
    age_head: Annotated[AgeHead, _train("age_head", metavar=None)] = AgeHead(_train_default("age_head")),
    age_loss_weight: Annotated[float, _train("age_loss_weight", min=0.0)] = _train_default("age_loss_weight"),
    sampling: Annotated[Sampling, _train("sampling", metavar=None)] = Sampling(_train_default("sampling")),
    gender_smoothing: Annotated[float, _train("gender_smoothing", min=0.0, max=0.4)] = _train_default(
        "gender_smoothing"
    ),
    color_jitter: Annotated[float, _train("color_jitter", min=0.0)] = _train_default("color_jitter"),
    average_epochs: Annotated[int, _train("average_epochs", min=0)] = _train_default("average_epochs"),
    refit_age_head: Annotated[bool, _train("refit_age_head")] = _train_default("refit_age_head"),
    teacher: Annotated[list[Path] | None, _train("teachers", "--teacher", metavar="MODEL")] = None,
    teacher_weight: Annotated[float, _train("teacher_weight", min=0.0, max=1.0)] = _train_default("teacher_weight"),
    init_from: Annotated[Path | None, _train("init_from", metavar="MODEL")] = None,
    average_with: Annotated[list[Path] | None, _train("average_with", metavar="MODEL")] = None,
    warm_start: Annotated[Path | None, _train("warm_start", metavar="MODEL")] = None,
    smoke: Annotated[
        bool, typer.Option(help="Tiny, fast configuration for tests: small network, 1+1 epochs, 64 images.")
    ] = False,
) -> None:
    """Train the age/gender model on labelled faces from one or more sources."""
    quiet.load_tensorflow()
    from agebatch.training.train import smoke_config
    from agebatch.training.train import train as run_training

    for source in [data_dir, *(data or [])]:
        if not source.exists():
            raise Fail(f"labelled data not found: {source}")
    weights = None if backbone_weights == "none" else backbone_weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise Fail(f"backbone weights not found: {weights}")
    for path in teacher or []:
        if not path.is_file():
            raise Fail(f"teacher model not found: {path}")
    if split_from is not None and not split_from.is_file():
        raise Fail(f"split file not found: {split_from}")
    if out.exists() and not out.is_dir():
        raise Fail(f"--out must be a folder: {out} is a file")
    if init_from is not None and not init_from.is_file():
        raise Fail(f"model to continue from not found: {init_from}")
    if warm_start is not None and not warm_start.is_file():
        raise Fail(f"model to warm-start from not found: {warm_start}")
    for path in average_with or []:
        if not path.is_file():
            raise Fail(f"model to average with not found: {path}")
    try:
        config = TrainConfig(
            data_dir=str(data_dir),
            more_data=tuple(str(path) for path in data or []),
            age_head=age_head.value,
            sampling=sampling.value,
            warm_start=str(warm_start) if warm_start else None,
            out_dir=str(out),
            epochs=epochs,
            head_epochs=head_epochs,
            batch_size=batch_size,
            image_size=image_size,
            val_split=val_split,
            test_split=test_split,
            seed=seed,
            split_from=str(split_from) if split_from else None,
            patience=patience,
            learning_rate=learning_rate,
            schedule=schedule.value,
            backbone_weights=weights,
            cache_dir=str(cache_dir) if cache_dir else None,
            time_limit_minutes=time_limit,
            age_loss_weight=age_loss_weight,
            gender_smoothing=gender_smoothing,
            color_jitter=color_jitter,
            average_epochs=average_epochs,
            refit_age_head=refit_age_head,
            teachers=tuple(str(path) for path in teacher or []),
            teacher_weight=teacher_weight,
            init_from=str(init_from) if init_from else None,
            average_with=tuple(str(path) for path in average_with or []),
        )
    except ValueError as exc:  # options that contradict one another
        raise Fail(str(exc)) from exc
    if smoke:
        config = smoke_config(config)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_training(config)
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        raise Fail(str(exc)) from exc
    o = result.test_metrics["overall"]
    typer.echo(
        f"model: {result.model_path}\ncard: {result.card_path}\n"
        f"test: age MAE {o.get('age_mae', float('nan')):.2f} years, "
        f"gender accuracy {100 * o['gender_accuracy']:.1f}% (n={o['n']})"
    )


@app.command()
def evaluate(
    data_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled faces: UTKFace-style folders, folders with labels.csv, or CSVs.",
            show_default=False,
            metavar="DATA",
        ),
    ],
    model: ModelOption = None,
    split_file: Annotated[
        Path | None, typer.Option("--split", help="split.csv from training: score only its test part.", metavar="FILE")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print all figures as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with plots.", metavar="FILE")] = None,
    limit: Annotated[int | None, typer.Option(help="Score at most this many images.", min=1, metavar="N")] = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Score a model on labelled faces: age MAE, RMSE, gender accuracy, per age band, gender and race."""
    quiet.load_tensorflow()
    from agebatch.scanning.predictor import ModelLoadError, default_model_path
    from agebatch.training.evaluate import evaluate_folder, format_text, write_html

    for source in data_dirs:
        if not source.exists():
            raise Fail(f"labelled data not found: {source}")
    if split_file is not None and not split_file.is_file():
        raise Fail(f"split file not found: {split_file}")
    try:
        result = evaluate_folder(
            model or default_model_path(), list(data_dirs), split_file, limit=limit, flip_average=flip_average
        )
    except ModelLoadError as exc:
        raise Fail(str(exc)) from exc
    except ValueError as exc:
        raise Fail(str(exc)) from exc
    if html is not None:
        write_html(result, html)
    typer.echo(json.dumps(result, indent=2) if as_json else format_text(result))


@app.command()
def combine(
    models: Annotated[
        list[Path], typer.Argument(help="Two or more saved models trained on the same split.", metavar="MODEL")
    ],
    data_dir: Annotated[
        Path, typer.Option("--data", help="The UTKFace-style folder they were trained on.", metavar="DIR")
    ],
    split_file: Annotated[Path, typer.Option("--split", help="The split.csv they were trained on.", metavar="FILE")],
    out: Annotated[
        Path, typer.Option(help="Folder for the combined model, its twin, split and card.", metavar="DIR")
    ] = Path("combined"),
    half_precision: Annotated[
        bool, typer.Option(help="Store convolution kernels as float16 (half the size; arithmetic stays float32).")
    ] = True,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Cache decoded faces here between runs.", metavar="DIR")
    ] = None,
) -> None:
    """Average several trained models into one (an ensemble), scored on their validation and test faces."""
    quiet.load_tensorflow()
    from agebatch.scanning.predictor import ModelLoadError
    from agebatch.training.ensemble import write_ensemble

    if len(models) < 2:
        raise Fail("combine needs at least two models")
    for path in models:
        if not path.is_file():
            raise Fail(f"model not found: {path}")
    if not data_dir.is_dir():
        raise Fail(f"dataset folder not found: {data_dir}")
    if not split_file.is_file():
        raise Fail(f"split file not found: {split_file}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        card_path = write_ensemble(
            [str(path) for path in models],
            str(out),
            str(data_dir),
            str(split_file),
            half_precision=half_precision,
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except (ModelLoadError, FileNotFoundError, ValueError) as exc:
        raise Fail(str(exc)) from exc
    card = json.loads(card_path.read_text())
    o, v = card["test_metrics"]["overall"], card["val_metrics"]["overall"]
    typer.echo(
        f"model: {card_path.parent / (card['name'] + '.keras')}\ncard: {card_path}\n"
        f"validation: age MAE {v['age_mae']:.2f} years, gender accuracy {100 * v['gender_accuracy']:.1f}% (n={v['n']})\n"
        f"test: age MAE {o.get('age_mae', float('nan')):.2f} years, "
        f"gender accuracy {100 * o['gender_accuracy']:.1f}% (n={o['n']})"
    )


def _finder(detector: Detector, min_face: int, min_score: float | None):
    """The face detector ``predict`` and ``explain`` use for every photo they are given."""
    from agebatch.scanning.faces import make_detector

    return make_detector(detector.value, min_face, min_score)


def _analyse(image: Path, predictor, finder):
    from agebatch.scanning.images import ImageError
    from agebatch.scanning.photo import analyse

    if not image.is_file():
        raise Fail(f"no such image: {image}")
    try:
        return analyse(image, predictor, finder)
    except (ImageError, OSError, ValueError) as exc:  # ValueError: a detector failure on an odd image
        raise Fail(f"{image}: {exc if isinstance(exc, ImageError) else one_line(exc)}") from exc


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _check_picture_out(out: Path, inputs: list[Path]) -> None:
    """The cheap checks of a picture to write, before any model loads: a usable name and place, and
    not one of the inputs (nothing a user has is replaced by a drawing of it)."""
    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise Fail(f"cannot tell a picture format from {out.name!r}: name a {', '.join(PICTURE_SUFFIXES)} file")
    try:
        atomic.check_output(out, inputs)
    except atomic.UnsafeOutputError as exc:
        raise Fail(str(exc)) from exc


def _age_text(prediction) -> str:
    """``31.4``, or ``31.4 (25-38)`` with the model's 80% interval when it gives one."""
    if prediction.age_low is None:
        return f"{prediction.age:.1f}"
    return f"{prediction.age:.1f} ({prediction.age_low:.0f}-{prediction.age_high:.0f})"


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Photos to examine.", show_default=False, metavar="IMAGE")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    draw: Annotated[
        Path | None,
        typer.Option(help="Save the (single) photo with boxes and labels drawn, as PNG/JPEG.", metavar="FILE"),
    ] = None,
    detector: DetectorOption = Detector(_scan_default("detector")),
    min_face: MinFaceOption = _scan_default("min_face"),
    min_score: MinScoreOption = _scan_default("min_score"),
    model: ModelOption = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Show the faces found in photos with box, age, gender and confidence.

    A photo that cannot be read is reported on stderr (and in ``--json`` as a record with an
    ``error``) and the others are still shown; the exit code is 2 only when none could be read.
    """

    if draw is not None and len(images) != 1:
        raise Fail("--draw takes exactly one image")
    if draw is not None:
        _check_picture_out(draw, images)
    _check_detector(detector)
    predictor = _predictor(model, _scan_default("batch_size"), flip_average=flip_average)
    finder = _finder(detector, min_face, min_score)
    records = []
    failed = 0
    rows: list[list[str]] = []
    for image in images:
        try:
            result = _analyse(image, predictor, finder)
        except Fail as exc:  # said on stderr; the other photos are still shown
            failed += 1
            _fail_message(str(exc))
            records.append({"path": str(image), "error": str(exc)})
            continue
        for f in result.faces:
            box = [round(v) for v in (f.face.x, f.face.y, f.face.width, f.face.height)]
            records.append(
                {
                    "path": str(image),
                    "face": f.index,
                    "box": box,
                    "age": f.prediction.age,
                    "age_low": f.prediction.age_low,
                    "age_high": f.prediction.age_high,
                    "gender": f.prediction.gender,
                    "gender_prob": f.prediction.gender_prob,
                    "face_score": round(f.face.score, 4),
                }
            )
            rows.append(
                [
                    printable(image),
                    str(f.index),
                    ", ".join(map(str, box)),
                    _age_text(f.prediction),
                    f.prediction.gender,
                    f"{100 * f.prediction.gender_prob:.0f}%",
                ]
            )
        if not result.faces:
            rows.append([printable(image), "-", "no face found", "", "", ""])
        if draw is not None:
            from agebatch.scanning.photo import drawn

            picture = drawn(result)
            try:
                atomic.write_image(picture, draw)
            except (OSError, ValueError) as exc:
                raise Fail(f"cannot write {draw}: {exc}") from exc
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        _print_table(PREDICT_COLUMNS, rows)
    if failed == len(images):
        raise typer.Exit(EXIT_USAGE)


@app.command()
def explain(
    image: Annotated[Path, typer.Argument(help="Photo to explain.", show_default=False, metavar="IMAGE")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Picture to write (PNG or JPEG).", metavar="FILE")],
    head: Annotated[Head, typer.Option(help="Which estimate to explain.")] = Head("gender"),
    face: Annotated[int | None, typer.Option(help="Explain only this face (0 = largest).", min=0, metavar="N")] = None,
    detector: DetectorOption = Detector(_scan_default("detector")),
    min_face: MinFaceOption = _scan_default("min_face"),
    min_score: MinScoreOption = _scan_default("min_score"),
    model: ModelOption = None,
) -> None:
    """Grad-CAM heat map of what drove the age or gender estimate, blended onto the photo."""
    _check_picture_out(out, [image])
    if not image.is_file():
        raise Fail(f"no such image: {image}")
    _check_detector(detector)
    predictor = _predictor(model, _scan_default("batch_size"))
    from agebatch.scanning.explain import explain_photo

    result = _analyse(image, predictor, _finder(detector, min_face, min_score))
    if not result.faces:
        _fail_message(f"no face found in {image}; try --detector none for a face crop")
        raise typer.Exit(EXIT_NO_FACE)
    if face is not None and face >= len(result.faces):
        raise Fail(f"--face {face}: {image} has {len(result.faces)} face(s), numbered from 0")
    explanation = explain_photo(result, predictor.model, head.value, face, detector == Detector.none)
    try:
        atomic.write_image(explanation.picture, out)
    except (OSError, ValueError) as exc:
        raise Fail(f"cannot write {out}: {exc}") from exc


EXAMPLES_SERVE = """
Examples:

\b
  agebatch serve                                   # then open http://127.0.0.1:8501
  agebatch serve --results results.csv             # browse a scan, with face thumbnails
  agebatch serve --host 0.0.0.0 --port 8080        # let other machines in (think first)
"""


def _serve(name: str, *flags: str, **limits):
    return _library_option(ServeOptions, name, flags, limits)


@app.command(epilog=EXAMPLES_SERVE)
def serve(
    host: Annotated[str, _serve("host", metavar="ADDRESS")] = default_of(ServeOptions, "host"),
    port: Annotated[int, _serve("port", min=1, max=65535)] = default_of(ServeOptions, "port"),
    results: Annotated[
        Path | None,
        typer.Option(help="Results file to browse; its images are the only files the pages read.", metavar="FILE"),
    ] = None,
    max_upload_mb: Annotated[int, _serve("max_upload_mb", min=1, max=2000)] = default_of(ServeOptions, "max_upload_mb"),
    thumbnails: Annotated[int, _serve("thumbnails", min=0, max=1000)] = default_of(ServeOptions, "thumbnails"),
    detector: DetectorOption = Detector(_scan_default("detector")),
    model: ModelOption = None,
) -> None:
    """A local web app: drop photos to see their faces, ages and genders, or browse a results file."""
    from agebatch.web.server import WebUnavailable, require_streamlit
    from agebatch.web.server import serve as run_server

    try:
        require_streamlit()
    except WebUnavailable as exc:
        raise Fail(str(exc)) from exc
    if results is not None:
        from agebatch.web.core import ResultsFileError, read_results

        try:
            read_results(results)
        except ResultsFileError as exc:
            raise Fail(f"{results}: {exc}") from exc
    if model is not None:
        _predictor(model, _scan_default("batch_size"))  # a bad model is an error now, not in the page
    options = ServeOptions(host=host, port=port, max_upload_mb=max_upload_mb, thumbnails=thumbnails)
    _check_detector(detector)
    raise typer.Exit(run_server(options, results, model, detector.value))


def main() -> None:
    """Console-script entry point: maps every outcome onto the documented exit codes."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = app(standalone_mode=False)
        if code == 128 + signal.SIGINT and _RECEIVED:  # Typer maps any KeyboardInterrupt to 130, SIGTERM's too
            code = _interrupted_code()
    except Fail as exc:
        _fail_message(str(exc))
        sys.exit(EXIT_USAGE)
    except click_exceptions.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        _fail_message("interrupted")
        sys.exit(_interrupted_code())
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        _reader_gone()
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        known = _known_error(exc)
        if known:
            _fail_message(known)
            sys.exit(EXIT_USAGE)
        if os.environ.get("AGEBATCH_DEBUG"):
            raise
        reason = one_line(exc)
        _fail_message(f"unexpected {type(exc).__name__}: {reason} (set AGEBATCH_DEBUG=1 for a traceback)")
        sys.exit(EXIT_UNEXPECTED)
    # The work is done: a late Ctrl-C or SIGTERM must not turn it into a failure.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _reader_gone()
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _reader_gone() -> None:
    """Exit as a Unix tool killed by SIGPIPE would (128 + 13), without a message or a flush error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout must not fail again
    sys.exit(128 + signal.SIGPIPE)


def _known_error(exc: Exception) -> str | None:
    """Setup errors raised by the library, as one line; None for anything unexpected."""
    from agebatch.results import OutputError

    if isinstance(exc, (OutputError, FileNotFoundError)):
        return str(exc)
    if type(exc).__name__ == "RayUnavailable":  # raised only once Ray was asked for
        return str(exc)
    return None
