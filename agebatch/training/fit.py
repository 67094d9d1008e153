"""The training phases: compiling, learning-rate schedules, callbacks, and stopping cleanly on Ctrl-C.

``fit_phases`` trains the heads on a frozen backbone (a new network only), then fine-tunes the top
of the backbone. Every phase records each epoch into ``history`` (and ``history.json``), keeps its best
epoch in the run's checkpoint (``checkpoint_path``), and stops at the end of a batch on Ctrl-C
(``StopOnInterrupt``) or past the run's time limit.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agebatch.common import atomic
from agebatch.training.config import TrainConfig

if TYPE_CHECKING:  # keras loads only when training starts
    import keras

log = logging.getLogger(__name__)


class StopOnInterrupt:
    """Turn a first Ctrl-C into a flag: training stops at the end of the current batch, the optional
    last steps are skipped, and the run saves what it has. A second Ctrl-C raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.interrupted:  # second Ctrl-C: give up at once
                raise KeyboardInterrupt
            self.interrupted = True
            print("\ninterrupted: finishing with the best weights so far (Ctrl-C again to abort)", file=sys.stderr)

        if hasattr(signal, "SIGINT"):
            self._previous = signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def checkpoint_path(config: TrainConfig) -> Path:
    """Where a run keeps its best weights so far, until its model is saved."""
    return Path(config.out_dir) / "checkpoint.keras"


def verbosity(config: TrainConfig) -> int:
    """Keras' ``verbose`` for ``fit``: the configured one, else a progress bar on a terminal and a line
    per epoch otherwise."""
    if config.verbose is not None:
        return config.verbose
    return 1 if sys.stdout.isatty() else 2


def _phases(config: TrainConfig) -> list[tuple[str, float, float, int]]:
    """(name, trainable fraction of the backbone, learning rate, epochs) of each training phase; a
    continued run skips the new-heads phase."""
    planned = [
        ("heads", 0.0, config.head_learning_rate, config.head_epochs),
        ("fine-tune", config.fine_tune_fraction, config.learning_rate, config.epochs),
    ]
    return planned[1:] if config.init_from else planned


def fit_phases(
    model, data: dict, config: TrainConfig, stopper, history: list, deadline: float | None, steps_per_epoch: int
) -> None:
    """Train the heads (a new network only), then fine-tune the top of the backbone."""
    from agebatch.training.network import set_trainable_from

    checkpoint, verbose = checkpoint_path(config), verbosity(config)
    for phase, fraction, rate, epochs in _phases(config):
        if epochs <= 0 or stopper.interrupted:
            continue
        set_trainable_from(model, fraction)
        schedule = _phase_schedule(config, phase)
        log.info("phase %s: %d epochs at learning rate %g (%s)", phase, epochs, rate, schedule)
        if schedule == "cosine":
            rate = _cosine_rate(config, steps_per_epoch)
        compile_model(model, rate, config)
        model.fit(
            data["train"],
            validation_data=data["val"],
            epochs=epochs,
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
            callbacks=callbacks(config, stopper, checkpoint, phase, history, deadline),
        )


def _phase_schedule(config: TrainConfig, phase: str) -> str:
    """How a phase's learning rate moves: only fine-tuning follows ``config.schedule``."""
    return config.schedule if phase == "fine-tune" else "constant"


def _cosine_rate(config: TrainConfig, steps_per_epoch: int):
    """Fine-tuning rate for ``schedule="cosine"``: from the rate down to 1% of it over the planned epochs.

    The plateau rule reacts to a noisy validation loss and tends to cut the rate early; the cosine
    spends exactly the planned epochs going smoothly down instead, which also makes a run's length
    known in advance (useful with ``--time-limit``).
    """
    import keras

    steps = max(1, config.epochs * steps_per_epoch)
    return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps, alpha=0.01)


def compile_model(
    model, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule, config: TrainConfig
) -> None:
    """Compile ``model`` with the recipe's losses, loss weights and metrics for its age head."""
    import keras

    from agebatch.contract import AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT
    from agebatch.training import agedist

    if config.age_head == "distribution":
        # age_output (the distribution's mean) has no loss of its own: it is only watched (MAE).
        loss = {AGE_OUTPUT: None, AGE_DISTRIBUTION: agedist.loss, GENDER_OUTPUT: "categorical_crossentropy"}
        weights = {AGE_OUTPUT: 0.0, AGE_DISTRIBUTION: config.age_loss_weight, GENDER_OUTPUT: 1.0}
    else:
        loss = {AGE_OUTPUT: "mse", GENDER_OUTPUT: "categorical_crossentropy"}
        weights = {AGE_OUTPUT: config.age_loss_weight, GENDER_OUTPUT: 1.0}
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        loss_weights=weights,
        metrics={AGE_OUTPUT: ["mae"], GENDER_OUTPUT: ["accuracy"]},
    )


def stop_when_interrupted(stopper: StopOnInterrupt, deadline: float | None = None):
    """A Keras callback that stops ``fit`` at the end of a batch on Ctrl-C or past ``deadline``; Keras
    then still validates the (shortened) epoch, so the checkpoint can keep what it learnt."""
    import keras

    class StopWhenInterrupted(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if stopper.interrupted:
                self.model.stop_training = True
            elif deadline is not None and time.time() > deadline and not self.model.stop_training:
                log.warning("time limit reached: stopping with the best weights so far")
                self.model.stop_training = True

    return StopWhenInterrupted()


def callbacks(config, stopper: StopOnInterrupt, checkpoint: Path, phase: str, logs: list, deadline: float | None):
    """A phase's callbacks: the epoch record and the stop on Ctrl-C or the deadline first (the weight
    averaging uses just these two), then the best-epoch checkpoint and, unless the phase follows the
    cosine schedule, early stopping and the rate cut on a plateau."""
    import keras

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.started = time.time()

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, epoch_logs=None):
            row = {k: float(v) for k, v in (epoch_logs or {}).items()}
            row.update(phase=phase, epoch=len(logs) + 1, seconds=round(time.time() - self.started, 1))
            row["learning_rate"] = float(self.model.optimizer.learning_rate.numpy())
            logs.append(row)
            atomic.write_text(checkpoint.parent / "history.json", json.dumps(logs, indent=1))

    class SaveBest(keras.callbacks.Callback):
        """The phase's best epoch so far (lowest finite validation loss) in ``checkpoint``, replaced
        atomically: an abort while saving leaves the previous best, never a torn file."""

        best = np.inf

        def on_epoch_end(self, epoch, epoch_logs=None):
            loss = float((epoch_logs or {}).get("val_loss", np.nan))
            if np.isfinite(loss) and loss < self.best:
                self.best = loss
                with atomic.atomic_path(checkpoint) as tmp:
                    self.model.save(tmp)

    chosen = [Record(), stop_when_interrupted(stopper, deadline), SaveBest()]
    if _phase_schedule(config, phase) == "cosine":
        # The schedule runs its planned length (stopping early would skip its low-rate end, where
        # the gains are); the checkpoint still holds the best epoch, which train() restores.
        return chosen
    return [
        *chosen,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, config.patience // 2)),
    ]
