"""What the network is trained towards: per-output targets and per-face loss weights.

``training_targets`` gives each output's targets for a frame of labelled faces (the labels, blended
with a teacher's estimates when distilling, gender smoothed for the faces trained on);
``training_weights`` gives the loss weights that keep rare ages, a gender or a source from being
drowned out. ``teacher_predictions`` computes a teacher's estimates once, before training.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from agebatch import contract
from agebatch.training import sources
from agebatch.training.config import TrainConfig

log = logging.getLogger(__name__)


def gender_weights(genders: np.ndarray) -> np.ndarray:
    """Per-sample weights that make both genders count equally in the gender loss (mean 1)."""
    counts = np.bincount(genders, minlength=2).astype(float)
    per_class = len(genders) / (2 * np.maximum(counts, 1))
    return per_class[genders].astype("float32")


def age_weights(ages: np.ndarray, power: float) -> np.ndarray:
    """Per-sample weights ~ (size of the sample's age band)^-power, normalised to mean 1.

    Children and people over 65 are a small share of UTKFace; without help the age head regresses
    them towards the mean. ``power`` 0.5 is a compromise between no weighting (0) and full
    inverse-frequency weighting (1), which over-fits the rare bands.
    """
    bands = np.array([contract.age_band(a) for a in ages])
    names, inverse, counts = np.unique(bands, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(float) ** -power
    return (weights / weights.mean()).astype("float32")


def blend_with_teacher(
    ages: np.ndarray, genders: np.ndarray, teacher: pd.DataFrame | None, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Training targets (age column, gender probabilities): the labels, mixed with a teacher's estimates.

    A teacher's soft gender probabilities say which faces are ambiguous and its age estimates are
    smoother than single annotators' guesses; a network trained on the mix ("born-again"
    distillation) can end up better than the teacher itself (the model card's notes say when it did
    not). ``weight`` 0 gives the plain labels.
    """
    age = np.asarray(ages, "float32").reshape(-1, 1)
    onehot = np.eye(2, dtype="float32")[np.asarray(genders)]
    if teacher is None or weight <= 0:
        return age, onehot
    female = teacher["pred_female"].to_numpy("float32")
    soft = np.stack([1 - female, female], axis=1)
    teacher_age = teacher["pred_age"].to_numpy("float32").reshape(-1, 1)
    return (1 - weight) * age + weight * teacher_age, (1 - weight) * onehot + weight * soft


def teacher_predictions(teachers: list, images, index: np.ndarray, batch_size: int) -> pd.DataFrame:
    """The teachers' flip-averaged estimates for the faces ``index``, averaged over the teachers.

    Computed once, before training. Several independently trained teachers are an ensemble, which is
    more accurate than any one of them; distillation is how one network can learn from it.
    """
    from agebatch.training import evaluate

    log.info("teacher: %d model(s) predicting %d training faces (flip-averaged)", len(teachers), len(index))
    faces = np.asarray(images[index])  # gathered once, not once per teacher
    return evaluate.mean_estimates([evaluate.predict_arrays(t, faces, batch_size, flip_average=True) for t in teachers])


def label_ages(frame: pd.DataFrame) -> np.ndarray:
    """One number per face for the regression head and the MAE metric: the age, or a band's middle."""
    middle = (frame["age_low"].to_numpy(float) + frame["age_high"].to_numpy(float)) / 2
    return np.where(frame["age"].notna(), frame["age"].to_numpy(float), middle)


def smoothed(onehot: np.ndarray, amount: float) -> np.ndarray:
    """Gender targets moved ``amount`` of the way towards 50/50: a network that may not be certain of
    every training face overfits its gender head less (the distribution head's calibration refits the
    gender temperature after, so the stated confidence is honest again)."""
    return (1 - amount) * onehot + amount / onehot.shape[1]


def training_targets(
    frame: pd.DataFrame, config: TrainConfig, teacher: pd.DataFrame | None = None, training: bool = False
) -> dict:
    """Targets per output for ``frame``'s faces (a teacher blends in only for the regression head;
    gender smoothing applies only to the faces trained on)."""
    from agebatch.contract import AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT
    from agebatch.training import agedist

    ages, onehot = blend_with_teacher(label_ages(frame), frame["gender"].to_numpy(), teacher, config.teacher_weight)
    if training and config.gender_smoothing > 0:
        onehot = smoothed(onehot, config.gender_smoothing)
    targets = {AGE_OUTPUT: ages, GENDER_OUTPUT: onehot}
    if config.age_head == "distribution":
        targets[AGE_DISTRIBUTION] = agedist.targets(frame["age_low"], frame["age_high"], config.age_sigma)
    return targets


def training_weights(frame: pd.DataFrame, config: TrainConfig, outputs) -> dict:
    """Per-face loss weights per output.

    The regression recipe weights the age loss by age band and the gender loss by gender; the
    distribution head, trained on several sources, weighs every loss by ``sources.balance_weights``
    so no source, group, age band or gender dominates (or, with ``sampling="oversample"``, leaves
    that to ``batches.drawn_batches`` and weighs every face 1).
    """
    if config.age_head == "distribution":
        if config.sampling == "oversample":  # the draw gives rare strata their share instead
            weights = np.ones(len(frame), "float32")
        else:
            weights = sources.balance_weights(frame, config.age_weight_power)
        return {name: weights for name in outputs}
    gender = frame["gender"].to_numpy()
    return {
        "age_output": age_weights(label_ages(frame), config.age_weight_power),
        "gender_output": gender_weights(gender) if config.balance_gender else np.ones(len(frame), "float32"),
    }
