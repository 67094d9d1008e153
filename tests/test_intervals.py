"""``modelfile.intervals``: calibrated age intervals, per band of the estimated age."""

from __future__ import annotations

import json

import numpy as np

from agebatch import contract
from agebatch.modelfile import intervals
from agebatch.modelfile.card import interval_shares_for

YEARS = np.arange(contract.AGE_BINS)


def _population(count: int, spread: float, seed: int):
    """Distributions centred on each face's estimate with sd 4, true ages further off by ``spread``
    times the estimate's own sd: an overconfident model, more so for older faces."""
    rng = np.random.default_rng(seed)
    estimates = rng.uniform(5, 80, count)
    sd = 2 + 0.08 * estimates
    probs = np.exp(-0.5 * ((YEARS[None, :] - estimates[:, None]) / sd[:, None]) ** 2)
    probs /= probs.sum(axis=1, keepdims=True)
    truth = np.clip(np.round(estimates + rng.normal(0, spread * sd)), 0, 100)
    return probs, probs @ YEARS, truth


def test_calibrated_shares_make_an_overconfident_models_interval_hold_80_percent_on_new_faces():
    probs, ages, truth = _population(6000, spread=1.5, seed=1)
    plain_low, plain_high = intervals.interval(probs, ages, None)
    assert intervals.covered(plain_low, plain_high, truth, truth).mean() < 0.7  # the stated 80% does not hold
    shares = intervals.calibrate(probs, ages, truth, truth)
    assert shares["all"] > 0.8 and set(shares) > {"all", "65+"}
    fresh_probs, fresh_ages, fresh_truth = _population(6000, spread=1.5, seed=2)
    table = intervals.coverage_table(fresh_probs, fresh_ages, fresh_truth, fresh_truth, shares)
    assert 0.78 <= table["overall"]["coverage"] <= 0.85
    assert all(0.7 <= v["coverage"] <= 0.9 for band, v in table.items() if band != "overall" and v["faces"] > 300)


def test_a_calibrated_share_per_face_equals_the_plain_interval_at_that_share():
    probs, ages, _ = _population(50, spread=1.0, seed=3)
    low, high = contract.age_interval(probs, np.full(len(probs), 0.9))
    plain_low, plain_high = contract.age_interval(probs, 0.9)
    np.testing.assert_allclose(low, plain_low)
    np.testing.assert_allclose(high, plain_high)
    few = {"all": 0.9}  # bands without enough calibration faces use the overall share
    np.testing.assert_allclose(intervals.interval(probs, ages, few)[0], plain_low)


def test_the_vectorised_band_of_an_age_is_the_contracts():
    ages = np.array([0, 12, 12.5, 12.99, 13, 17.5, 18, 64.9, 65, 130, -1.0])
    labels = np.array(contract.AGE_BAND_LABELS)[intervals.band_index(ages)]
    assert labels.tolist() == [contract.age_band(a) for a in ages]


def test_bands_overlap_and_exact_years_are_covered_as_the_bins_are():
    low, high = np.array([18.0, 31.0, 29.6]), np.array([24.0, 38.0, 35.0])
    hit = intervals.covered(low, high, np.array([20, 20, 30]), np.array([29, 29, 30]))
    assert hit.tolist() == [True, False, True]  # 29.6 meets year 30 (29.5 .. 30.5)


def test_the_card_gives_shares_only_when_they_are_shares(tmp_path):
    model = tmp_path / "m.keras"
    card = tmp_path / "m.card.json"
    assert interval_shares_for(model) is None
    card.write_text(json.dumps({"calibration": {"interval_shares": {"all": 0.8, "65+": 0.9}}}))
    assert interval_shares_for(model) == {"all": 0.8, "65+": 0.9}
    for bad in ({"all": 1.5}, {"all": "x"}, {"all": True}, [], "0.8"):
        card.write_text(json.dumps({"calibration": {"interval_shares": bad}}))
        assert interval_shares_for(model) is None
    card.write_text("{not json")
    assert interval_shares_for(model) is None
