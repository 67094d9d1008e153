"""The age head as a distribution over whole years 0..100+, trained from exact ages and from bands.

An exact age is trained against a narrow Gaussian around it (a soft label: neighbouring years are
nearly as right, which regresses less to the mean than a squared error does); a band such as
``20-29`` is trained with ``-log`` of the probability mass the head puts inside the band, so a source
labelled only in bands (FairFace) teaches the head without pretending to know the year. The estimate
is the distribution's expected value; its quantiles give an honest interval.

Targets travel as one array per face of ``1 + AGE_BINS`` numbers: a flag (0: soft label, 1: band
mask) followed by the soft label or the mask, so one Keras loss handles both kinds in a batch.
"""

from __future__ import annotations

import numpy as np

from agebatch.contract import AGE_BINS, age_interval

SOFT_LABEL_SIGMA = 2.5  # years; the width of an exact age's soft label
interval = age_interval  # the estimate's interval, as scans compute it


def targets(age_low: np.ndarray, age_high: np.ndarray, sigma: float = SOFT_LABEL_SIGMA) -> np.ndarray:
    """Training targets (n, 1 + AGE_BINS) for inclusive year ranges; ``low == high`` is an exact age."""
    low = np.clip(np.asarray(age_low, int), 0, AGE_BINS - 1)
    high = np.clip(np.asarray(age_high, int), low, AGE_BINS - 1)
    years = np.arange(AGE_BINS)[None, :]
    exact = low == high
    soft = np.exp(-0.5 * ((years - low[:, None]) / sigma) ** 2)
    soft /= soft.sum(axis=1, keepdims=True)
    mask = ((years >= low[:, None]) & (years <= high[:, None])).astype(float)
    body = np.where(exact[:, None], soft, mask)
    return np.hstack([(~exact).astype(float)[:, None], body]).astype("float32")


def loss(y_true, y_pred):
    """Per-face loss: cross-entropy with the soft label, or ``-log`` of the mass inside the band."""
    from keras import ops

    flag, target = y_true[:, 0], y_true[:, 1:]
    probs = ops.clip(y_pred, 1e-7, 1.0)
    soft = -ops.sum(target * ops.log(probs), axis=-1)
    band = -ops.log(ops.clip(ops.sum(target * y_pred, axis=-1), 1e-7, 1.0))
    return ops.where(flag > 0.5, band, soft)


def loss_numpy(probs: np.ndarray, targets_: np.ndarray) -> np.ndarray:
    """``loss`` in NumPy, per face: what a read-out refitted outside Keras (``readout``) is judged by."""
    banded, body = targets_[:, 0] > 0.5, targets_[:, 1:]
    soft = -(body * np.log(np.clip(probs, 1e-7, 1.0))).sum(axis=1)
    band = -np.log(np.clip((body * probs).sum(axis=1), 1e-7, 1.0))
    return np.where(banded, band, soft)


def band_loss_numpy(probs: np.ndarray, low: int, high: int) -> float:
    """``-log`` of the mass inside ``low..high`` for one distribution (the reference the tests check)."""
    return float(-np.log(max(float(np.sum(probs[low : high + 1])), 1e-7)))


def expected_age(probs: np.ndarray) -> np.ndarray:
    """The estimate: each distribution's mean age (what the model's ``age_output`` computes)."""
    return np.asarray(probs, float) @ np.arange(AGE_BINS)
