"""The end of a training run: calibrating, scoring, saving, exporting the LiteRT twin and writing the card.

Each step is its own function, and ``train.finalize`` runs them in order. The calibration is fitted on
the validation faces only and every score is taken on the test faces, so the card's test figures stay
honest. ``save_model`` replaces the run's checkpoint and the files made from an earlier model, so an
abort after it never leaves them describing the wrong model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common import atomic
from agebatch.training.config import TrainConfig
from agebatch.training.fit import checkpoint_path
from agebatch.training.targets import label_ages

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What a training run did, as the card reports it."""

    skipped: int  # labelled rows that could not be read
    history: list[dict]  # one row per epoch
    steps: dict  # records of the optional last steps (weight averaging, age-head refit)
    seconds: float
    interrupted: bool


def part_rows(frame: pd.DataFrame, part: str) -> np.ndarray:
    """The row labels of ``frame``'s faces in one part of the split (``train``, ``val`` or ``test``)."""
    return frame.index[frame["split"] == part].to_numpy()


def score_part(model, frame: pd.DataFrame, images, part: str, batch_size: int) -> dict:
    """``evaluate.score`` of ``model`` on the faces of one part of the split."""
    from agebatch.training import evaluate

    rows = part_rows(frame, part)
    truth = frame.loc[rows].reset_index(drop=True)
    return evaluate.score(truth, evaluate.predict_arrays(model, images[rows], batch_size))


def calibrate(model, frame: pd.DataFrame, images, config: TrainConfig) -> tuple:
    """The model to ship and the calibration's record for the card (None when not calibrated).

    With ``config.calibrate`` and at least 20 validation faces, the calibration is fitted on the
    validation faces' raw estimates and the record holds their overall figures before and after it.
    """
    from agebatch.training import evaluate

    rows = part_rows(frame, "val")
    if not config.calibrate or len(rows) < 20:
        return model, None
    val = frame.loc[rows].reset_index(drop=True)
    val_pred = evaluate.predict_arrays(model, images[rows], config.batch_size)
    calibrated, info = _fit_calibration(model, val, val_pred, config)
    info.update(
        val_before=evaluate.score(val, val_pred)["overall"],
        val_after=score_part(calibrated, frame, images, "val", config.batch_size)["overall"],
    )
    return calibrated, info


def _fit_calibration(model, val: pd.DataFrame, val_pred: pd.DataFrame, config: TrainConfig):
    """The calibrated model and what was fitted, from the validation faces' raw estimates.

    A distribution head gets a gender temperature and threshold (its age is the distribution's mean,
    which an extra map would decouple from the interval). A regression head also gets the age map
    that undoes its pull towards the mean.
    """
    from agebatch.training import calibration

    female = val_pred["pred_female"].to_numpy()
    if config.age_head == "distribution":
        return model, calibration.calibrate_gender(model, female, val["gender"])
    coef = calibration.fit_age_map(val_pred["pred_age"].to_numpy(), label_ages(val))
    shift = calibration.best_gender_shift(female, val["gender"].to_numpy())
    info = {
        "age_knots": list(calibration.KNOTS),
        "age_coefficients": [float(c) for c in coef],
        "gender_logit_shift": shift,
    }
    return calibration.calibrated_model(model, coef, shift), info


def save_model(model, config: TrainConfig) -> Path:
    """Save ``model`` as ``config.model_name`` in the output folder and return its path.

    First the files an earlier model left beside it (card, LiteRT twin, curves) are removed, so an
    abort during the export or the card never leaves them describing the wrong model; after, the
    run's checkpoint is removed, since the saved model holds its weights.
    """
    model_path = Path(config.out_dir) / config.model_name
    for stale in _made_from_model(model_path):
        stale.unlink(missing_ok=True)
    with atomic.atomic_path(model_path) as tmp:
        model.save(tmp)
    checkpoint_path(config).unlink(missing_ok=True)
    return model_path


def _made_from_model(model_path: Path) -> list[Path]:
    """The files written after the model, each describing it: card, LiteRT twin, curves."""
    from agebatch.modelfile.card import CARD_SUFFIX
    from agebatch.modelfile.twin import tflite_path_for, twin_record_path

    stem = model_path.with_name(model_path.stem)
    twin = tflite_path_for(model_path)
    suffixes = (CARD_SUFFIX, ".card.md", ".curves.html", ".curves.png")
    return [*(Path(f"{stem}{suffix}") for suffix in suffixes), twin, twin_record_path(twin)]


def export_and_score_tflite(
    model, model_path: Path, test: pd.DataFrame, test_images, half_precision: bool = False
) -> dict | None:
    """Write the ``.tflite`` twin scan uses, and score it on the same test faces as the Keras model."""
    from agebatch.modelfile.twin import export_tflite, tflite_path_for, write_twin_record
    from agebatch.scanning import engines
    from agebatch.training import evaluate

    try:
        path = export_tflite(model, tflite_path_for(model_path), half_precision)
    except Exception as exc:  # conversion is an optimisation: a failure must not lose the trained model
        log.warning("TFLite export failed, scan will use Keras: %s", exc)
        return None
    write_twin_record(model_path, path)
    predictions = evaluate.predict_with(engines.TFLiteRunner(path), test_images)
    return {"file": path.name, "test_metrics": evaluate.score(test, predictions)["overall"]}


def build_card(config: TrainConfig, frame: pd.DataFrame, run: RunRecord, metrics: dict, calibration) -> dict:
    """The run's model card: the recipe, data, history and test figures, the calibration's record and
    the records of the optional last steps."""
    from agebatch.training import modelcard

    card = modelcard.build_card(config, frame, run.skipped, run.history, metrics, run.seconds, run.interrupted)
    card["calibration"] = calibration
    card.update(run.steps)
    return card


def write_card(card: dict, config: TrainConfig, history: list[dict]) -> Path:
    """Write the card (JSON and Markdown) and the training curves beside the model; returns the card's path."""
    from agebatch.training import curves, modelcard

    out, stem = Path(config.out_dir), Path(config.model_name).stem
    card_path = modelcard.write_card(card, out, stem)
    curves.write_curves(history, out / f"{stem}.curves")
    return card_path
