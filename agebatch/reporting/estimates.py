"""Shares with honest uncertainty: Wilson intervals, and shares corrected for the model's known errors;
and the median age of a streamed age histogram.

A share counted from a model's guesses has two kinds of error. Sampling: 42 of 100 faces is not
exactly 42 %; the Wilson score interval says how far it could be. Misclassification: the model calls
some women men and some men women, at rates its model card measured on held-out faces. If it calls a
real woman female with probability ``sensitivity`` and a real man male with probability
``specificity``, the share it reports is ``p_obs = p * se + (1 - p) * (1 - sp)``; solving for ``p``
gives the Rogan-Gladen estimator ``p = (p_obs + sp - 1) / (se + sp - 1)``. Its interval here maps the
Wilson bounds through the same formula, so it covers sampling error only, not the uncertainty in
``se`` and ``sp`` themselves (a few thousand test faces measure those to about a point).
"""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of ``successes / trials`` (None without trials)."""
    if trials <= 0:
        return None
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rogan_gladen(observed: float, sensitivity: float, specificity: float) -> float | None:
    """The true share behind an ``observed`` share of a classifier with these error rates, clipped to
    [0, 1]; None when the classifier is no better than chance (``se + sp <= 1``)."""
    youden = sensitivity + specificity - 1
    if youden <= 0:
        return None
    return min(1.0, max(0.0, (observed + specificity - 1) / youden))


def share_with_interval(
    successes: int, trials: int, sensitivity: float | None = None, specificity: float | None = None
) -> dict:
    """A share as the report shows it: raw with its 95 % interval, and corrected with its own when the
    model's error rates are known."""
    if trials <= 0:
        return {"share": None, "interval": None, "corrected": None, "corrected_interval": None, "n": 0}
    raw = successes / trials
    low, high = wilson(successes, trials)
    result = {"share": raw, "interval": [low, high], "corrected": None, "corrected_interval": None, "n": trials}
    if sensitivity is not None and specificity is not None:
        corrected = rogan_gladen(raw, sensitivity, specificity)
        if corrected is not None:
            result["corrected"] = corrected
            result["corrected_interval"] = [
                rogan_gladen(low, sensitivity, specificity),
                rogan_gladen(high, sensitivity, specificity),
            ]
    return result


def error_rates(confusion: list[list[int]] | None) -> tuple[float, float] | None:
    """(sensitivity, specificity) for "female" from a 2x2 confusion (rows true male/female, columns
    called male/female), or None when a row is empty or the table is malformed."""
    try:
        (mm, mf), (fm, ff) = confusion  # type: ignore[misc]
        women, men = fm + ff, mm + mf
        if women <= 0 or men <= 0:
            return None
        return ff / women, mm / men
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def median_of_histogram(hist: np.ndarray) -> int | None:
    """Median age in whole years (the 1-year bin holding the middle face; the lower one for an even
    count): exact enough, and computable from tallies that were streamed. None without faces."""
    total = int(hist.sum())
    if total == 0:
        return None
    return int(np.searchsorted(np.cumsum(hist), (total + 1) // 2))
