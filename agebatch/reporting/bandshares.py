"""Age-band shares as a demographer needs them: counted, with 95 % intervals, and corrected for the
model's measured band confusion, with intervals that include the uncertainty of that correction.

A model that reads 30-year-olds as 36 moves faces from one band to the next; the counted shares of a
collection are then the true shares passed through the model's confusion matrix (true band -> read
band, measured on held-out faces with exact ages and kept in the model card). The correction finds the
true shares that, passed through that matrix, best explain the counts: the maximum-likelihood mixture,
by EM (which keeps every share in 0..1 and their sum at 1). Its interval is a bootstrap that redraws
both the counts and each row of the confusion matrix from the faces it was measured on, so a band
measured on few test faces widens the interval instead of pretending to precision.
"""

from __future__ import annotations

import numpy as np

from agebatch.contract import AGE_BAND_LABELS, AGE_BANDS
from agebatch.reporting.estimates import wilson

REPLICATES = 400  # bootstrap draws for the corrected shares' intervals
ITERATIONS = 300  # EM steps; the estimate moves by less than 1e-6 long before
MAX_MEASURED = 1e9  # a confusion cell above this many faces is not a measurement
SEED = 20261206  # fixed: a report of the same results says the same thing twice


def band_counts(ages: np.ndarray) -> np.ndarray:
    """Faces per report age band from a 1-year age histogram."""
    return np.array([int(ages[low : min(high, len(ages) - 1) + 1].sum()) for low, high in AGE_BANDS])


def unfold(observed: np.ndarray, confusion: np.ndarray, iterations: int = ITERATIONS) -> np.ndarray:
    """The true band shares that best explain ``observed`` shares read through ``confusion`` (rows: true
    band, columns: read band, each row summing to 1)."""
    shares = np.full(len(observed), 1 / len(observed))
    for _ in range(iterations):
        read = shares @ confusion
        shares = shares * (confusion @ np.divide(observed, read, out=np.zeros_like(read), where=read > 0))
        shares /= max(shares.sum(), 1e-12)
    return shares


def band_shares(ages: np.ndarray, confusion_counts: list[list[int]] | None) -> list[dict]:
    """One entry per report age band: faces, counted share and its Wilson interval, and, with a
    confusion matrix whose every row was measured, the corrected share and its bootstrap interval."""
    counts = band_counts(np.asarray(ages))
    total = int(counts.sum())
    corrected = _corrected(counts, confusion_counts) if total else None
    rows = []
    for index, band in enumerate(AGE_BAND_LABELS):
        row = {"band": band, "faces": int(counts[index]), "share": counts[index] / total if total else None}
        row["interval"] = list(wilson(int(counts[index]), total)) if total else None
        row["corrected"], row["corrected_interval"] = (None, None) if corrected is None else corrected[index]
        rows.append(row)
    return rows


def _corrected(counts: np.ndarray, confusion_counts) -> list[tuple[float, list[float]]] | None:
    matrix = _checked(confusion_counts)
    if matrix is None:
        return None
    measured = matrix.sum(axis=1)
    rates = matrix / measured[:, None]
    total = int(counts.sum())
    estimate = unfold(counts / total, rates)
    rng = np.random.default_rng(SEED)
    draws = np.empty((REPLICATES, len(counts)))
    smoothed = (counts + 0.5) / (total + 0.5 * len(counts))  # an empty band can still be drawn: no [0, 0] intervals
    for replicate in range(REPLICATES):
        resampled = rng.multinomial(total, smoothed) / total
        rows = np.array([rng.multinomial(int(n), row) / n for n, row in zip(measured, rates)])
        draws[replicate] = unfold(resampled, rows, ITERATIONS // 3)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return [(float(estimate[i]), [float(low[i]), float(high[i])]) for i in range(len(counts))]


def _checked(confusion_counts) -> np.ndarray | None:
    """The card's confusion counts as a matrix, or None unless it is one row and column per band, of
    non-negative counts, every row measured on at least one face."""
    try:
        matrix = np.asarray(confusion_counts, dtype=float)
    except (TypeError, ValueError):
        return None
    bands = len(AGE_BAND_LABELS)
    if matrix.shape != (bands, bands) or not np.isfinite(matrix).all() or (matrix < 0).any():
        return None
    if matrix.max() > MAX_MEASURED:  # no test split is that large: not counts of faces
        return None
    return matrix if (matrix.sum(axis=1) >= 1).all() else None
