"""The ``agebatch`` command: argument parsing only; every command calls the Python API.

Exit codes: 0 the run completed (per-file problems are rows, not failures); 1 unexpected internal
error; 2 usage or setup error (bad argument, missing path, unusable model, unwritable output);
3 nothing to explain (``explain`` on an image without a face); 130 interrupted (Ctrl-C / SIGINT).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from agebatch import progress, quiet
from agebatch.engines import ENGINES
from agebatch.faces import DEFAULT_MIN_SCORE
from agebatch.train_config import AGE_HEADS, SCHEDULES, TrainConfig

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    import click.exceptions as click_exceptions

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_NO_FACE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="agebatch",
    help="Estimate age and gender for every face in a folder of photos, and report on the results.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Exit codes: 0 done, 1 unexpected error, 2 usage or setup error, 3 no face to explain, 130 interrupted.",
)


class Fail(Exception):
    """A setup or usage problem: printed as one line, exit code 2."""


class Detector(StrEnum):
    mtcnn = "mtcnn"
    none = "none"


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


def _fail_message(message: str) -> None:
    progress.error_console().print(f"agebatch: error: {message}", markup=False)


# Choices that the library defines, mirrored as enums for typer's help and validation.
Engine = StrEnum("Engine", [(name, name) for name in ENGINES])
Schedule = StrEnum("Schedule", [(name, name) for name in SCHEDULES])
AgeHead = StrEnum("AgeHead", [(name, name) for name in AGE_HEADS])
TRAIN_DEFAULTS = TrainConfig(data_dir="")


# Options that scan, predict and explain share, declared once.
DetectorOption = Annotated[
    Detector, typer.Option(help="Face detector; 'none' treats each image as one face crop (e.g. UTKFace).")
]
MinFaceOption = Annotated[int, typer.Option(help="Ignore faces smaller than this many pixels.", min=1)]
MinScoreOption = Annotated[float, typer.Option(help="Detector confidence a face needs.", min=0.0, max=1.0)]
FlipAverageOption = Annotated[
    bool,
    typer.Option(
        help="Also run each face mirrored and average the two: slightly more accurate, half the speed.",
    ),
]
ModelOption = Annotated[
    Path | None, typer.Option(help="Model file (.keras); default: the shipped model or $AGEBATCH_MODEL.")
]


def _predictor(model: Path | None, batch_size: int, engine: Engine = Engine.auto, flip_average: bool = False):
    from agebatch.predictor import ModelLoadError, Predictor

    try:
        return Predictor(model, batch_size=batch_size, engine=engine.value, flip_average=flip_average)
    except ModelLoadError as exc:
        raise Fail(str(exc)) from exc


EXAMPLES_SCAN = """
[bold]Examples[/bold]

  agebatch scan ./photos --out results.csv
  agebatch scan ./photos --out results.csv --resume --quiet    [dim]# nightly cron job[/dim]
  agebatch scan faces/ --detector none --out crops.jsonl --format jsonl
"""


@app.command(epilog=EXAMPLES_SCAN)
def scan(
    paths: Annotated[list[Path], typer.Argument(help="Image files and/or folders to scan.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Results file to write (CSV or JSONL).")],
    fmt: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.csv,
    resume: Annotated[
        bool, typer.Option(help="Skip images already in --out (same path, size, mtime); append new ones.")
    ] = False,
    recursive: Annotated[bool, typer.Option(help="Walk folders recursively.")] = True,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Skip files/folders matching this glob (repeatable).")
    ] = None,
    follow_symlinks: Annotated[
        bool, typer.Option(help="Follow symbolic links to folders (loops are detected).")
    ] = False,
    detector: DetectorOption = Detector.mtcnn,
    min_face: MinFaceOption = 40,
    min_score: MinScoreOption = DEFAULT_MIN_SCORE,
    batch_size: Annotated[int, typer.Option(help="Faces per model batch.", min=1, max=4096)] = 64,
    jobs: Annotated[int | None, typer.Option(help="Decode/detect threads (default: one per core).", min=1)] = None,
    model: ModelOption = None,
    engine: Annotated[
        Engine, typer.Option(help="Inference engine: tflite (fast, used when the model has a .tflite twin) or keras.")
    ] = Engine.auto,
    flip_average: FlipAverageOption = False,
    excel_safe: Annotated[bool, typer.Option(help="Neutralise cells a spreadsheet would run as formulas.")] = False,
    wait: Annotated[
        bool, typer.Option(help="If another scan is writing --out, wait for it instead of failing.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Find faces in PATHS and write one row per face with estimated age and gender."""
    from agebatch.scanner import ScanOptions, scan_to_file

    if fmt == Format.csv and out.suffix.lower() == ".jsonl":
        fmt = Format.jsonl
    options = ScanOptions(
        recursive=recursive,
        exclude=tuple(exclude or ()),
        follow_symlinks=follow_symlinks,
        detector=detector.value,
        min_face=min_face,
        min_score=min_score,
        batch_size=batch_size,
        jobs=jobs,
    )
    from agebatch.discovery import check_paths

    check_paths(paths)
    predictor = _predictor(model, batch_size, engine, flip_average)
    show = progress.interactive(quiet)
    try:
        with progress.scan_progress(show) as update:
            summary = scan_to_file(paths, out, predictor, options, fmt.value, resume, excel_safe, wait, update)
    except KeyboardInterrupt as exc:
        summary = getattr(exc, "summary", None)
        done = f" after {summary.images} images" if summary else ""
        kept = Path(out).exists()
        hint = "run the same command with --resume to continue" if kept else "nothing was written"
        progress.error_console().print(f"agebatch: interrupted{done}; {hint}", markup=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if show:
        progress.error_console().print(f"{out}: {summary.line()}", markup=False)


EXAMPLES_REPORT = """
[bold]Examples[/bold]

  agebatch report results.csv --out report.html
  agebatch report results.csv --group-by folder --depth 2 --out report.html
  agebatch report monday.csv tuesday.csv --out compare.html
  agebatch report results.csv --format json --out report.json
"""


class ReportFormat(StrEnum):
    html = "html"
    json = "json"


class GroupBy(StrEnum):
    folder = "folder"


@app.command(epilog=EXAMPLES_REPORT)
def report(
    results_files: Annotated[
        list[Path], typer.Argument(help="One or more results files from agebatch scan.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report file to write.")],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="html (self-contained page) or json (aggregates).")
    ] = ReportFormat.html,
    group_by: Annotated[GroupBy, typer.Option(help="Breakdown of the results.")] = GroupBy.folder,
    depth: Annotated[int, typer.Option(help="Folder levels below the scanned root to group by.", min=1)] = 1,
    bins: Annotated[int, typer.Option(help="Default age histogram bin width in years (1 or 5).")] = 5,
    min_gender_prob: Annotated[
        float,
        typer.Option(help="Leave faces with a less confident gender call out of gender splits.", min=0.0, max=1.0),
    ] = 0.0,
    low_confidence: Annotated[
        float, typer.Option(help="Gender calls below this probability count as low confidence.", min=0.5, max=1.0)
    ] = 0.6,
    model_card: Annotated[
        Path | None,
        typer.Option(help="Model card JSON for the 'how to read this' figures (default: the shipped model's)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")] = False,
) -> None:
    """Turn scan results into a self-contained HTML report (or JSON aggregates)."""
    import time

    from agebatch.modelcard import card_for_model
    from agebatch.predictor import default_model_path
    from agebatch.report import ReportError, build_report, write_report

    if bins not in (1, 5):
        raise Fail("--bins must be 1 or 5")
    if not out.parent.is_dir():
        raise Fail(f"output folder does not exist: {out.parent}")
    card = None
    if model_card is not None:
        try:
            card = json.loads(model_card.read_text())
        except (OSError, ValueError) as exc:
            raise Fail(f"cannot read model card {model_card}: {exc}") from exc
    else:
        card = card_for_model(default_model_path())
    started = time.monotonic()
    try:
        data = build_report(
            results_files, depth=depth, min_gender_prob=min_gender_prob, low_confidence=low_confidence, model_card=card
        )
        write_report(data, out, fmt.value, bins)
    except ReportError as exc:
        raise Fail(str(exc)) from exc
    except OSError as exc:
        raise Fail(f"cannot write {out}: {exc.strerror or exc}") from exc
    if progress.interactive(quiet):
        o = data["overall"]
        progress.error_console().print(
            f"{out}: {o['images']} images, {o['faces']} faces, {o['errors']} errors "
            f"({time.monotonic() - started:.1f} s)",
            markup=False,
        )


@app.command()
def train(
    data_dir: Annotated[
        Path, typer.Argument(help="Labelled faces: a UTKFace-style folder, a folder with labels.csv, or a CSV.")
    ],
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Another labelled source to train on as well (repeatable).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the model, model card, split and curves.")] = Path("trained"),
    epochs: Annotated[
        int, typer.Option(help="Most fine-tuning epochs (early stopping may end sooner).", min=0)
    ] = TRAIN_DEFAULTS.epochs,
    head_epochs: Annotated[
        int, typer.Option(help="Epochs training only the heads on a frozen base.", min=0)
    ] = TRAIN_DEFAULTS.head_epochs,
    batch_size: Annotated[int, typer.Option(min=1)] = TRAIN_DEFAULTS.batch_size,
    image_size: Annotated[int, typer.Option(min=32)] = TRAIN_DEFAULTS.image_size,
    val_split: Annotated[
        float, typer.Option(help="Share of the training part kept for early stopping.")
    ] = TRAIN_DEFAULTS.val_split,
    test_split: Annotated[float, typer.Option(help="Share held out for evaluation.")] = TRAIN_DEFAULTS.test_split,
    seed: Annotated[int, typer.Option(help="Seeds the split and the training (weights, shuffling, augmentation).")] = (
        TRAIN_DEFAULTS.seed
    ),
    split_from: Annotated[
        Path | None,
        typer.Option("--split", help="Reuse an earlier run's split.csv (then --seed only seeds the training)."),
    ] = None,
    patience: Annotated[int, typer.Option(help="Early-stopping patience (epochs).", min=1)] = TRAIN_DEFAULTS.patience,
    learning_rate: Annotated[float, typer.Option(help="Fine-tuning learning rate.")] = TRAIN_DEFAULTS.learning_rate,
    schedule: Annotated[
        Schedule,
        typer.Option(help="Fine-tuning rate: cut when validation stalls (plateau) or cosine decay over --epochs."),
    ] = Schedule(TRAIN_DEFAULTS.schedule),
    backbone_weights: Annotated[
        str, typer.Option(help="imagenet, none, or a .weights.h5 path.")
    ] = TRAIN_DEFAULTS.backbone_weights,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache decoded faces here between runs.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Stop fine-tuning after this many minutes.")] = None,
    age_head: Annotated[
        AgeHead,
        typer.Option(help="Age head: one regression output, or a distribution over years (exact ages and bands)."),
    ] = AgeHead(TRAIN_DEFAULTS.age_head),
    age_loss_weight: Annotated[
        float,
        typer.Option(help="Weight of the age loss (MSE in years^2, or the distribution's cross-entropy).", min=0.0),
    ] = TRAIN_DEFAULTS.age_loss_weight,
    color_jitter: Annotated[
        float, typer.Option(help="Random brightness/contrast strength in augmentation (0: off).", min=0.0)
    ] = TRAIN_DEFAULTS.color_jitter,
    average_epochs: Annotated[
        int, typer.Option(help="Extra epochs whose weights are averaged (kept only if validation improves).", min=0)
    ] = TRAIN_DEFAULTS.average_epochs,
    refit_age_head: Annotated[
        bool,
        typer.Option(help="Finally refit the age head on frozen features, unweighted (kept if validation improves)."),
    ] = TRAIN_DEFAULTS.refit_age_head,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(
            help="Distil: blend the labels with this saved model's estimates (see --teacher-weight); "
            "repeat to average several models."
        ),
    ] = None,
    teacher_weight: Annotated[
        float, typer.Option(help="Share of the teacher in the training targets.", min=0.0, max=1.0)
    ] = TRAIN_DEFAULTS.teacher_weight,
    init_from: Annotated[
        Path | None,
        typer.Option(help="Continue from this saved model instead of new heads (skips the heads phase)."),
    ] = None,
    warm_start: Annotated[
        Path | None,
        typer.Option(help="Start from the layers this saved model shares with the new network (heads phase kept)."),
    ] = None,
    smoke: Annotated[
        bool, typer.Option(help="Tiny, fast configuration for tests: small network, 1+1 epochs, 64 images.")
    ] = False,
) -> None:
    """Train the age/gender model on a UTKFace-style folder."""
    quiet.load_tensorflow()
    from agebatch.train import smoke_config
    from agebatch.train import train as run_training

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
    if init_from is not None and not init_from.is_file():
        raise Fail(f"model to continue from not found: {init_from}")
    if warm_start is not None and not warm_start.is_file():
        raise Fail(f"model to warm-start from not found: {warm_start}")
    config = TrainConfig(
        data_dir=str(data_dir),
        more_data=tuple(str(path) for path in data or []),
        age_head=age_head.value,
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
        color_jitter=color_jitter,
        average_epochs=average_epochs,
        refit_age_head=refit_age_head,
        teachers=tuple(str(path) for path in teacher or []),
        teacher_weight=teacher_weight,
        init_from=str(init_from) if init_from else None,
    )
    if smoke:
        config = smoke_config(config)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_training(config)
    except (FileNotFoundError, ValueError) as exc:
        raise Fail(str(exc)) from exc
    o = result.test_metrics["overall"]
    typer.echo(
        f"model: {result.model_path}\ncard: {result.card_path}\n"
        f"test: age MAE {o.get('age_mae', float('nan')):.2f} years, "
        f"gender accuracy {100 * o['gender_accuracy']:.1f}% (n={o['n']})"
    )


@app.command()
def evaluate(
    data_dir: Annotated[Path, typer.Argument(help="UTKFace-style folder with labels in file names.")],
    model: ModelOption = None,
    split_file: Annotated[
        Path | None, typer.Option("--split", help="split.csv from training: score only its test part.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print all figures as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with plots.")] = None,
    limit: Annotated[int | None, typer.Option(help="Score at most this many images.", min=1)] = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Score a model on labelled faces: age MAE, RMSE, gender accuracy, per age band, gender and race."""
    quiet.load_tensorflow()
    from agebatch.evaluate import evaluate_folder, format_text, write_html
    from agebatch.predictor import ModelLoadError, default_model_path

    if not data_dir.is_dir():
        raise Fail(f"dataset folder not found: {data_dir}")
    if split_file is not None and not split_file.is_file():
        raise Fail(f"split file not found: {split_file}")
    try:
        result = evaluate_folder(
            model or default_model_path(), data_dir, split_file, limit=limit, flip_average=flip_average
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
    models: Annotated[list[Path], typer.Argument(help="Two or more saved models trained on the same split.")],
    data_dir: Annotated[Path, typer.Option("--data", help="The UTKFace-style folder they were trained on.")],
    split_file: Annotated[Path, typer.Option("--split", help="The split.csv they were trained on.")],
    out: Annotated[Path, typer.Option(help="Folder for the combined model, its twin, split and card.")] = Path(
        "combined"
    ),
    half_precision: Annotated[
        bool, typer.Option(help="Store convolution kernels as float16 (half the size; arithmetic stays float32).")
    ] = True,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache decoded faces here between runs.")] = None,
) -> None:
    """Average several trained models into one (an ensemble), scored on their validation and test faces."""
    quiet.load_tensorflow()
    from agebatch.ensemble import write_ensemble
    from agebatch.predictor import ModelLoadError

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


class Head(StrEnum):
    age = "age"
    gender = "gender"


def _analyse(image: Path, predictor, detector: Detector, min_face: int, min_score: float):
    from agebatch.images import ImageError
    from agebatch.photo import analyse

    if not image.is_file():
        raise Fail(f"no such image: {image}")
    try:
        return analyse(image, predictor, detector.value, min_face, min_score)
    except ImageError as exc:
        raise Fail(f"{image}: {exc}") from exc


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Photos to examine.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    draw: Annotated[
        Path | None, typer.Option(help="Save the (single) photo with boxes and labels drawn, as PNG/JPEG.")
    ] = None,
    detector: DetectorOption = Detector.mtcnn,
    min_face: MinFaceOption = 40,
    min_score: MinScoreOption = DEFAULT_MIN_SCORE,
    model: ModelOption = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Show the faces found in photos with box, age, gender and confidence."""
    from rich.console import Console
    from rich.table import Table

    from agebatch import drawing

    if draw is not None and len(images) != 1:
        raise Fail("--draw takes exactly one image")
    predictor = _predictor(model, 64, flip_average=flip_average)
    records = []
    table = Table("image", "face", "box (x, y, w, h)", "age", "gender", "confidence")
    for image in images:
        result = _analyse(image, predictor, detector, min_face, min_score)
        for f in result.faces:
            box = [round(v) for v in (f.face.x, f.face.y, f.face.width, f.face.height)]
            records.append(
                {
                    "path": str(image),
                    "face": f.index,
                    "box": box,
                    "age": f.prediction.age,
                    "gender": f.prediction.gender,
                    "gender_prob": f.prediction.gender_prob,
                    "face_score": round(f.face.score, 4),
                }
            )
            table.add_row(
                str(image),
                str(f.index),
                ", ".join(map(str, box)),
                f"{f.prediction.age:.1f}",
                f.prediction.gender,
                f"{100 * f.prediction.gender_prob:.0f}%",
            )
        if not result.faces:
            table.add_row(str(image), "-", "no face found", "", "", "")
        if draw is not None:
            from agebatch.photo import face_in_image

            boxes = [face_in_image(f, result.scale) for f in result.faces]
            picture = drawing.draw_boxes(
                result.image,
                [(b.x, b.y, b.width, b.height) for b in boxes],
                [drawing.label(f.prediction) for f in result.faces],
                [f.prediction.gender for f in result.faces],
            )
            try:
                picture.save(draw)
            except (OSError, ValueError) as exc:
                raise Fail(f"cannot write {draw}: {exc}") from exc
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        tty = sys.stdout.isatty()
        Console(no_color=not tty, width=None if tty else 200).print(table)


@app.command()
def explain(
    image: Annotated[Path, typer.Argument(help="Photo to explain.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Picture to write (PNG or JPEG).")],
    head: Annotated[Head, typer.Option(help="Which estimate to explain.")] = Head.gender,
    face: Annotated[int | None, typer.Option(help="Explain only this face (0 = largest).", min=0)] = None,
    detector: DetectorOption = Detector.mtcnn,
    min_face: MinFaceOption = 40,
    min_score: MinScoreOption = DEFAULT_MIN_SCORE,
    model: ModelOption = None,
) -> None:
    """Grad-CAM heat map of what drove the age or gender estimate, blended onto the photo."""
    predictor = _predictor(model, 64)
    from agebatch.explain import explain_photo

    result = _analyse(image, predictor, detector, min_face, min_score)
    if not result.faces:
        _fail_message(f"no face found in {image}; try --detector none for a face crop")
        raise typer.Exit(EXIT_NO_FACE)
    if face is not None and face >= len(result.faces):
        raise Fail(f"--face {face}: {image} has {len(result.faces)} face(s), numbered from 0")
    explanation = explain_photo(result, predictor.model, head.value, face, detector == Detector.none)
    try:
        explanation.picture.save(out)
    except (OSError, ValueError) as exc:
        raise Fail(f"cannot write {out}: {exc}") from exc


def main() -> None:
    """Console-script entry point: maps every outcome onto the documented exit codes."""
    try:
        code = app(standalone_mode=False)
    except Fail as exc:
        _fail_message(str(exc))
        sys.exit(EXIT_USAGE)
    except click_exceptions.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        _fail_message("interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        known = _known_error(exc)
        if known:
            _fail_message(known)
            sys.exit(EXIT_USAGE)
        if os.environ.get("AGEBATCH_DEBUG"):
            raise
        reason = " ".join(str(exc).split())[:200]
        _fail_message(f"unexpected {type(exc).__name__}: {reason} (set AGEBATCH_DEBUG=1 for a traceback)")
        sys.exit(EXIT_UNEXPECTED)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the work is done: a late Ctrl-C must not turn it into a failure
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _known_error(exc: Exception) -> str | None:
    """Setup errors raised by the library, as one line; None for anything unexpected."""
    from agebatch.results import OutputError

    if isinstance(exc, (OutputError, FileNotFoundError)):
        return str(exc)
    return None
