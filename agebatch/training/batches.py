"""The input pipeline: ``tf.data`` batches of faces, targets and loss weights from in-memory arrays.

``make_dataset`` turns a part of the split (uint8 faces and their labelled rows) into the batches
``fit`` and ``evaluate`` take; with ``sampling="oversample"`` the training batches are drawn by
``drawn_batches`` so rare strata get their share. TensorFlow is imported only when a pipeline is made.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from agebatch.training import sources
from agebatch.training.config import TrainConfig
from agebatch.training.targets import training_targets, training_weights


def make_dataset(images, frame, config: TrainConfig, training: bool, teacher: pd.DataFrame | None = None):
    """A ``tf.data`` pipeline over in-memory uint8 ``images``: batches of (faces in [0, 1], targets[, weights]).

    The arrays stay in numpy and batches are gathered by index, so a training part larger than
    TensorFlow's 2 GB constant limit (UTKFace + FairFace) streams like a small one.
    """
    import tensorflow as tf

    targets = training_targets(frame, config, teacher if training else None, training)
    weights = training_weights(frame, config, targets) if training else {}
    arrays = [np.asarray(images), *targets.values(), *weights.values()]

    def take(index):
        return [a[index] for a in arrays]

    def batch_of(index):
        parts = tf.numpy_function(take, [index], [tf.as_dtype(a.dtype) for a in arrays])
        for part, array in zip(parts, arrays):
            part.set_shape((None, *array.shape[1:]))
        faces = tf.cast(parts[0], tf.float32) / 255.0
        y = dict(zip(targets, parts[1 : 1 + len(targets)]))
        if not training:
            return faces, y
        return faces, y, dict(zip(weights, parts[1 + len(targets) :]))

    if training and config.sampling == "oversample":
        index = drawn_batches(sources.balance_weights(frame, config.age_weight_power), config)
    else:
        index = tf.data.Dataset.range(len(frame))
        if training:
            index = index.shuffle(len(frame), seed=config.seed, reshuffle_each_iteration=True)
        index = index.batch(config.batch_size)
    return index.map(batch_of, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def drawn_batches(weights: np.ndarray, config: TrainConfig):
    """Batches of face indices drawn with replacement in proportion to ``weights``, as many faces an
    epoch as there are weights, and a fresh draw each epoch (seeded by ``config.seed``)."""
    import tensorflow as tf

    weights = np.asarray(weights, "float64")
    if not len(weights) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise ValueError("oversampling needs training faces whose weights are finite with a positive total")
    cumulative = np.cumsum(weights)
    edges = tf.constant(cumulative / cumulative[-1], tf.float64)
    resolution = 2**32  # the generator gives int64s in [0, 2**32): uniform draws on [0, 1)

    def indices(draws):
        uniform = tf.cast(tf.math.floormod(draws, resolution), tf.float64) / resolution
        return tf.searchsorted(edges, uniform, side="right")  # below len: uniform < 1.0 == edges[-1]

    draws = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True).take(len(weights))
    return draws.batch(config.batch_size).map(indices)
