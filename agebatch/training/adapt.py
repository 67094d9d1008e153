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
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common.errors import SetupError
from agebatch.modelfile.card import card_for_model, interval_shares_for
from agebatch.training import readout
from agebatch.training.adaptfolds import CrossValidation, cross_validate
from agebatch.training.adaptoptions import AdaptOptions

log = logging.getLogger(__name__)


class AdaptError(SetupError):
    """The labelled sample cannot be used (too few faces, no labels, an existing result)."""


@dataclass
class AdaptResult:
    model_path: Path
    faces: int
    skipped: dict
    validation: CrossValidation
    seconds: float


OUTPUT_SUFFIXES = (".keras", ".tflite", ".tflite.json", ".card.json", ".card.md")  # what adapt writes, all or none
NAME_LIMIT = 100  # characters of --name: room for its longest suffix and a temporary name on any filesystem


def adapt(options: AdaptOptions) -> AdaptResult:
    """Refit ``options.model``'s read-out on ``options.labelled`` and write the adapted model."""
    from agebatch.modelfile.load import default_model_path

    started = time.time()
    base_path = Path(options.model) if options.model else default_model_path()
    out_path = _checked_output(options)
    if not options.labelled:
        raise AdaptError("adapt needs labelled photos: a labels CSV (path,age[,gender]) or a folder")
    for path in options.labelled:
        if not Path(path).exists():
            raise AdaptError(f"labelled data not found: {path}")
    model, size = _base_model(base_path)
    frame, skipped = _labels(options)
    faces, frame, unusable = _faces(frame, size, options)
    skipped.update(unusable)
    if len(frame) < options.min_faces:
        raise AdaptError(
            f"only {len(frame)} usable labelled face(s) (at least {options.min_faces} are needed to judge an "
            f"adaptation); skipped: {_said(skipped)}"
        )
    from agebatch.training.network import pooled_features

    features = pooled_features(model, faces).astype(np.float64)
    folds = min(options.folds, len(frame))
    _note(options, f"features of {len(features)} faces computed; cross-validating {folds} folds")
    prior = readout.readout_of(model)
    validation = cross_validate(prior, features, frame, replace(options, folds=folds), interval_shares_for(base_path))
    readout.with_readout(model, validation.final_readout(prior, features, frame))
    card = _card(base_path, frame, validation, skipped, options)
    path = _save(model, base_path, out_path, card)
    return AdaptResult(path, len(frame), skipped, validation, time.time() - started)


def _checked_output(options: AdaptOptions) -> Path:
    """Where the adapted model goes, refused before any work when it cannot go there or would replace
    anything: ``--name`` is a plain file name, ``--out`` a folder (or nothing yet), no output exists."""
    name = options.name
    plain = bool(name) and name == Path(name).name and not name.startswith(".") and "\0" not in name
    if not plain or len(name) > NAME_LIMIT:
        raise AdaptError(
            f"--name is a file name of at most {NAME_LIMIT} characters without a folder or suffix, such as "
            f"'mine', not {name[:120]!r}"
        )
    folder = Path(options.out_dir)
    if folder.exists() and not folder.is_dir():
        raise AdaptError(f"--out {folder} is a file, not a folder (nothing was changed)")
    for suffix in OUTPUT_SUFFIXES:
        if (folder / f"{name}{suffix}").exists():
            raise AdaptError(
                f"{folder / (name + suffix)} already exists; choose another --out or --name (nothing was changed)"
            )
    return folder / f"{name}.keras"


def _base_model(base_path: Path) -> tuple:
    """The model to adapt and its face size, refused in one line unless it has an age distribution head to refit."""
    from agebatch.contract import has_distribution
    from agebatch.modelfile.load import load_model

    model, size = load_model(base_path)
    if not has_distribution(model):
        raise AdaptError(f"{base_path} has no age distribution head; adapt refits that head (train a model with one)")
    return model, size


def _note(options: AdaptOptions, message: str) -> None:
    if options.progress:
        log.info("adapt: %s", message)


def _labels(options: AdaptOptions) -> tuple[pd.DataFrame, dict]:
    """The labelled images, each once (the same photo listed twice would sit in a training fold and its
    held-out fold at once), and how many label rows were left out and why."""
    from agebatch.training.sources import read_sources

    try:
        frame, unreadable = read_sources(list(options.labelled), gender_optional=True)
    except ValueError as exc:
        raise AdaptError(str(exc)) from exc
    unique = frame.drop_duplicates("path").reset_index(drop=True)
    return unique, {"unreadable label rows": unreadable, "listed twice": len(frame) - len(unique)}


def _faces(frame: pd.DataFrame, size: int, options: AdaptOptions) -> tuple[np.ndarray, pd.DataFrame, dict]:
    """One ``size``-pixel face crop per labelled image (the largest face found, cut as ``scan`` cuts it:
    the detection half of ``photo.analyse``, without estimating anything), the labels of the images that
    gave one, and how many were skipped and why."""
    from agebatch.scanning import detectors, faces, images

    finder = detectors.make_detector(options.detector, detectors.DEFAULT_MIN_FACE, None)
    crops, kept, skipped = [], [], {"unreadable images": 0, "no face": 0}
    for index, path in enumerate(frame["path"]):
        try:
            decoded = images.decode(path, max_side=detectors.decode_side(finder.name, size))
        except images.ImageError:
            skipped["unreadable images"] += 1
            continue
        _, found = faces.find_faces(decoded.image, finder, size, decoded.scale)
        if not found:
            skipped["no face"] += 1
            continue
        crops.append(found[0])  # the largest face: the one a label of a photo is about
        kept.append(index)
    stacked = np.stack(crops) if crops else np.empty((0, size, size, 3), np.uint8)
    return stacked, frame.iloc[kept].reset_index(drop=True), skipped


def _said(skipped: dict) -> str:
    return ", ".join(f"{count} {why}" for why, count in skipped.items() if count) or "none"


def _card(base_path: Path, frame: pd.DataFrame, validation: CrossValidation, skipped: dict, options) -> dict:
    """The adapted model's card: its own figures are the adaptation's cross-validated ones. The base
    card's test figures describe another read-out, so they are kept apart (``base_test_metrics``) where
    nothing takes them for this model's (the report's corrections, "how to read this", ``models``)."""
    base = card_for_model(base_path) or {}
    card = {
        key: copy.deepcopy(base[key]) for key in ("task", "architecture", "input", "data", "limitations") if key in base
    }
    card.update(
        name=options.name,
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        base_test_metrics=copy.deepcopy(base.get("test_metrics")),
        calibration={
            "interval_shares": validation.interval_shares,
            "interval_note": "recalibrated on the adaptation sample's out-of-fold estimates",
        },
        notes=[validation.sentence()],
    )
    card["adaptation"] = {
        "adapted_from": base_path.name,
        "base_created": base.get("created"),
        "faces": len(frame),
        "exact_ages": int((frame["age_low"] == frame["age_high"]).sum()),
        "with_gender": int((frame["gender"] >= 0).sum()),
        "skipped": skipped,
        "detector": options.detector,
        **validation.record(),
    }
    return card


def _save(model, base_path: Path, out_path: Path, card: dict) -> Path:
    """The adapted ``.keras`` (stored like its base), its LiteRT twin and record, and the card: made in
    a temporary folder beside them and linked into place only when all five exist, never over a file."""
    import shutil
    import tempfile

    import keras

    from agebatch.modelfile.precision import half_precision_storage, stores_half_precision
    from agebatch.modelfile.twin import export_tflite, tflite_path_for, write_twin_record
    from agebatch.training.modelcard import write_card

    stored_half = stores_half_precision(keras.saving.load_model(base_path, compile=False, safe_mode=True))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".adapting-", dir=out_path.parent))
    placed: list[Path] = []
    try:
        keras_file = work / out_path.name
        (half_precision_storage(model) if stored_half else model).save(keras_file)
        lite = export_tflite(model, tflite_path_for(keras_file), stored_half)
        write_twin_record(keras_file, lite)
        card["tflite"] = {"file": lite.name}  # bound to the adapted model by its record
        write_card(card, work, keras_file.stem)
        for made in sorted(work.iterdir()):
            placed.append(_place(made, out_path.parent / made.name))
    except BaseException:
        for path in placed:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out_path


def _place(made: Path, target: Path) -> Path:
    """Move ``made`` to ``target``, never over a file that appeared there meanwhile."""
    try:
        os.link(made, target)  # fails, rather than replaces, when the target exists
    except FileExistsError:
        raise AdaptError(f"{target} appeared while adapting; nothing was left in its place") from None
    except OSError:  # a filesystem without hard links: check, then move
        if target.exists():
            raise AdaptError(f"{target} appeared while adapting; nothing was left in its place") from None
        os.replace(made, target)
    return target


def summary(result: AdaptResult) -> str:
    """What the command prints: where the model went, what changed, measured how."""
    return "\n".join(
        [
            f"{result.model_path}: adapted on {result.faces} labelled faces in {result.seconds:.0f} s",
            result.validation.sentence(),
        ]
    )
