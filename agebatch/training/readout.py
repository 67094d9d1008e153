"""The model's read-out (its age and gender heads) as plain arrays: outputs, a refit that stays near the
shipped heads, and the figures ``adapt`` compares before and after.

A population unlike the training faces mostly needs a different read-out, not different features: the
network still sees the face, but maps it to ages a few years off. Refitting the two heads on a user's
few hundred labelled faces, with a penalty that pulls every weight towards the shipped one, moves the
read-out only as far as the sample supports. Everything here is NumPy on pooled features (1280 numbers
a face), so a fit on 2,000 faces takes seconds and the tests need no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from agebatch import contract
from agebatch.modelfile import intervals
from agebatch.training import agedist

FIGURE_BANDS = ((0, 2), (3, 9), (10, 19), (20, 29), (30, 39), (40, 49), (50, 59), (60, 69), (70, 200))  # FairFace's


@dataclass(frozen=True)
class Readout:
    """The age distribution head (kernel, bias) and the gender head (kernel, bias)."""

    age_kernel: np.ndarray  # (features, AGE_BINS)
    age_bias: np.ndarray  # (AGE_BINS,)
    gender_kernel: np.ndarray  # (features, 2)
    gender_bias: np.ndarray  # (2,)


@dataclass(frozen=True)
class Outputs:
    """What the heads say for a batch of faces: distributions, ages (their means), female probabilities."""

    distributions: np.ndarray
    ages: np.ndarray
    females: np.ndarray


def readout_of(model) -> Readout:
    """The heads of a Keras model with an age distribution (``contract.AGE_DISTRIBUTION``)."""
    age_kernel, age_bias = model.get_layer(contract.AGE_DISTRIBUTION).get_weights()
    gender_kernel, gender_bias = model.get_layer(contract.GENDER_OUTPUT).get_weights()
    return Readout(*(np.asarray(w, np.float64) for w in (age_kernel, age_bias, gender_kernel, gender_bias)))


def with_readout(model, readout: Readout) -> None:
    """Set ``model``'s heads to ``readout`` (in place)."""
    model.get_layer(contract.AGE_DISTRIBUTION).set_weights(
        [readout.age_kernel.astype("float32"), readout.age_bias.astype("float32")]
    )
    model.get_layer(contract.GENDER_OUTPUT).set_weights(
        [readout.gender_kernel.astype("float32"), readout.gender_bias.astype("float32")]
    )


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def outputs(readout: Readout, features: np.ndarray) -> Outputs:
    """The heads applied to pooled ``features`` (n, 1280), as the network would apply them."""
    distributions = _softmax(features @ readout.age_kernel + readout.age_bias)
    females = _softmax(features @ readout.gender_kernel + readout.gender_bias)[:, 1]
    return Outputs(distributions, agedist.expected_age(distributions), females)


def fit(
    prior: Readout,
    features: np.ndarray,
    age_low: np.ndarray,
    age_high: np.ndarray,
    genders: np.ndarray,
    strength: float,
    steps: int = 300,
    learning_rate: float = 0.01,
) -> Readout:
    """Heads refitted on labelled faces, each weight pulled towards ``prior``'s by ``strength`` (L2).

    The age head maximises the likelihood the training used (an exact age's soft label; for a band, the
    mass inside it), the gender head the log-likelihood of the known genders (``genders`` -1: unknown;
    with none known the gender head stays as it was). Adam on the full batch: the problem is convex.
    """
    features = np.asarray(features, np.float32)  # float32 halves the time; the fit needs no more
    targets = agedist.targets(age_low, age_high)
    banded, body = targets[:, 0] > 0.5, targets[:, 1:]
    known = np.asarray(genders) >= 0
    count = len(features)

    def age_gradient(kernel, bias):
        probs = _softmax(features @ kernel + bias)
        inside = probs * body
        wanted = np.where(banded[:, None], inside / np.maximum(inside.sum(axis=1, keepdims=True), 1e-7), body)
        return (probs - wanted) / count

    age_kernel, age_bias = _adam(
        features, age_gradient, prior.age_kernel, prior.age_bias, strength, steps, learning_rate
    )
    readout = replace(prior, age_kernel=age_kernel, age_bias=age_bias)
    if not known.any():
        return readout
    seen, onehot = features[known], np.eye(2)[np.asarray(genders)[known]]

    def gender_gradient(kernel, bias):
        return (_softmax(seen @ kernel + bias) - onehot) / len(seen)

    gender_kernel, gender_bias = _adam(
        seen, gender_gradient, prior.gender_kernel, prior.gender_bias, strength, steps, learning_rate
    )
    return replace(readout, gender_kernel=gender_kernel, gender_bias=gender_bias)


def _adam(features, gradient, kernel0, bias0, strength, steps, learning_rate):
    """Minimise a head's loss (``gradient`` of the logits) plus ``strength``/2 times its squared distance
    from (``kernel0``, ``bias0``)."""
    kernel0, bias0 = kernel0.astype(np.float32), bias0.astype(np.float32)
    kernel, bias = kernel0.copy(), bias0.copy()
    moments = [[np.zeros_like(kernel), np.zeros_like(kernel)], [np.zeros_like(bias), np.zeros_like(bias)]]
    for step in range(1, steps + 1):
        logits_gradient = gradient(kernel, bias)
        grads = (
            features.T @ logits_gradient + strength * (kernel - kernel0),
            logits_gradient.sum(axis=0) + strength * (bias - bias0),
        )
        for value, grad, (first, second) in zip((kernel, bias), grads, moments):
            first *= 0.9
            first += 0.1 * grad
            second *= 0.999
            second += 0.001 * grad * grad
            value -= learning_rate * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
    return kernel, bias


def band_shares(ages: np.ndarray) -> np.ndarray:
    """The share of ``ages`` in each of ``FIGURE_BANDS`` (years rounded as the report rounds them)."""
    years = np.floor(np.asarray(ages, float) + 0.5)
    return np.array([np.mean((years >= low) & (years <= high)) for low, high in FIGURE_BANDS]) if len(years) else 0


def figures(
    out: Outputs, age_low: np.ndarray, age_high: np.ndarray, genders: np.ndarray, shares: dict | None = None
) -> dict:
    """What a demographer reads, for faces with labels: age error and bias (exact ages), the right band
    (banded labels), the nine-band distribution's distance from the truth, gender accuracy (known
    genders) and how often the stated interval (``shares``: ``modelfile.intervals``) holds the truth."""
    low, high = np.asarray(age_low, float), np.asarray(age_high, float)
    exact = low == high
    error = out.ages - low
    middle = np.where(exact, low, (low + np.minimum(high, 100)) / 2)
    known = np.asarray(genders) >= 0
    called = (out.females >= 0.5).astype(int)
    in_band = (np.floor(out.ages + 0.5) >= low) & (np.floor(out.ages + 0.5) <= high)
    interval_low, interval_high = intervals.interval(out.distributions, out.ages, shares)
    return {
        "faces": int(len(low)),
        "age_mae": float(np.abs(error[exact]).mean()) if exact.any() else None,
        "age_bias": float(error[exact].mean()) if exact.any() else None,
        "age_band_accuracy": float(in_band[~exact].mean()) if (~exact).any() else None,
        "band_distance": float(0.5 * np.abs(band_shares(out.ages) - band_shares(middle)).sum()),
        "gender_accuracy": float((called[known] == np.asarray(genders)[known]).mean()) if known.any() else None,
        "interval_coverage": float(intervals.covered(interval_low, interval_high, low, high).mean()),
    }
