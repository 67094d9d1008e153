"""``reporting.bandshares``: age-band shares counted, and corrected for the model's band confusion."""

from __future__ import annotations

import numpy as np

from agebatch.contract import AGE_BAND_LABELS, AGE_BANDS
from agebatch.reporting.bandshares import band_counts, band_shares, unfold


def test_unfolding_a_hand_computed_two_band_confusion_gives_the_true_shares():
    # half the people are young; the model reads 10% of the young as old and 20% of the old as young,
    # so it counts 0.5 * 0.9 + 0.5 * 0.2 = 55% young
    confusion = np.array([[0.9, 0.1], [0.2, 0.8]])
    np.testing.assert_allclose(unfold(np.array([0.55, 0.45]), confusion), [0.5, 0.5], atol=1e-4)


def _histogram(shares: np.ndarray, faces: int) -> np.ndarray:
    """A 1-year age histogram with ``shares`` of ``faces`` in the report's bands (at each band's start)."""
    ages = np.zeros(121)
    for (low, _), share in zip(AGE_BANDS, shares):
        ages[low] = round(share * faces)
    return ages


def test_the_corrected_shares_recover_the_truth_behind_counts_read_through_the_confusion():
    bands = len(AGE_BAND_LABELS)
    truth = np.array([0.10, 0.05, 0.15, 0.20, 0.20, 0.15, 0.10, 0.05])
    confusion = 0.7 * np.eye(bands) + 0.15 * np.eye(bands, k=1) + 0.15 * np.eye(bands, k=-1)
    confusion[0, 0] += 0.15
    confusion[-1, -1] += 0.15  # rows sum to 1: the edges keep what has no neighbour
    counts = (confusion * 2000).round().astype(int)  # measured on 2,000 test faces a band
    observed = _histogram(truth @ confusion, 20000)
    rows = band_shares(observed, counts.tolist())
    corrected = np.array([r["corrected"] for r in rows])
    counted = np.array([r["share"] for r in rows])
    assert np.abs(corrected - truth).max() < 0.01 < np.abs(counted - truth).max()
    for row, true in zip(rows, truth):
        low, high = row["corrected_interval"]
        assert low <= row["corrected"] <= high and low - 0.01 <= true <= high + 0.01
        assert high - low > row["interval"][1] - row["interval"][0]  # the correction's uncertainty counts


def test_without_a_usable_confusion_only_the_counted_shares_are_given():
    ages = np.zeros(121)
    ages[30] = 7
    ages[70] = 3
    assert band_counts(ages).tolist() == [0, 0, 0, 1 * 7, 0, 0, 0, 3]
    for confusion in (None, [[1, 2], [3, 4]], [[0] * 8] * 8, "x"):
        rows = band_shares(ages, confusion)
        assert rows[3]["share"] == 0.7 and rows[3]["interval"] is not None
        assert all(r["corrected"] is None for r in rows)
    assert all(r["share"] is None for r in band_shares(np.zeros(121), None))
