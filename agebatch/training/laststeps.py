"""The optional last steps after the training phases: weight averaging and the age head's refit.

Each is tried on the trained network and kept only if it does better on the validation faces; each
returns a record (figures before and after, whether it was kept) that goes into the model card, and
each is skipped, or dropped part-way, once the run is interrupted. ``last_steps`` runs the ones the
configuration asks for and gives the network to save.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch import contract
from agebatch.training.config import TrainConfig
from agebatch.training.fit import (
    StopOnInterrupt,
    callbacks,
    checkpoint_path,
    compile_model,
    stop_when_interrupted,
    verbosity,
)
from agebatch.training.startweights import inference_copy
from agebatch.training.targets import label_ages

log = logging.getLogger(__name__)


def last_steps(config, frame, images, model, data, stopper, history: list) -> tuple:
    """The optional last steps (weight averaging, age-head refit), each skipped once interrupted.

    Returns the inference copy to save and the steps' records for the card.
    """
    skipped = {"kept": False, "skipped": "interrupted"}  # the card says what did not run, and why
    steps = {}
    if config.average_epochs > 0:
        steps["weight_averaging"] = (
            skipped
            if stopper.interrupted
            else average_weights(model, data, config, stopper, checkpoint_path(config), history, verbosity(config))
        )
    final = inference_copy(model, config)
    if config.refit_age_head:
        steps["age_head_refit"] = (
            skipped if stopper.interrupted else refit_age_head(final, images, frame, config, stopper)
        )
    return final, steps


def average_weights(model, data: dict, config: TrainConfig, stopper, checkpoint: Path, history: list, verbose: int):
    """Phase 3: train ``config.average_epochs`` more epochs and average the weights each ends with.

    BatchNormalization runs in inference mode throughout, so its statistics never change and the
    averaged network needs no re-estimation pass. The average replaces the current weights only if
    its validation loss is lower; the returned record (both losses, the choice) goes into the card.
    """
    import keras

    from agebatch.training.network import set_trainable_from

    set_trainable_from(model, config.fine_tune_fraction)
    compile_model(model, config.average_learning_rate, config)
    before = model.get_weights()
    loss_before = float(model.evaluate(data["val"], verbose=0, return_dict=True)["loss"])
    total: list[np.ndarray] = []
    count = 0

    class Accumulate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            nonlocal total, count
            weights = self.model.get_weights()
            total = [w.astype("float64") for w in weights] if not total else [t + w for t, w in zip(total, weights)]
            count += 1

    log.info("phase average: %d epochs at learning rate %g", config.average_epochs, config.average_learning_rate)
    # Only the bookkeeping callbacks (Record, StopWhenInterrupted): no checkpoint, early stop or rate change.
    bookkeeping = callbacks(config, stopper, checkpoint, "average", history, None)[:2]
    model.fit(
        data["train"],
        validation_data=data["val"],
        epochs=config.average_epochs,
        verbose=verbose,
        shuffle=False,
        callbacks=[*bookkeeping, Accumulate()],
    )
    if stopper.interrupted:  # a part-epoch average is not what was asked for
        model.set_weights(before)
        log.warning("weight averaging interrupted: the trained weights are kept")
        return {"epochs_averaged": 0, "val_loss_before": loss_before, "kept": False, "skipped": "interrupted"}
    if count == 0:
        model.set_weights(before)
        return {"epochs_averaged": 0, "val_loss_before": loss_before, "kept": False}
    model.set_weights([(t / count).astype(w.dtype) for t, w in zip(total, before)])
    loss_after = float(model.evaluate(data["val"], verbose=0, return_dict=True)["loss"])
    kept = loss_after < loss_before
    if not kept:
        model.set_weights(before)
    log.info(
        "weight averaging over %d epochs: val loss %.4f -> %.4f (%s)",
        count,
        loss_before,
        loss_after,
        "kept" if kept else "discarded",
    )
    return {"epochs_averaged": count, "val_loss_before": loss_before, "val_loss_after": loss_after, "kept": kept}


class Interrupted(Exception):
    """Ctrl-C during an optional last step: the step is dropped and the run saves what it has."""


def refit_age_head(model, images, frame: pd.DataFrame, config: TrainConfig, stopper=None) -> dict:
    """Refit the age head alone on the trained network's frozen features, without sample weights.

    Fine-tuning needs augmentation and the balance weights to shape the backbone; the final map from
    features to age is better fitted without them (benchmarks/weights_ablation.py: unweighted heads on
    frozen features score a lower overall MAE, the weighted ones a flatter MAE across bands). Features
    are computed once (for a distribution head, of each training face and its mirror image), so this
    costs one or two inference passes over the training part and one over the validation part. The
    new head replaces the old one only if it does better on the validation faces; the record goes
    into the card. Without validation faces there is nothing to judge it by, so nothing is refit.
    Ctrl-C (``stopper``, see ``StopOnInterrupt``) stops it within a batch, the old head kept.
    """

    stopper = stopper or StopOnInterrupt()  # not entered: never interrupted

    def rows(part: str) -> np.ndarray:
        return frame.index[frame["split"] == part].to_numpy()

    def features(index: np.ndarray, mirror: bool = False) -> np.ndarray:
        return _interruptible_features(model, images, index, stopper, mirror)

    train_rows, val_rows = rows("train"), rows("val")
    if len(val_rows) == 0 or len(train_rows) == 0:
        log.warning("age head refit skipped: it needs training and validation faces")
        return {"kept": False, "skipped": "no training or validation faces"}
    try:
        x_train, x_val = features(train_rows), features(val_rows)
        if config.age_head != "distribution":
            train, val = (x_train, frame.loc[train_rows]), (x_val, frame.loc[val_rows])
            return _refit_regression_head(model, train, val, config, stopper)
        x_train = np.concatenate([x_train, features(train_rows, mirror=True)])
        train_rows = np.concatenate([train_rows, train_rows])
        train, val = (x_train, frame.loc[train_rows]), (x_val, frame.loc[val_rows])
        return _refit_distribution_head(model, train, val, config, stopper)
    except Interrupted:
        log.warning("age head refit interrupted: the trained head is kept")
        return {"kept": False, "skipped": "interrupted"}


def _interruptible_features(model, images, index: np.ndarray, stopper, mirror: bool) -> np.ndarray:
    """``network.pooled_features``, checking for Ctrl-C between batches."""
    from agebatch.training.network import pooled_feature_batches

    chunks = []
    for chunk in pooled_feature_batches(model, images, index, mirror=mirror):
        if stopper.interrupted:
            raise Interrupted
        chunks.append(chunk)
    return np.concatenate(chunks)


def _refit_regression_head(model, train: tuple, val: tuple, config: TrainConfig, stopper) -> dict:
    """The regression head's refit: a linear map to years, kept if the validation MAE is lower."""
    import keras
    from keras import layers

    from agebatch.contract import AGE_OUTPUT

    (x_train, f_train), (x_val, f_val) = train, val
    y_train, y_val = label_ages(f_train).astype("float32"), label_ages(f_val).astype("float32")  # bands: middles
    old = model.get_layer(AGE_OUTPUT)
    mae_before = float(np.mean(np.abs(x_val @ old.kernel.numpy()[:, 0] + old.bias.numpy()[0] - y_val)))
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((x_train.shape[1],))
    head = layers.Dense(1)
    refit = keras.Model(inputs, head(layers.Dropout(config.dropout)(inputs)))
    head.set_weights(old.get_weights())  # start from the trained head
    refit.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", metrics=["mae"])
    _fit_head(refit, (x_train, y_train), (x_val, y_val), "val_mae", (100, 256, 5), stopper)
    kernel, bias = head.get_weights()
    mae_after = float(np.mean(np.abs(x_val @ kernel[:, 0] + bias[0] - y_val)))
    kept = mae_after < mae_before
    if kept:
        old.set_weights([kernel, bias])
    log.info("age head refit: val MAE %.3f -> %.3f (%s)", mae_before, mae_after, "kept" if kept else "discarded")
    return {"val_mae_before": mae_before, "val_mae_after": mae_after, "kept": kept}


def _refit_distribution_head(model, train: tuple, val: tuple, config: TrainConfig, stopper) -> dict:
    """The distribution head's refit: the softmax over years, trained with the age loss on exact ages
    and bands alike, kept if the validation faces' age loss is lower (their MAE is recorded too).

    No dropout, as in the fit measured in docs/model-history.md: the mirror images double the faces
    and early stopping on the validation loss ends the fit before it overfits. Without the balance
    weights the head favours the common ages: lower overall error, more past 55.
    """
    import keras
    from keras import layers

    from agebatch.contract import AGE_DISTRIBUTION
    from agebatch.training import agedist

    (x_train, f_train), (x_val, f_val) = train, val
    y_train = agedist.targets(f_train["age_low"], f_train["age_high"], config.age_sigma)
    y_val = agedist.targets(f_val["age_low"], f_val["age_high"], config.age_sigma)
    old = model.get_layer(AGE_DISTRIBUTION)
    keras.utils.set_random_seed(config.seed)
    inputs = keras.Input((x_train.shape[1],))
    head = layers.Dense(contract.AGE_BINS, activation="softmax")
    refit = keras.Model(inputs, head(inputs))
    head.set_weights(old.get_weights())  # start from the trained head
    refit.compile(optimizer=keras.optimizers.Adam(1e-3), loss=agedist.loss)
    before = _distribution_figures(refit, x_val, y_val, f_val)
    _fit_head(refit, (x_train, y_train), (x_val, y_val), "val_loss", (50, 1024, 3), stopper)
    after = _distribution_figures(refit, x_val, y_val, f_val)
    kept = after["loss"] < before["loss"]
    if kept:
        old.set_weights(head.get_weights())
    log.info(
        "age head refit: val age loss %.4f -> %.4f, MAE %s -> %s (%s)",
        before["loss"], after["loss"], before["mae"], after["mae"], "kept" if kept else "discarded",
    )  # fmt: skip
    return {
        "val_loss_before": before["loss"],
        "val_loss_after": after["loss"],
        "val_mae_before": before["mae"],
        "val_mae_after": after["mae"],
        "kept": kept,
    }


def _fit_head(refit, train: tuple, val: tuple, monitor: str, budget: tuple[int, int, int], stopper) -> None:
    """Fit a head model on frozen features (``budget``: epochs, batch size, patience), stopping early on
    ``monitor`` with its best weights restored; raises ``Interrupted`` on Ctrl-C (``stopper``)."""
    import keras

    epochs, batch_size, patience = budget
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    refit.fit(
        *train,
        validation_data=val,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[stop, stop_when_interrupted(stopper)],
    )
    if stopper.interrupted:
        raise Interrupted


def _distribution_figures(head_model, x: np.ndarray, targets: np.ndarray, part: pd.DataFrame) -> dict:
    """A head model's age loss on faces (features ``x``) and its MAE on those with an exact age (None
    without any: the card is strict JSON)."""
    from agebatch.training import agedist

    probs = head_model.predict(x, batch_size=1024, verbose=0)
    loss = float(np.mean(np.asarray(agedist.loss(targets, probs))))
    exact = part["age"].notna().to_numpy()
    error = agedist.expected_age(probs[exact]) - part["age"].to_numpy(float)[exact]
    return {"loss": loss, "mae": float(np.mean(np.abs(error))) if exact.any() else None}
