"""The age distribution head: targets, the band loss on a hand-computed case, estimate and interval."""

from __future__ import annotations

import numpy as np
import pytest

from agebatch.training import agedist


def test_targets_are_a_soft_label_for_an_exact_age_and_a_mask_for_a_band():
    targets = agedist.targets(np.array([30, 20]), np.array([30, 29]), sigma=2.0)
    exact, band = targets
    assert exact[0] == 0 and band[0] == 1  # the flag
    assert exact[1:].sum() == pytest.approx(1.0) and np.argmax(exact[1:]) == 30
    assert exact[1 + 28] == pytest.approx(exact[1 + 32])  # symmetric around the age
    assert np.array_equal(np.nonzero(band[1:])[0], np.arange(20, 30))


def test_the_loss_matches_a_hand_computed_example():
    from agebatch.common import quiet

    quiet.load_tensorflow()
    probs = np.full((2, agedist.AGE_BINS), 0.5 / 99, "float32")
    probs[:, 25] = 0.3
    probs[:, 26] = 0.2  # 0.5 of the mass on 25-26, the rest spread evenly
    targets = agedist.targets(np.array([25, 20]), np.array([25, 29]), sigma=2.0)
    loss = np.asarray(agedist.loss(targets, probs))
    # a band 20-29 holds 0.3 + 0.2 + 8 * 0.5/99 of the mass
    assert loss[1] == pytest.approx(-np.log(0.5 + 8 * 0.5 / 99), rel=1e-5)
    assert loss[1] == pytest.approx(agedist.band_loss_numpy(probs[1], 20, 29), rel=1e-5)
    soft = targets[0, 1:]
    assert loss[0] == pytest.approx(-(soft * np.log(probs[0])).sum(), rel=1e-5)


def test_the_estimate_is_the_mean_and_the_interval_holds_it():
    rng = np.random.default_rng(0)
    probs = rng.random((50, agedist.AGE_BINS)) ** 8
    probs /= probs.sum(axis=1, keepdims=True)
    estimate = agedist.expected_age(probs)
    low, high = agedist.interval(probs, 0.8)
    assert np.all(low <= high)
    peaked = np.zeros((1, agedist.AGE_BINS))
    peaked[0, 40] = 1.0
    assert agedist.expected_age(peaked)[0] == 40
    lo, hi = agedist.interval(peaked, 0.8)
    assert lo[0] == pytest.approx(39.6) and hi[0] == pytest.approx(40.4)  # inside year 40's bin
    spread = np.zeros((1, agedist.AGE_BINS))
    spread[0, 30:50] = 1 / 20
    lo, hi = agedist.interval(spread, 0.8)
    assert lo[0] == pytest.approx(31.5) and hi[0] == pytest.approx(47.5)
    assert np.mean((low <= estimate) & (estimate <= high)) > 0.9


def test_the_numpy_loss_is_the_training_loss_per_face():
    import numpy as np

    from agebatch.training import agedist

    probs = np.full((2, agedist.AGE_BINS), 1 / agedist.AGE_BINS)
    targets = agedist.targets(np.array([30, 20]), np.array([30, 29]))  # an exact age, a band
    per_face = agedist.loss_numpy(probs, targets)
    assert per_face[1] == agedist.band_loss_numpy(probs[1], 20, 29)
    assert (
        abs(per_face[0] - np.log(agedist.AGE_BINS)) < 1e-6
    )  # float32 targets; cross-entropy of any soft label with a flat guess
