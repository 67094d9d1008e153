"""``agebatch train``, ``evaluate`` and ``combine``: labelled faces in, a model and its figures out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from agebatch.cli._app import Fail, app
from agebatch.cli._params import (
    AgeHead,
    FlipAverageOption,
    JsonOption,
    ModelOption,
    Sampling,
    Schedule,
    library_values,
    train_default,
    train_option,
)
from agebatch.common import quiet
from agebatch.common.settings import help_of
from agebatch.training.config import TrainConfig


def _figures(label: str, overall: dict) -> str:
    """``test: age MAE 4.82 years, gender accuracy 94.4% (n=4264)``."""
    return (
        f"{label}: age MAE {overall.get('age_mae', float('nan')):.2f} years, "
        f"gender accuracy {100 * overall['gender_accuracy']:.1f}% (n={overall['n']})"
    )


@app.command()
def train(
    data_dir: Annotated[
        Path, typer.Argument(help=help_of(TrainConfig, "data_dir"), show_default=False, metavar="DATA")
    ],
    more_data: Annotated[list[Path] | None, train_option("more_data", "--data", metavar="PATH")] = None,
    out_dir: Annotated[Path, train_option("out_dir", "--out", metavar="DIR")] = Path(train_default("out_dir")),
    epochs: Annotated[int, train_option("epochs", min=0)] = train_default("epochs"),
    head_epochs: Annotated[int, train_option("head_epochs", min=0)] = train_default("head_epochs"),
    batch_size: Annotated[int, train_option("batch_size", min=1)] = train_default("batch_size"),
    image_size: Annotated[int, train_option("image_size", min=32)] = train_default("image_size"),
    val_split: Annotated[float, train_option("val_split", min=0.0, max=0.9)] = train_default("val_split"),
    test_split: Annotated[float, train_option("test_split", min=0.01, max=0.9)] = train_default("test_split"),
    seed: Annotated[int, train_option("seed")] = train_default("seed"),
    split_from: Annotated[Path | None, train_option("split_from", "--split", metavar="FILE")] = None,
    patience: Annotated[int, train_option("patience", min=1)] = train_default("patience"),
    learning_rate: Annotated[float, train_option("learning_rate", min=0.0)] = train_default("learning_rate"),
    schedule: Annotated[Schedule, train_option("schedule", metavar=None)] = Schedule(train_default("schedule")),
    backbone_weights: Annotated[str, train_option("backbone_weights", metavar="WEIGHTS")] = train_default(
        "backbone_weights"
    ),
    cache_dir: Annotated[Path | None, train_option("cache_dir", metavar="DIR")] = None,
    time_limit_minutes: Annotated[
        float | None, train_option("time_limit_minutes", "--time-limit", min=0.0, metavar="MINUTES")
    ] = None,
    age_head: Annotated[AgeHead, train_option("age_head", metavar=None)] = AgeHead(train_default("age_head")),
    age_loss_weight: Annotated[float, train_option("age_loss_weight", min=0.0)] = train_default("age_loss_weight"),
    sampling: Annotated[Sampling, train_option("sampling", metavar=None)] = Sampling(train_default("sampling")),
    gender_smoothing: Annotated[float, train_option("gender_smoothing", min=0.0, max=0.4)] = train_default(
        "gender_smoothing"
    ),
    color_jitter: Annotated[float, train_option("color_jitter", min=0.0)] = train_default("color_jitter"),
    average_epochs: Annotated[int, train_option("average_epochs", min=0)] = train_default("average_epochs"),
    refit_age_head: Annotated[bool, train_option("refit_age_head")] = train_default("refit_age_head"),
    teachers: Annotated[list[Path] | None, train_option("teachers", "--teacher", metavar="MODEL")] = None,
    teacher_weight: Annotated[float, train_option("teacher_weight", min=0.0, max=1.0)] = train_default(
        "teacher_weight"
    ),
    init_from: Annotated[Path | None, train_option("init_from", metavar="MODEL")] = None,
    average_with: Annotated[list[Path] | None, train_option("average_with", metavar="MODEL")] = None,
    warm_start: Annotated[Path | None, train_option("warm_start", metavar="MODEL")] = None,
    smoke: Annotated[
        bool, typer.Option(help="Tiny, fast configuration for tests: small network, 1+1 epochs, 64 images.")
    ] = False,
) -> None:
    """Train the age/gender model on labelled faces from one or more sources."""
    try:
        config = TrainConfig(**library_values(TrainConfig, locals()))
    except ValueError as exc:  # options that contradict one another
        raise Fail(str(exc)) from exc
    config.check_inputs()
    quiet.load_tensorflow("agebatch train")
    from agebatch.training.train import smoke_config
    from agebatch.training.train import train as run_training

    if smoke:
        config = smoke_config(config)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        result = run_training(config)
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        raise Fail(str(exc)) from exc
    typer.echo(
        f"model: {result.model_path}\ncard: {result.card_path}\n{_figures('test', result.test_metrics['overall'])}"
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
    as_json: JsonOption = False,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report with plots.", metavar="FILE")] = None,
    limit: Annotated[int | None, typer.Option(help="Score at most this many images.", min=1, metavar="N")] = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Score a model on labelled faces: age MAE, RMSE, gender accuracy, per age band, gender and race."""
    quiet.load_tensorflow("agebatch evaluate")
    from agebatch.modelfile.load import default_model_path
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
    quiet.load_tensorflow("agebatch combine")
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
    except (FileNotFoundError, ValueError) as exc:
        raise Fail(str(exc)) from exc
    card = json.loads(card_path.read_text())
    typer.echo(
        f"model: {card_path.parent / (card['name'] + '.keras')}\ncard: {card_path}\n"
        f"{_figures('validation', card['val_metrics']['overall'])}\n{_figures('test', card['test_metrics']['overall'])}"
    )
