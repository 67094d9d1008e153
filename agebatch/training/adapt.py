"""``agebatch adapt``: refit a model's read-out on a user's own labelled faces, and keep it only where
cross-validation on those faces says it helps.

The faces are found as ``scan`` finds them (the largest face of each photo), or taken whole
(``detector="none"``). Their pooled features are computed once; the heads are then refitted in NumPy
(``readout``) with a pull towards the shipped ones whose strength k-fold cross-validation chooses,
and the age interval is recalibrated on the out-of-fold estimates (``modelfile.intervals``). The
result is a model like the shipped one: ``.keras``, LiteRT twin with its record, card.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common.errors import SetupError
from agebatch.common.settings import setting
from agebatch.modelfile.card import card_for_model, interval_shares_for
from agebatch.training import readout
from agebatch.training.adaptfolds import CrossValidation, cross_validate

log = logging.getLogger(__name__)


class AdaptError(SetupError):
    """The labelled sample cannot be used (too few faces, no labels, an existing result)."""


@dataclass
class AdaptOptions:
    """What ``agebatch adapt`` does; every default is written here once."""

    labelled: tuple[str, ...] = setting(
        (), "Labelled photos: labels CSVs (path,age[,gender]) or folders of them, or UTKFace-style folders."
    )
    out_dir: str = setting("adapted", "Folder for the adapted model, its LiteRT twin and card (a new name).")
    model: str | None = setting(None, "Model to adapt (.keras); default: the shipped model or $AGEBATCH_MODEL.")
    name: str = setting("adapted", "File name (without suffix) of the adapted model in --out.")
    detector: str = setting(
        "blazeface", "Find the (largest) face in each photo as scan does; none: each image is one face crop."
    )
    folds: int = setting(5, "Cross-validation folds that judge the refit on the labelled faces.")
    min_faces: int = setting(50, "Refuse samples with fewer usable labelled faces than this.")
    strengths: tuple[float, ...] = setting(
        (0.1, 0.03, 0.01), "Pulls towards the shipped heads that cross-validation chooses from (larger: nearer)."
    )
    seed: int = setting(0, "Seed of the folds.")
    progress: bool = field(default=False, metadata={"help": "Log each step."})


@dataclass
class AdaptResult:
    model_path: Path
    faces: int
    skipped: dict
    validation: CrossValidation
    seconds: float


def adapt(options: AdaptOptions) -> AdaptResult:
    """Refit ``options.model``'s read-out on ``options.labelled`` and write the adapted model."""
    from agebatch.modelfile.load import default_model_path, load_model

    started = time.time()
    base_path = Path(options.model) if options.model else default_model_path()
    if not options.name or options.name != Path(options.name).name or options.name.startswith("."):
        raise AdaptError(f"--name is a file name without a folder or suffix, such as 'mine', not {options.name!r}")
    out_path = Path(options.out_dir) / f"{options.name}.keras"
    if out_path.exists():
        raise AdaptError(f"{out_path} already exists; choose another --out or --name (nothing was changed)")
    frame = _labels(options)
    faces, frame, skipped = _faces(frame, base_path, options)
    if len(frame) < options.min_faces:
        raise AdaptError(
            f"only {len(frame)} usable labelled face(s) (at least {options.min_faces} are needed to judge an "
            f"adaptation); skipped: {_said(skipped)}"
        )
    from agebatch.training.network import pooled_features

    model, _ = load_model(base_path)
    features = pooled_features(model, faces).astype(np.float64)
    _note(options, f"features of {len(features)} faces computed; cross-validating {options.folds} folds")
    prior = readout.readout_of(model)
    validation = cross_validate(prior, features, frame, options, interval_shares_for(base_path))
    chosen = validation.final_readout(prior, features, frame)
    readout.with_readout(model, chosen)
    card = _card(base_path, frame, validation, skipped, options)
    path = _save(model, base_path, out_path, card)
    return AdaptResult(path, len(frame), skipped, validation, time.time() - started)


def _note(options: AdaptOptions, message: str) -> None:
    if options.progress:
        log.info("adapt: %s", message)


def _labels(options: AdaptOptions) -> pd.DataFrame:
    from agebatch.training.sources import read_sources

    if not options.labelled:
        raise AdaptError("adapt needs labelled photos: a labels CSV (path,age[,gender]) or a folder")
    for path in options.labelled:
        if not Path(path).exists():
            raise AdaptError(f"labelled data not found: {path}")
    try:
        frame, _ = read_sources(list(options.labelled), gender_optional=True)
    except ValueError as exc:
        raise AdaptError(str(exc)) from exc
    return frame.reset_index(drop=True)


def _faces(frame: pd.DataFrame, model_path: Path, options: AdaptOptions) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """One face crop per labelled image (the largest face found, as ``scan`` cuts it), the labels of
    the images that gave one, and how many were skipped and why."""
    from agebatch.scanning import detectors, images
    from agebatch.scanning.photo import analyse
    from agebatch.scanning.predictor import Predictor

    predictor = Predictor(model_path)
    finder = detectors.make_detector(options.detector, detectors.DEFAULT_MIN_FACE, None)
    crops, kept, skipped = [], [], {"unreadable": 0, "no face": 0}
    for index, path in enumerate(frame["path"]):
        try:
            found = analyse(path, predictor, finder).faces
        except images.ImageError:
            skipped["unreadable"] += 1
            continue
        if not found:
            skipped["no face"] += 1
            continue
        crops.append(found[0].crop)  # the largest face: the one a label of a photo is about
        kept.append(index)
    size = predictor.image_size
    faces = np.stack(crops) if crops else np.empty((0, size, size, 3), np.uint8)
    return faces, frame.iloc[kept].reset_index(drop=True), skipped


def _said(skipped: dict) -> str:
    return ", ".join(f"{count} {why}" for why, count in skipped.items() if count) or "none"


def _card(base_path: Path, frame: pd.DataFrame, validation: CrossValidation, skipped: dict, options) -> dict:
    """The base model's card (its test figures describe the network before adaptation) with the
    adaptation's record and the recalibrated interval."""
    card = copy.deepcopy(card_for_model(base_path) or {})
    card["name"] = options.name
    card["created"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    card["adaptation"] = {
        "adapted_from": base_path.name,
        "base_created": (card_for_model(base_path) or {}).get("created"),
        "faces": len(frame),
        "exact_ages": int((frame["age_low"] == frame["age_high"]).sum()),
        "with_gender": int((frame["gender"] >= 0).sum()),
        "skipped": skipped,
        "detector": options.detector,
        **validation.record(),
    }
    calibration = card.setdefault("calibration", {})
    calibration["interval_shares"] = validation.interval_shares
    calibration["interval_coverage_note"] = "recalibrated on the adaptation sample's out-of-fold estimates"
    calibration.pop("interval_coverage", None)  # the base model's test coverage no longer describes this one
    card.setdefault("notes", [])
    card["notes"] = [*card["notes"], validation.sentence()]
    return card


def _save(model, base_path: Path, out_path: Path, card: dict) -> Path:
    """The adapted ``.keras`` (stored like its base), its LiteRT twin and record, and the card."""
    import keras

    from agebatch.common import atomic
    from agebatch.modelfile.precision import half_precision_storage, stores_half_precision
    from agebatch.modelfile.twin import export_tflite, tflite_path_for, write_twin_record
    from agebatch.training.modelcard import write_card

    stored_half = stores_half_precision(keras.saving.load_model(base_path, compile=False, safe_mode=True))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(out_path) as tmp:
        (half_precision_storage(model) if stored_half else model).save(tmp)
    lite = export_tflite(model, tflite_path_for(out_path), stored_half)
    write_twin_record(out_path, lite)
    card["tflite"] = {"file": lite.name}  # bound to the adapted model by its record
    write_card(card, out_path.parent, out_path.stem)
    return out_path


def summary(result: AdaptResult) -> str:
    """What the command prints: where the model went, what changed, measured how."""
    return "\n".join(
        [
            f"{result.model_path}: adapted on {result.faces} labelled faces in {result.seconds:.0f} s",
            result.validation.sentence(),
        ]
    )
