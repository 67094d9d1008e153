"""Post-training calibration on the validation split, folded into the network as ordinary layers.

The age head is trained with MSE, which pulls estimates towards the mean; users read the mean
*absolute* error. A monotone-ish piecewise-linear map fitted to minimise absolute error on the
validation faces corrects that shrinkage. It is built from ``Dense`` and ``Concatenate`` layers, so the
calibrated model is still a plain Keras model that loads in safe mode, and costs nothing at inference.
The gender decision threshold is tuned the same way and folded into the softmax layer's bias.
"""

from __future__ import annotations

import numpy as np

KNOTS = (4.0, 10.0, 16.0, 22.0, 28.0, 35.0, 45.0, 55.0, 65.0, 75.0)
RAW_AGE = "age_raw"  # the trained age head, kept in front of the calibration map


def _features(age: np.ndarray, knots=KNOTS) -> np.ndarray:
    age = np.asarray(age, float).reshape(-1, 1)
    hinges = np.maximum(age - np.asarray(knots)[None, :], 0.0)
    return np.hstack([np.ones_like(age), age, hinges])


def fit_age_map(predicted: np.ndarray, true: np.ndarray, knots=KNOTS, iterations: int = 60) -> np.ndarray:
    """Coefficients [bias, slope, hinge weights...] minimising mean absolute error (IRLS), lightly ridged."""
    x = _features(predicted, knots)
    y = np.asarray(true, float)
    ridge = 1e-3 * np.eye(x.shape[1])
    ridge[0, 0] = ridge[1, 1] = 0.0
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    for _ in range(iterations):
        weights = 1.0 / np.maximum(np.abs(y - x @ coef), 0.5)
        xw = x * weights[:, None]
        coef = np.linalg.solve(x.T @ xw + ridge, xw.T @ y)
    return coef


def apply_age_map(predicted: np.ndarray, coef: np.ndarray, knots=KNOTS) -> np.ndarray:
    return _features(predicted, knots) @ coef


def best_gender_shift(female_prob: np.ndarray, gender: np.ndarray, min_gain: float = 0.005) -> float:
    """The shift of the female log-odds that maximises accuracy, or 0 unless it gains ``min_gain``.

    A validation split of a couple of thousand faces measures accuracy to about +-0.7 points, so a
    smaller gain is noise that would not carry over to new faces.
    """
    p = np.clip(np.asarray(female_prob, float), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))
    candidates = np.linspace(-1.5, 1.5, 61)
    accuracy = [np.mean((logit + s >= 0).astype(int) == gender) for s in candidates]
    best = int(np.argmax(accuracy))
    baseline = np.mean((logit >= 0).astype(int) == gender)
    return float(candidates[best]) if accuracy[best] >= baseline + min_gain else 0.0


def calibrated_model(model, age_coef: np.ndarray, gender_shift: float, knots=KNOTS):
    """A copy of ``model`` whose age output is mapped by ``age_coef`` and gender bias shifted."""
    import keras
    from keras import layers

    from agebatch.contract import AGE_OUTPUT, GENDER_OUTPUT

    features = model.get_layer("dropout").output
    old_age = model.get_layer(AGE_OUTPUT)
    old_gender = model.get_layer(GENDER_OUTPUT)
    raw_age = layers.Dense(1, name=RAW_AGE)(features)
    hinges = layers.Dense(len(knots), activation="relu", name="age_hinges")(raw_age)
    age = layers.Dense(1, name=AGE_OUTPUT)(layers.Concatenate(name="age_terms")([raw_age, hinges]))
    gender = layers.Dense(2, activation="softmax", name=GENDER_OUTPUT)(features)
    result = keras.Model(model.inputs, {AGE_OUTPUT: age, GENDER_OUTPUT: gender}, name=model.name)
    result.get_layer(RAW_AGE).set_weights(old_age.get_weights())
    result.get_layer("age_hinges").set_weights([np.ones((1, len(knots)), "float32"), -np.asarray(knots, "float32")])
    result.get_layer(AGE_OUTPUT).set_weights(
        [
            np.asarray(age_coef[1:], "float32").reshape(-1, 1),
            np.asarray(age_coef[:1], "float32"),
        ]
    )
    kernel, bias = old_gender.get_weights()
    bias = bias.copy()
    bias[1] += gender_shift  # softmax of (z_m, z_f + s): female log-odds shifted by s
    result.get_layer(GENDER_OUTPUT).set_weights([kernel, bias])
    return result


def fit_temperature(female_prob: np.ndarray, gender: np.ndarray) -> float:
    """The temperature ``T`` minimising the log loss of ``sigmoid(logit / T)`` (1.0 when already right).

    An overconfident network (usual after fine-tuning) gets ``T > 1``: its probabilities move
    towards 0.5 without changing any decision.
    """
    p = np.clip(np.asarray(female_prob, float), 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p))
    y = np.asarray(gender, float)
    candidates = np.exp(np.linspace(np.log(0.5), np.log(4.0), 81))

    def log_loss(t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-logit / t)), 1e-9, 1 - 1e-9)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return float(min(candidates, key=log_loss))


def calibrate_gender(model, female_prob: np.ndarray, gender, min_gain: float = 0.005) -> dict:
    """Fit a temperature and a threshold shift on validation faces and fold them into ``model``.

    Changes ``model`` in place; returns what was fitted, for the card.
    """
    gender = np.asarray(gender, int)
    temperature = fit_temperature(female_prob, gender)
    p = np.clip(np.asarray(female_prob, float), 1e-6, 1 - 1e-6)
    scaled = 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))
    shift = best_gender_shift(scaled, gender, min_gain)
    fold_gender_calibration(model, temperature, shift)
    return {"gender_temperature": temperature, "gender_logit_shift": shift}


def fold_gender_calibration(model, temperature: float, shift: float) -> None:
    """Make ``model``'s gender head compute softmax(z / T + (0, s)) instead of softmax(z).

    Its kernel and bias are divided by ``T`` and ``s`` is added to the female bias: the calibrated
    model is the same kind of model, no extra layer, nothing more to compute.
    """
    from agebatch.contract import GENDER_OUTPUT

    layer = model.get_layer(GENDER_OUTPUT)
    kernel, bias = layer.get_weights()
    bias = bias / temperature
    bias[1] += shift
    layer.set_weights([kernel / temperature, bias])
