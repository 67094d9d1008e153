"""The names every layer agrees on: a model's outputs, the genders, the age bands, the interface check.

Scanning, training and reporting each import from here rather than from one another, so none of them
needs another layer's heavy dependencies for a constant. Nothing here imports Keras or TensorFlow.
"""

from __future__ import annotations

from typing import Any

AGE_OUTPUT = "age_output"  # estimated age in years, shape (n, 1)
GENDER_OUTPUT = "gender_output"  # probabilities (male, female), shape (n, 2)
AGE_DISTRIBUTION = "age_distribution"  # optional: probabilities over years 0..100+, shape (n, 101)
ENSEMBLE_MEMBER_PREFIX = "net_"  # the nested networks of an ensemble model are named net_1, net_2, ...

GENDERS = ("male", "female")  # index 0 and 1 of the gender output, and the words the results file uses
AGE_BANDS = ((0, 12), (13, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 200))
REPORT_MAX_AGE = 120  # ages are tallied in whole years up to this one (older counts as this)
AGE_BINS = 101  # the age distribution's years 0..100, the last bin holding 100 and over
AGE_INTERVAL = 0.8  # the share of the distribution between age_low and age_high


class ModelInterfaceError(ValueError):
    """A loaded model that does not take faces and give age and gender."""


def age_band(age: float) -> str:
    """The age band label ("0-12" ... "65+") for an age in years."""
    for low, high in AGE_BANDS:
        if age < high + 1:
            return f"{low}+" if high >= 200 else f"{low}-{high}"
    return f"{AGE_BANDS[-1][0]}+"


AGE_BAND_LABELS = tuple(age_band(low) for low, _ in AGE_BANDS)


def check_interface(model: Any) -> int:
    """Verify ``model`` takes (n, s, s, 3) images and returns age and gender; returns s."""
    try:
        shape = tuple(model.inputs[0].shape) if len(model.inputs) == 1 else None
    except (AttributeError, IndexError, TypeError):
        shape = None
    if shape is None or len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[1] != shape[2]:
        raise ModelInterfaceError(f"model input must be (batch, size, size, 3), got {shape}")
    names = set(getattr(model, "output_names", None) or [])
    if not {AGE_OUTPUT, GENDER_OUTPUT} <= names:
        raise ModelInterfaceError(f"model must have outputs {AGE_OUTPUT!r} and {GENDER_OUTPUT!r}, has {sorted(names)}")
    return int(shape[1])


def age_interval(probs: Any, share: Any = AGE_INTERVAL) -> tuple[Any, Any]:
    """The central ``share`` of each age distribution (rows of ``probs``): arrays (low, high) in years.

    Year ``i``'s bin spans ``i - 0.5 .. i + 0.5`` (soft labels centre on ``i``), and each quantile is
    interpolated linearly inside its bin. ``share`` is one share for all rows or one per row (a model's
    calibrated shares, ``modelfile.intervals``).
    """
    import numpy as np

    probs = np.atleast_2d(np.asarray(probs, float))
    cumulative = np.cumsum(probs, axis=1)
    cumulative /= np.maximum(cumulative[:, -1:], 1e-12)
    tail = (1 - share) / 2
    return _quantile(cumulative, tail), _quantile(cumulative, 1 - tail)


def _quantile(cumulative: Any, q: float) -> Any:
    import numpy as np

    rows = np.arange(len(cumulative))
    q = np.asarray(q, float)
    index = np.argmax(cumulative >= (q.reshape(-1, 1) if q.ndim else q), axis=1)
    before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0.0)
    inside = cumulative[rows, index] - before
    fraction = np.where(inside > 0, (q - before) / np.maximum(inside, 1e-12), 0.5)
    return np.maximum(index - 0.5 + np.clip(fraction, 0.0, 1.0), 0.0)


def has_distribution(model: Any) -> bool:
    """True when ``model`` also gives its age distribution (and so an age interval)."""
    return AGE_DISTRIBUTION in set(getattr(model, "output_names", None) or [])


def members_of(model: Any) -> list:
    """The networks an ensemble model averages (nested models named ``net_N``); empty for one network."""
    found = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer.name.startswith(ENSEMBLE_MEMBER_PREFIX):
            try:
                check_interface(layer)
            except ModelInterfaceError:
                continue
            found.append(layer)
    return found
