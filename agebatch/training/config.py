"""Every knob of a training run, in a module of its own so the CLI can show the defaults cheaply.

``agebatch.training.train`` (which needs TensorFlow) is imported only when training starts; the
command line reads each option's default and help text from here (``common.settings``), so both are
written once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agebatch.common.errors import SetupError
from agebatch.common.settings import setting

SCHEDULES = ("plateau", "cosine")
AGE_HEADS = ("regression", "distribution")
SAMPLINGS = ("weight", "oversample")


@dataclass
class TrainConfig:
    """Every knob of a training run; the model card records all of them."""

    data_dir: str = setting("", "Labelled faces: a UTKFace-style folder, a folder with labels.csv, or a CSV.")
    more_data: tuple[str, ...] = setting((), "Another labelled source to train on as well (repeatable).")
    out_dir: str = setting("trained", "Folder for the model, model card, split and curves.")
    model_name: str = setting("agebatch.keras", "File name of the model inside the output folder.")
    image_size: int = setting(128, "Side of the square face crops the network takes, in pixels.")
    batch_size: int = setting(64, "Faces per training batch.")
    head_epochs: int = setting(2, "Epochs training only the heads on a frozen base.")
    epochs: int = setting(30, "Most fine-tuning epochs (early stopping may end sooner).")
    patience: int = setting(4, "Early-stopping patience (epochs).")
    test_split: float = setting(0.2, "Share held out for evaluation (of each source split afresh).")
    val_split: float = setting(0.1, "Share of the training part kept for early stopping.")
    seed: int = setting(42, "Seeds the split and the training (weights, shuffling, augmentation).")
    split_from: str | None = setting(None, "Reuse an earlier run's split.csv (then --seed only seeds the training).")
    backbone_weights: str | None = setting(
        "imagenet",
        "imagenet (Keras fetches them once into ~/.keras when they are not there: training only), none, or a "
        ".weights.h5 path; unused with --init-from.",
    )
    alpha: float = setting(1.0, "MobileNetV2 width multiplier.")
    head_learning_rate: float = setting(1e-3, "Learning rate of the heads phase.")
    learning_rate: float = setting(1e-4, "Fine-tuning learning rate.")
    schedule: str = setting(
        "plateau", "Fine-tuning rate: cut when validation stalls (plateau) or cosine decay over --epochs."
    )
    fine_tune_fraction: float = setting(1.0, "Share of the backbone's layers (from the top) fine-tuned.")
    age_head: str = setting(
        "distribution",
        "Age head: a distribution over years (exact ages and bands; the shipped model's), or one regression output.",
    )
    age_sigma: float = setting(2.5, "Distribution head: width in years of an exact age's soft label.")
    age_loss_weight: float = setting(
        0.05, "Weight of the age loss (MSE in years^2, or the distribution's cross-entropy) against gender's."
    )
    balance_gender: bool = setting(True, "Regression head: weigh the gender loss so both genders count equally.")
    age_weight_power: float = setting(0.5, "Weigh faces by (size of their age band or stratum) to this power, negated.")
    sampling: str = setting(
        "weight",
        "Distribution head: how rare strata get their share; weight their loss, or oversample them "
        "(each epoch draws faces in proportion to the same weights; augmentation varies the repeats).",
    )
    dropout: float = setting(0.3, "Dropout before the heads.")
    gender_smoothing: float = setting(
        0.0,
        "Label smoothing of the gender targets while training (validation keeps the plain labels); "
        "distribution head only.",
    )
    color_jitter: float = setting(0.0, "Random brightness/contrast strength in augmentation (0: off).")
    max_images: int | None = setting(None, "Use at most this many labelled faces (a random sample).")
    init_from: str | None = setting(
        None, "Continue from this saved model instead of new heads (skips the heads phase)."
    )
    average_with: tuple[str, ...] = setting(
        (),
        "Continue from the average of --init-from's weights and this saved model's (repeatable; runs "
        "continued from one model average well).",
    )
    warm_start: str | None = setting(
        None, "Start from the layers this saved model shares with the new network (heads phase kept)."
    )
    teachers: tuple[str, ...] = setting(
        (),
        "Distil: blend the labels with this saved model's estimates (see --teacher-weight); "
        "repeat to average several models.",
    )
    teacher_weight: float = setting(0.5, "Share of the teacher in the training targets.")
    average_epochs: int = setting(0, "Extra epochs whose weights are averaged (kept only if validation improves).")
    refit_age_head: bool = setting(
        False, "Finally refit the age head on frozen features, unweighted (kept if validation improves)."
    )
    average_learning_rate: float = setting(3e-5, "Learning rate of the weight-averaging epochs.")
    calibrate: bool = setting(True, "Fit the age map / gender temperature and threshold on the validation split.")
    time_limit_minutes: float | None = setting(None, "Stop fine-tuning after this many minutes (best weights kept).")
    cache_dir: str | None = setting(None, "Cache decoded faces here between runs.")
    verbose: int | None = setting(None, "Keras verbosity; default: a bar on a terminal, one line per epoch otherwise.")

    @property
    def sources(self) -> tuple[str, ...]:
        """Every labelled source of the run, the first one first."""
        return (str(self.data_dir), *map(str, self.more_data))

    def check_inputs(self) -> None:
        """Every file and folder the run reads exists, and the output folder is not a file: a typo stops
        the run at once with one line (``SetupError``), before TensorFlow loads and minutes go by."""
        for source in self.sources:
            _must_exist(source, "labelled data", Path.exists)
        if self.backbone_weights not in (None, "imagenet"):
            _must_exist(self.backbone_weights, "backbone weights", Path.is_file)
        for path in self.teachers:
            _must_exist(path, "teacher model", Path.is_file)
        if self.split_from is not None:
            _must_exist(self.split_from, "split file", Path.is_file)
        out = Path(self.out_dir)
        if out.exists() and not out.is_dir():
            raise SetupError(f"--out must be a folder: {out} is a file")
        for path, role in ((self.init_from, "model to continue from"), (self.warm_start, "model to warm-start from")):
            if path is not None:
                _must_exist(path, role, Path.is_file)
        for path in self.average_with:
            _must_exist(path, "model to average with", Path.is_file)

    def __post_init__(self) -> None:
        if self.backbone_weights == "none":  # the word the command line takes for "no weights"
            self.backbone_weights = None
        self.teachers = tuple(str(path) for path in self.teachers)
        self.average_with = tuple(str(path) for path in self.average_with)
        self.more_data = tuple(str(path) for path in self.more_data)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if self.age_head not in AGE_HEADS:
            raise ValueError(f"unknown age head {self.age_head!r}; choose one of {', '.join(AGE_HEADS)}")
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        if self.sampling == "oversample" and self.age_head != "distribution":
            raise ValueError("oversampling needs the distribution age head (the regression recipe weighs its losses)")
        if self.age_head == "distribution" and self.teachers:
            raise ValueError("distillation (teachers) works with the regression age head only")
        if self.average_with and not self.init_from:
            raise ValueError(
                "averaging with other models (--average-with) needs a model to continue from (--init-from)"
            )
        if not 0.0 <= self.gender_smoothing < 0.5:
            raise ValueError(f"gender_smoothing must be at least 0 and below 0.5, got {self.gender_smoothing}")
        if self.gender_smoothing and self.age_head != "distribution":
            raise ValueError(
                "gender smoothing needs the distribution age head (whose calibration refits the confidence)"
            )
        models = [os.path.realpath(path) for path in (self.init_from, *self.average_with) if path]
        if len(set(models)) < len(models):
            raise ValueError("the same model is given twice to continue from and average with")
        if not 0.0 <= self.teacher_weight <= 1.0:
            raise ValueError(f"teacher_weight must be between 0 and 1, got {self.teacher_weight}")


def _must_exist(path: str, role: str, test) -> None:
    if not test(Path(path)):
        raise SetupError(f"{role} not found: {path}")
