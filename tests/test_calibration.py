import numpy as np

from agebatch.common import quiet
from agebatch.training import calibration


def test_age_map_undoes_shrinkage_towards_the_mean():
    rng = np.random.default_rng(0)
    true = rng.uniform(1, 90, 3000)
    predicted = 33 + 0.7 * (true - 33) + rng.normal(0, 3, true.size)  # regressed towards the mean
    coef = calibration.fit_age_map(predicted, true)
    before = np.mean(np.abs(predicted - true))
    after = np.mean(np.abs(calibration.apply_age_map(predicted, coef) - true))
    assert after < before * 0.6


def test_gender_shift_finds_a_biased_threshold():
    rng = np.random.default_rng(1)
    gender = rng.integers(0, 2, 4000)
    logit = np.where(gender == 1, 1.0, -1.0) + rng.normal(0, 1, gender.size) - 0.8  # biased towards male
    prob = 1 / (1 + np.exp(-logit))
    shift = calibration.best_gender_shift(prob, gender)
    assert 0.5 < shift < 1.1
    assert calibration.best_gender_shift(np.where(gender == 1, 0.9, 0.1), gender) == 0.0
    noisy = 1 / (1 + np.exp(-(np.where(gender == 1, 1.0, -1.0) + rng.normal(0, 1, gender.size) - 0.02)))
    assert calibration.best_gender_shift(noisy, gender) == 0.0  # a gain below min_gain is noise


def test_calibrated_model_matches_numpy_and_saves(tmp_path):
    quiet.load_tensorflow()
    import keras

    from agebatch.modelfile.load import load_model
    from agebatch.training.network import build_model

    model = build_model(32, None, alpha=0.35, augment=False)
    coef = np.array([1.0, 1.2] + [0.1] * len(calibration.KNOTS))
    calibrated = calibration.calibrated_model(model, coef, gender_shift=0.5)
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    raw, new = model(x), calibrated(x)
    expected_age = calibration.apply_age_map(np.asarray(raw["age_output"]).ravel(), coef)
    np.testing.assert_allclose(np.asarray(new["age_output"]).ravel(), expected_age, rtol=1e-4, atol=1e-3)
    p = np.asarray(raw["gender_output"])[:, 1]
    q = np.asarray(new["gender_output"])[:, 1]
    np.testing.assert_allclose(np.log(q / (1 - q)), np.log(p / (1 - p)) + 0.5, atol=1e-3)
    calibrated.save(tmp_path / "c.keras")
    loaded, size = load_model(tmp_path / "c.keras")
    assert size == 32 and isinstance(loaded, keras.Model)


def test_temperature_softens_an_overconfident_gender_head():
    rng = np.random.default_rng(2)
    gender = rng.integers(0, 2, 5000)
    x = np.where(gender == 1, 1.0, -1.0) + rng.normal(0, 1.0, gender.size)
    honest = 2 * x  # the true log-odds of two unit Gaussians one either side of 0
    overconfident = 1 / (1 + np.exp(-3 * honest))
    temperature = calibration.fit_temperature(overconfident, gender)
    assert 2.4 < temperature < 3.6
    calibrated = 1 / (1 + np.exp(-honest))
    assert 0.8 < calibration.fit_temperature(calibrated, gender) < 1.25
