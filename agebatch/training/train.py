"""The training recipe: two phases of transfer learning on one or more labelled sources, run end to end.

Phase 1 trains only the heads on a frozen ImageNet backbone (fast, and it keeps large random-head
gradients from wrecking the pretrained features). Phase 2 unfreezes the backbone (BatchNormalization
stays in inference mode) and fine-tunes everything at a lower rate, with early stopping on the
validation split that restores the best weights (or, with ``schedule="cosine"``, a smooth decay over
the planned epochs, keeping the best one). An optional phase 3 (stochastic weight averaging)
trains a few more epochs at a constant rate and averages the weights they end with: the average sits
nearer the middle of the flat region the runs wander in, which tends to generalise better than any
single epoch. It is kept only if it beats the best single epoch on the validation split.

With a teacher (a saved model), the training targets blend the labels with its estimates
(distillation); validation and test are always scored against the labels.

This module only runs the steps in order; each lives in its own module: ``splits`` (the split),
``targets`` and ``batches`` (what is trained towards, and the input pipeline), ``startweights`` (the
network's starting weights), ``fit`` (the phases), ``laststeps`` (averaging, the age head's refit)
and ``finishing`` (calibration, saving, the LiteRT twin, the card).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.training import dataset, sources, splits
from agebatch.training.batches import make_dataset
from agebatch.training.config import TrainConfig
from agebatch.training.finishing import (
    RunRecord,
    build_card,
    calibrate,
    export_and_score_tflite,
    part_rows,
    save_model,
    score_part,
    write_card,
)
from agebatch.training.fit import StopOnInterrupt, checkpoint_path, fit_phases
from agebatch.training.laststeps import last_steps
from agebatch.training.startweights import copy_weights, load_checked, saved_start, training_network
from agebatch.training.targets import teacher_predictions

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    history: list[dict]
    test_metrics: dict
    interrupted: bool


def read_labelled(config: TrainConfig) -> tuple[pd.DataFrame, int]:
    """Every labelled face of the run's sources with its split (train / val / test), and the rows skipped."""
    frame, skipped = sources.read_sources(list(config.sources))
    if config.max_images and len(frame) > config.max_images:
        frame = frame.sample(config.max_images, random_state=config.seed)
        frame = frame.sort_values(["source", "file"]).reset_index(drop=True)
    if len(frame) < 10:
        raise ValueError(f"need at least 10 labelled images in {', '.join(config.sources)}, found {len(frame)}")
    saved = None
    if config.split_from:
        try:
            saved = pd.read_csv(config.split_from)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{config.split_from}: not a split file written by agebatch train ({exc})") from exc
    try:
        frame, left_out = splits.add_split(frame, config.test_split, config.val_split, config.seed, saved)
    except ValueError as exc:
        raise ValueError(f"{config.split_from}: {exc}") from exc
    if left_out:
        log.warning("%d labelled files are not in %s and are left out", left_out, config.split_from)
    return frame, skipped


def train(config: TrainConfig) -> TrainResult:
    """Run the whole recipe and write the model, split, model card and curves into ``config.out_dir``."""
    import keras

    keras.utils.set_random_seed(config.seed)
    out = Path(config.out_dir)
    checkpoint = checkpoint_path(config)
    _refuse_to_overwrite_unfinished(checkpoint, config)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    # Every saved model is loaded and checked before any face is decoded: a wrong file fails in seconds.
    teacher_models = [load_checked(path, config.image_size, "teacher") for path in config.teachers]
    start = saved_start(config)
    warm = load_checked(config.warm_start, config.image_size, "model to warm-start from") if config.warm_start else None

    frame, skipped = read_labelled(config)
    frame, images, unreadable = dataset.readable_faces(frame, "path", "/", config.image_size, config.cache_dir)
    skipped += unreadable
    splits.save_split(frame, out / "split.csv")
    parts = {name: part_rows(frame, name) for name in PARTS}
    log.info("images: %s", {k: len(v) for k, v in parts.items()})
    teacher = None
    if teacher_models:
        teacher = teacher_predictions(teacher_models, images, parts["train"], config.batch_size)
        del teacher_models  # their estimates are all training needs
    data = {
        name: make_dataset(np.asarray(images[idx]), frame.loc[idx], config, training=(name == "train"), teacher=teacher)
        for name, idx in parts.items()
    }
    model = training_network(config, start, warm)
    del start, warm
    history: list[dict] = []
    deadline = started + 60 * config.time_limit_minutes if config.time_limit_minutes else None
    try:
        with StopOnInterrupt() as stopper:  # Ctrl-C anywhere below finishes with the best weights so far
            batches = int(np.ceil(len(parts["train"]) / config.batch_size))
            fit_phases(model, data, config, stopper, history, deadline, batches)
            if checkpoint.exists():
                # The last phase's best epoch: a cosine schedule has no EarlyStopping to restore it, and
                # after Ctrl-C or the time limit the last epoch need not be the best.
                copy_weights(keras.saving.load_model(checkpoint, compile=False), model)
            final, steps = last_steps(config, frame, images, model, data, stopper, history)
            run = RunRecord(skipped, history, steps, time.time() - started, stopper.interrupted)
            result = finalize(config, frame, images, final, run)
    except BaseException:  # a second Ctrl-C, SIGTERM or a crash: the best weights so far stay in the checkpoint
        if checkpoint.exists():
            log.warning("the run stopped before it finished: its best weights so far are in %s", checkpoint)
        raise
    return result


def finalize(config: TrainConfig, frame: pd.DataFrame, images, model, run: RunRecord) -> TrainResult:
    """Calibrate on the validation split, save, score on the test split, write the card and curves.

    Saving the model replaces the run's checkpoint and the files made from an earlier model (card,
    LiteRT twin, curves), so an abort after it never leaves them describing the wrong model.

    Both the raw and the calibrated model are scored on the test split and both sets of figures go
    into the card; the calibrated one is shipped when ``config.calibrate`` (it is fitted on validation
    faces only, so the test figures stay honest).
    """
    metrics = score_part(model, frame, images, "test", config.batch_size)
    model, calibration = calibrate(model, frame, images, config)
    if calibration is not None:
        calibration["test_before"] = metrics["overall"]
        metrics = score_part(model, frame, images, "test", config.batch_size)
    model_path = save_model(model, config)
    card = build_card(config, frame, run, metrics, calibration)
    test = part_rows(frame, "test")
    card["tflite"] = export_and_score_tflite(model, model_path, frame.loc[test].reset_index(drop=True), images[test])
    card_path = write_card(card, config, run.history)
    return TrainResult(model_path, card_path, run.history, metrics, run.interrupted)


def _refuse_to_overwrite_unfinished(checkpoint: Path, config: TrainConfig) -> None:
    """An earlier run into this folder that did not finish left its best weights in ``checkpoint``; a
    new run would overwrite them (or restore them as its own), so it starts only by continuing them."""
    if not checkpoint.exists():
        return
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint} is in the way of this run's checkpoint: move it away")
    continued = [path for path in (config.init_from, *config.average_with) if path and Path(path).exists()]
    if not any(checkpoint.samefile(path) for path in continued):
        raise ValueError(
            f"{checkpoint} holds the best weights of an earlier run that did not finish: "
            f"continue them with --init-from {checkpoint}, or move the file away"
        )


def smoke_config(config: TrainConfig) -> TrainConfig:
    """The tiny configuration tests use: a narrow random backbone, 64 images, one epoch per phase.

    It exercises every step of the recipe (split, pipeline, both phases, saving, card, curves) in
    seconds; the numbers it produces mean nothing.
    """
    from dataclasses import replace

    return replace(
        config,
        image_size=min(config.image_size, 64),
        batch_size=16,
        head_epochs=1,
        epochs=1,
        patience=1,
        backbone_weights=None,
        alpha=0.35,
        max_images=64,
        val_split=0.2,
        test_split=0.25,
    )
