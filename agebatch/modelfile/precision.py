"""Half-precision storage for model files, full-precision arithmetic when they run.

The convolution kernels hold almost all of a MobileNetV2's weights. Stored as float16 they take half
the bytes, which is what lets two networks ship in one small model file. Running them
in float16 too would be slower on a CPU and drift further, so ``full_precision`` turns a loaded model
back into float32 layers (the rounded kernels kept as they are). BatchNormalization statistics,
biases and heads stay float32 throughout: they are tiny, and rounding them costs accuracy (very small
variances and shifts are where float16 is coarsest). ``docs/training.md`` has the measurements.
"""

from __future__ import annotations

import keras

HALF = "float16"
FULL = "float32"
STORED_HALF = ("Conv2D", "DepthwiseConv2D")  # layer classes whose kernels are stored in float16


def _set_policies(config, dtype: str, classes: tuple[str, ...] | None) -> None:
    """Rewrite the dtype policy of the layers of ``classes`` (all layers when None), nested models included."""
    if isinstance(config, list):
        for item in config:
            _set_policies(item, dtype, classes)
        return
    if not isinstance(config, dict):
        return
    layer_config = config.get("config")
    if isinstance(layer_config, dict) and (classes is None or config.get("class_name") in classes):
        policy = layer_config.get("dtype")
        if isinstance(policy, dict) and policy.get("class_name") == "DTypePolicy":
            policy["config"]["name"] = dtype
    for value in config.values():
        _set_policies(value, dtype, classes)


def _rebuilt(model: keras.Model, dtype: str, classes: tuple[str, ...] | None) -> keras.Model:
    """The same network with the chosen layers' variables (and arithmetic) in ``dtype``."""
    config = model.get_config()
    _set_policies(config, dtype, classes)
    clone = model.__class__.from_config(config)
    clone.set_weights(
        [weight.astype(target.dtype) for weight, target in zip(model.get_weights(), clone.weights, strict=True)]
    )
    return clone


def half_precision_storage(model: keras.Model) -> keras.Model:
    """A copy whose convolution kernels are float16: for saving, not for running (see ``full_precision``)."""
    return _rebuilt(model, HALF, STORED_HALF)


def stores_half_precision(model: keras.Model) -> bool:
    return any(weight.dtype == HALF for weight in model.weights)


def full_precision(model: keras.Model) -> keras.Model:
    """``model`` with every layer computing in float32; unchanged when it already does."""
    return _rebuilt(model, FULL, None) if stores_half_precision(model) else model
