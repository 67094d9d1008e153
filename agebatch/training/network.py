"""The two-head MobileNetV2 network, built the way ``keras.applications`` builds its models.

Input: 128x128 RGB scaled to [0, 1]. The [0, 1] -> [-1, 1] mapping that MobileNetV2 expects happens
inside the model (a ``Rescaling`` layer, not a ``Lambda``), so the saved ``.keras`` file loads in safe
mode and callers never need to know about the backbone's preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
from keras import layers

from agebatch.contract import AGE_BINS, AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT
from agebatch.training.config import AGE_HEADS

DEFAULT_IMAGE_SIZE = 128
BACKBONE_NAME = "mobilenetv2"
MEAN_AGE = 33.0  # UTKFace mean; starting the age bias here saves the first epoch from learning it


def build_backbone(image_size: int, weights: str | os.PathLike | None, alpha: float = 1.0) -> keras.Model:
    """MobileNetV2 without its classifier.

    ``weights`` is ``"imagenet"`` (downloads; needs network), ``None`` (random) or a path to a
    ``.weights.h5`` file such as the offline copy described in ``shared/weights/README.md``.
    """
    path_weights = weights not in (None, "imagenet")
    base = keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3),
        include_top=False,
        weights=None if path_weights else weights,
        alpha=alpha,
    )
    if path_weights:
        path = Path(weights)  # type: ignore[arg-type]
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights not found: {path}")
        base.load_weights(path)
    base.name = BACKBONE_NAME
    return base


def build_model(
    image_size: int = DEFAULT_IMAGE_SIZE,
    backbone_weights: str | os.PathLike | None = None,
    dropout: float = 0.3,
    alpha: float = 1.0,
    augment: bool = True,
    color_jitter: float = 0.0,
    age_head: str = "regression",
) -> keras.Model:
    """The full network: [augmentation] -> rescale -> MobileNetV2 -> pooling -> dropout -> two heads.

    Augmentation layers are part of the model so they run only in training (Keras disables them at
    inference) and need no separate pipeline code; they are cheap next to the backbone.
    ``color_jitter`` > 0 adds random brightness and contrast of that strength (photos in the wild are
    lit far more variously than UTKFace's crops).
    ``age_head`` is ``"regression"`` (one linear output) or ``"distribution"`` (a softmax over years
    whose expected value is ``age_output``; see ``agedist``).
    The backbone is always called with ``training=False`` so its BatchNormalization layers keep their
    ImageNet statistics while the weights are fine-tuned (see the Keras transfer-learning guide).
    """
    inputs = keras.Input((image_size, image_size, 3), name="face")
    x = inputs
    if augment:
        x = layers.RandomFlip("horizontal", name="aug_flip")(x)
        x = layers.RandomRotation(0.05, fill_mode="reflect", name="aug_rotate")(x)
        x = layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", name="aug_zoom")(x)
        x = layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", name="aug_shift")(x)
        if color_jitter > 0:
            x = layers.RandomBrightness(color_jitter, value_range=(0.0, 1.0), name="aug_brightness")(x)
            x = layers.RandomContrast(color_jitter, value_range=(0.0, 1.0), name="aug_contrast")(x)
    x = layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)
    base = build_backbone(image_size, backbone_weights, alpha)
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    gender = layers.Dense(2, activation="softmax", name=GENDER_OUTPUT)(x)
    if age_head == "distribution":
        distribution, age = distribution_head(x)
        outputs = {AGE_OUTPUT: age, GENDER_OUTPUT: gender, AGE_DISTRIBUTION: distribution}
    elif age_head == "regression":
        age = layers.Dense(1, name=AGE_OUTPUT, bias_initializer=keras.initializers.Constant(MEAN_AGE))(x)
        outputs = {AGE_OUTPUT: age, GENDER_OUTPUT: gender}
    else:
        raise ValueError(f"unknown age head {age_head!r}; choose one of {', '.join(AGE_HEADS)}")
    return keras.Model(inputs, outputs, name="agebatch")


def distribution_head(features):
    """Probabilities over years 0..100+ and their expected value, from pooled ``features``.

    The expected value is a ``Dense`` layer with the years as its fixed, frozen kernel (not a
    ``Lambda``), so the saved model loads in safe mode and scans read ``age_output`` as before.
    """
    distribution = layers.Dense(AGE_BINS, activation="softmax", name=AGE_DISTRIBUTION)(features)
    years = keras.initializers.Constant(np.arange(AGE_BINS, dtype="float32").reshape(-1, 1))
    expected = layers.Dense(1, use_bias=False, kernel_initializer=years, trainable=False, name=AGE_OUTPUT)
    return distribution, expected(distribution)


def pooled_features(
    model: keras.Model, faces, index: np.ndarray | None = None, batch_size: int = 256, mirror: bool = False
) -> np.ndarray:
    """The pooled backbone features the heads see, for uint8 ``faces`` (or the rows ``index`` of them).

    Chunked, so a memory-mapped array of all faces is never read into memory at once. ``mirror``
    flips each face left to right first: a second labelled view of every face for fitting a head.
    """
    chunks = list(pooled_feature_batches(model, faces, index, batch_size, mirror))
    return np.concatenate(chunks) if chunks else np.empty((0, model.get_layer("pool").output.shape[-1]), "float32")


def pooled_feature_batches(
    model: keras.Model, faces, index: np.ndarray | None = None, batch_size: int = 256, mirror: bool = False
) -> Iterator[np.ndarray]:
    """``pooled_features`` one batch at a time, so a long pass can stop between batches."""
    extractor = keras.Model(model.inputs, model.get_layer("pool").output)
    rows = np.arange(len(faces)) if index is None else np.asarray(index)
    for start in range(0, len(rows), batch_size):
        chunk = np.asarray(faces[rows[start : start + batch_size]], dtype="float32") / 255.0
        yield extractor.predict_on_batch(chunk[:, :, ::-1] if mirror else chunk)


def backbone_of(model: keras.Model) -> keras.Model:
    return model.get_layer(BACKBONE_NAME)


def set_trainable_from(model: keras.Model, fraction: float) -> int:
    """Unfreeze the top ``fraction`` of the backbone's layers (0 freezes it); returns how many.

    BatchNormalization layers stay frozen: with batches of 32-64 their statistics would drift.
    """
    base = backbone_of(model)
    base.trainable = fraction > 0
    start = int(len(base.layers) * (1 - fraction))
    count = 0
    for index, layer in enumerate(base.layers):
        unfrozen = index >= start and not isinstance(layer, layers.BatchNormalization)
        layer.trainable = unfrozen
        count += unfrozen
    return count
