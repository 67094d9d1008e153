"""``training.readout`` and ``training.adaptfolds``: refitting the heads on a labelled sample, judged by k-fold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agebatch import contract
from agebatch.training import readout
from agebatch.training.adapt import AdaptOptions
from agebatch.training.adaptfolds import cross_validate

QUICK = AdaptOptions(folds=3, strengths=(0.03, 0.01))
YEARS = np.arange(contract.AGE_BINS, dtype=float)
SD = 6.0
DIMS = 32


def _heads(slope: np.ndarray, offset: float, gender: np.ndarray) -> readout.Readout:
    """Heads whose age distribution is a Gaussian of sd ``SD`` at ``features @ slope + offset``: the
    logits ``k * mu / SD^2 - k^2 / (2 SD^2)`` (the rest of the square is the same for every k)."""
    kernel = slope[:, None] * YEARS[None, :] / SD**2
    bias = YEARS * offset / SD**2 - YEARS**2 / (2 * SD**2)
    return readout.Readout(kernel, bias, np.stack([-gender, gender], axis=1), np.zeros(2))


def _sample(count: int, seed: int, bias: float):
    """Faces whose true age is ``features @ slope + 20``, and shipped heads that put them ``bias`` years
    off. Features are non-negative and many, as a network's pooled features are."""
    rng = np.random.default_rng(seed)
    features = np.abs(rng.normal(0, 1, (count, DIMS)))
    slope = np.zeros(DIMS)
    slope[:3] = [12.0, 8.0, 5.0]
    truth = np.clip(np.round(features @ slope + 20 + rng.normal(0, 2, count)), 1, 95)
    genders = (features[:, 3] - features[:, 4] + rng.normal(0, 0.3, count) > 0).astype(int)
    frame = pd.DataFrame({"age_low": truth, "age_high": truth, "gender": genders})
    gender_weights = np.zeros(DIMS)
    gender_weights[3:5] = [2.0, -2.0]
    return features, frame, _heads(slope, 20 + bias, gender_weights)


def test_the_refit_removes_most_of_a_known_bias_on_faces_it_did_not_see():
    features, frame, shipped = _sample(600, seed=1, bias=-6.0)
    fit, rest = slice(0, 300), slice(300, None)
    labels = frame["age_low"].to_numpy(), frame["age_high"].to_numpy(), frame["gender"].to_numpy()
    fitted = readout.fit(shipped, features[fit], *(x[fit] for x in labels), strength=0.01)
    before = readout.figures(readout.outputs(shipped, features[rest]), *(x[rest] for x in labels))
    after = readout.figures(readout.outputs(fitted, features[rest]), *(x[rest] for x in labels))
    assert before["age_bias"] < -5 and abs(after["age_bias"]) < 1.5
    assert after["age_mae"] < before["age_mae"] - 2


def test_a_strong_pull_keeps_the_heads_near_the_shipped_ones():
    features, frame, shipped = _sample(200, seed=2, bias=-6.0)
    labels = frame["age_low"].to_numpy(), frame["age_high"].to_numpy(), frame["gender"].to_numpy()
    loose = readout.fit(shipped, features, *labels, strength=0.001)
    tight = readout.fit(shipped, features, *labels, strength=100.0)
    assert (
        np.abs(tight.age_kernel - shipped.age_kernel).max() < np.abs(loose.age_kernel - shipped.age_kernel).max() / 10
    )


def test_k_fold_judges_the_refit_and_recalibrates_the_interval():
    features, frame, shipped = _sample(300, seed=3, bias=-6.0)
    validation = cross_validate(shipped, features, frame, QUICK, None)
    assert validation.age_strength in QUICK.strengths
    assert validation.before["age_bias"] < -5 and abs(validation.after["age_bias"]) < 1.5
    assert 0.7 <= validation.after["interval_coverage"] <= 0.92  # shares calibrated without each fold, checked on it
    assert set(validation.interval_shares) >= {"all"}
    assert "age head refitted" in validation.sentence() or "both heads refitted" in validation.sentence()


def test_where_the_shipped_read_out_is_already_right_it_is_kept():
    features, frame, shipped = _sample(300, seed=4, bias=0.0)
    validation = cross_validate(shipped, features, frame, QUICK, None)
    assert validation.age_strength is None
    assert "kept" in validation.sentence()
    final = validation.final_readout(shipped, features, frame)
    np.testing.assert_array_equal(final.age_kernel, shipped.age_kernel)


def test_banded_labels_and_unknown_genders_are_used_as_they_are():
    features, frame, shipped = _sample(200, seed=5, bias=-6.0)
    frame["age_low"] = (frame["age_low"] // 10) * 10
    frame["age_high"] = frame["age_low"] + 9
    frame["gender"] = -1
    fitted = readout.fit(shipped, features, frame["age_low"], frame["age_high"], frame["gender"], strength=0.01)
    np.testing.assert_array_equal(fitted.gender_kernel, shipped.gender_kernel)  # nothing to fit it on
    figures = readout.figures(readout.outputs(fitted, features), frame["age_low"], frame["age_high"], frame["gender"])
    assert figures["age_mae"] is None and figures["gender_accuracy"] is None
    assert (
        figures["age_band_accuracy"]
        > readout.figures(readout.outputs(shipped, features), frame["age_low"], frame["age_high"], frame["gender"])[
            "age_band_accuracy"
        ]
    )


@pytest.mark.parametrize("count", [0, 1])
def test_band_shares_of_few_ages(count):
    shares = readout.band_shares(np.full(count, 25.0))
    assert np.sum(shares) == count
