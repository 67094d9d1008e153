"""Age intervals that keep their word: which central share of a face's age distribution makes its
``age_low``..``age_high`` hold the true age ``contract.AGE_INTERVAL`` of the time.

The distribution's own central 80 % is too narrow for older faces and too wide for children (its
coverage on held-out faces ran from 65 % for faces over 70 to 94 % for children). So the share is
calibrated per band of the *estimated* age (what is known at scan time): on labelled faces the model
did not train on, each band gets the smallest share whose interval holds the truth often enough, a
finite-sample (split-conformal) margin included. The shares live in the model card's ``calibration``
(``interval_shares``); a model without them keeps the plain central 80 %.
"""

from __future__ import annotations

import math

import numpy as np

from agebatch import contract

SHARES = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))  # 0.50 .. 0.99: the shares a band may get
MIN_BAND_FACES = 30  # fewer calibration faces in an estimated-age band than this: it gets the overall share
DEFAULT_KEY = "all"


def interval(distributions: np.ndarray, ages: np.ndarray, shares: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each face's interval: the central share of its distribution that ``shares`` gives its estimated
    age's band (``calibrate``'s result), or ``contract.AGE_INTERVAL`` without calibration."""
    share = share_per_face(ages, shares)
    return contract.age_interval(distributions, share)


def share_per_face(ages: np.ndarray, shares: dict | None) -> np.ndarray | float:
    """The central share each face's interval covers (a plain float when uncalibrated)."""
    if not shares:
        return contract.AGE_INTERVAL
    default = float(shares.get(DEFAULT_KEY, contract.AGE_INTERVAL))
    per_band = np.array([float(shares.get(band, default)) for band in contract.AGE_BAND_LABELS])
    return per_band[band_index(ages)]


def band_index(ages: np.ndarray) -> np.ndarray:
    """Each age's position in ``contract.AGE_BANDS`` (as ``contract.age_band`` places it), vectorised:
    this runs for every face a scan estimates."""
    upper = np.array([high + 1 for _, high in contract.AGE_BANDS[:-1]], float)
    return np.searchsorted(upper, np.asarray(ages, float).reshape(-1), side="right")


def covered(low: np.ndarray, high: np.ndarray, age_low: np.ndarray, age_high: np.ndarray) -> np.ndarray:
    """Whether each interval meets its face's label: an exact age's year (``a - 0.5 .. a + 0.5``, as the
    distribution's bins are) or any year of a labelled band (FairFace's: the band overlaps)."""
    return (np.asarray(high) >= np.asarray(age_low) - 0.5) & (np.asarray(low) <= np.asarray(age_high) + 0.5)


def calibrate(
    distributions: np.ndarray,
    ages: np.ndarray,
    age_low: np.ndarray,
    age_high: np.ndarray,
    target: float = contract.AGE_INTERVAL,
) -> dict:
    """The shares that make intervals hold ``target`` of these labelled faces, per estimated-age band.

    ``distributions`` and ``ages`` must come from faces the model (or read-out) was not fitted on: a
    held-out part, or out-of-fold predictions. Returns ``{"all": share, band: share, ...}``.
    """
    bands = np.array(contract.AGE_BAND_LABELS)[band_index(ages)]
    result = {DEFAULT_KEY: _smallest_share(distributions, age_low, age_high, target)}
    for band in contract.AGE_BAND_LABELS:
        inside = bands == band
        if inside.sum() >= MIN_BAND_FACES:
            result[band] = _smallest_share(
                distributions[inside], np.asarray(age_low)[inside], np.asarray(age_high)[inside], target
            )
    return result


def _smallest_share(distributions, age_low, age_high, target: float) -> float:
    """The smallest of ``SHARES`` whose intervals cover at least the conformal quantile of ``target``
    (``ceil((n + 1) target) / n``), or the largest share when none does."""
    count = len(distributions)
    needed = min(1.0, math.ceil((count + 1) * target) / count) if count else target
    for share in SHARES:
        low, high = contract.age_interval(distributions, share)
        if covered(low, high, age_low, age_high).mean() >= needed:
            return share
    return SHARES[-1]


def coverage_table(
    distributions: np.ndarray, ages: np.ndarray, age_low: np.ndarray, age_high: np.ndarray, shares: dict | None
) -> dict:
    """How often the intervals hold the truth, overall and per *true* age band, with their mean width:
    what the model card shows."""
    low, high = interval(distributions, ages, shares)
    hit = covered(low, high, age_low, age_high)
    true_bands = np.array(contract.AGE_BAND_LABELS)[band_index(age_low)]
    table = {"overall": {"faces": len(hit), "coverage": float(hit.mean()), "width": float((high - low).mean())}}
    for band in contract.AGE_BAND_LABELS:
        inside = true_bands == band
        if inside.any():
            table[band] = {
                "faces": int(inside.sum()),
                "coverage": float(hit[inside].mean()),
                "width": float((high - low)[inside].mean()),
            }
    return table
