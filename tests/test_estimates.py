"""Intervals and the misclassification correction, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from agebatch.reporting.estimates import error_rates, rogan_gladen, share_with_interval, wilson


def test_wilson_matches_a_hand_computed_interval():
    low, high = wilson(42, 100)
    assert low == pytest.approx(0.3280, abs=5e-4) and high == pytest.approx(0.5179, abs=5e-4)  # by hand
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0) and wilson(0, 0) is None


def test_rogan_gladen_recovers_a_known_share():
    true, se, sp = 0.3, 0.9, 0.95
    observed = true * se + (1 - true) * (1 - sp)  # what a model with these error rates reports: 0.305
    assert rogan_gladen(observed, se, sp) == pytest.approx(true)
    assert rogan_gladen(0.5, 0.5, 0.5) is None  # a coin: nothing to correct with
    assert rogan_gladen(0.01, se, sp) == 0.0  # clipped


def test_the_correction_is_right_on_average_in_a_simulation():
    rng = np.random.default_rng(0)
    true, se, sp, n = 0.62, 0.88, 0.93, 4000
    estimates = []
    for _ in range(200):
        women = rng.random(n) < true
        called_female = np.where(women, rng.random(n) < se, rng.random(n) >= sp)
        estimates.append(share_with_interval(int(called_female.sum()), n, se, sp))
    assert np.mean([e["corrected"] for e in estimates]) == pytest.approx(true, abs=0.005)
    covered = np.mean([lo <= true <= hi for lo, hi in (e["corrected_interval"] for e in estimates)])
    assert covered > 0.9  # a 95 % interval covers the truth about 95 % of the time


def test_error_rates_from_a_confusion_table():
    assert error_rates([[90, 10], [20, 80]]) == (0.8, 0.9)
    assert error_rates([[0, 0], [1, 1]]) is None and error_rates("x") is None
