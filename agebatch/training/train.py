"""The training recipe: two phases of transfer learning on one or more labelled sources.

Phase 1 trains only the heads on a frozen ImageNet backbone (fast, and it keeps large random-head
gradients from wrecking the pretrained features). Phase 2 unfreezes the backbone (BatchNormalization
stays in inference mode) and fine-tunes everything at a lower rate, with early stopping on the
validation split that restores the best weights (or, with ``schedule="cosine"``, a smooth decay over
the planned epochs, keeping the best one). An optional phase 3 (stochastic weight averaging)
trains a few more epochs at a constant rate and averages the weights they end with: the average sits
nearer the middle of the flat region the runs wander in, which tends to generalise better than any
single epoch. It is kept only if it beats the best single epoch on the validation split.

With a teacher (a saved model), the training targets blend the labels with its estimates
(distillation); validation and test are always scored against the labels.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from agebatch import contract
from agebatch.common import atomic
from agebatch.training import dataset, sources, splits
from agebatch.training.config import TrainConfig

if TYPE_CHECKING:  # keras loads only when training starts
    import keras

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What a training run did, as the card reports it."""

    skipped: int  # labelled rows that could not be read
    history: list[dict]  # one row per epoch
    steps: dict  # records of the optional last steps (weight averaging, age-head refit)
    seconds: float
    interrupted: bool


@dataclass
class TrainResult:
    model_path: Path
    card_path: Path
    history: list[dict]
    test_metrics: dict
    interrupted: bool


def gender_weights(genders: np.ndarray) -> np.ndarray:
    """Per-sample weights that make both genders count equally in the gender loss (mean 1)."""
    counts = np.bincount(genders, minlength=2).astype(float)
    per_class = len(genders) / (2 * np.maximum(counts, 1))
    return per_class[genders].astype("float32")


def age_weights(ages: np.ndarray, power: float) -> np.ndarray:
    """Per-sample weights ~ (size of the sample's age band)^-power, normalised to mean 1.

    Children and people over 65 are a small share of UTKFace; without help the age head regresses
    them towards the mean. ``power`` 0.5 is a compromise between no weighting (0) and full
    inverse-frequency weighting (1), which over-fits the rare bands.
    """
    bands = np.array([contract.age_band(a) for a in ages])
    names, inverse, counts = np.unique(bands, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(float) ** -power
    return (weights / weights.mean()).astype("float32")


def blend_with_teacher(
    ages: np.ndarray, genders: np.ndarray, teacher: pd.DataFrame | None, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Training targets (age column, gender probabilities): the labels, mixed with a teacher's estimates.

    A teacher's soft gender probabilities say which faces are ambiguous and its age estimates are
    smoother than single annotators' guesses; a network trained on the mix ("born-again"
    distillation) can end up better than the teacher itself (the model card's notes say when it did
    not). ``weight`` 0 gives the plain labels.
    """
    age = np.asarray(ages, "float32").reshape(-1, 1)
    onehot = np.eye(2, dtype="float32")[np.asarray(genders)]
    if teacher is None or weight <= 0:
        return age, onehot
    female = teacher["pred_female"].to_numpy("float32")
    soft = np.stack([1 - female, female], axis=1)
    teacher_age = teacher["pred_age"].to_numpy("float32").reshape(-1, 1)
    return (1 - weight) * age + weight * teacher_age, (1 - weight) * onehot + weight * soft


def load_checked(path: str, image_size: int, role: str) -> keras.Model:
    """A saved model (a teacher, or the one to continue from), checked to take this run's faces: before
    any face is decoded, so a wrong file fails in seconds rather than after minutes of decoding. Loaded
    as scans load a model (``predictor.load_model``: the archive checked first, safe mode, float32)."""
    from agebatch.scanning.predictor import ModelLoadError, load_model

    try:
        model, size = load_model(path)
    except ModelLoadError as exc:
        raise ValueError(f"{role}: {exc}") from exc
    if size != image_size:
        raise ValueError(f"{role} {path} takes {size}x{size} faces, this run uses {image_size}x{image_size}")
    return model


def continue_from(source, target, path: str) -> None:
    """Start ``target`` from the weights of the saved model at ``path`` (``source``).

    A calibrated model (what ``train`` writes, and what ships) keeps its trained age head as
    ``age_raw`` behind the calibration map: that is the head training continues. The map itself is
    refitted at the end of the run.
    """
    from agebatch.contract import AGE_OUTPUT
    from agebatch.training.calibration import RAW_AGE

    calibrated = any(layer.name == RAW_AGE for layer in source.layers)
    try:
        _copy_weights(source, target, {AGE_OUTPUT: RAW_AGE} if calibrated else None)
    except ValueError as exc:  # another width (alpha) or layout: layer shapes or names differ
        raise ValueError(f"{path} is not this run's network, cannot continue from it ({exc})") from exc


def average_models(models: list, paths: list[str]) -> None:
    """Set the first of ``models`` (one architecture) to the mean of all their weights, tensor by tensor.

    Networks fine-tuned from one saved model stay in one basin, so their average (a "model soup") is
    usually at least as good as each of them; independently trained networks do not average.
    """
    first = models[0].get_weights()
    total = [np.asarray(w, "float64") for w in first]
    for other, path in zip(models[1:], paths[1:]):
        weights = other.get_weights()
        if [w.shape for w in weights] != [w.shape for w in first]:
            raise ValueError(f"{path} is not the same network as {paths[0]}, cannot average them")
        total = [t + w for t, w in zip(total, weights)]
    models[0].set_weights([(t / len(models)).astype(w.dtype) for t, w in zip(total, first)])


def averaged_start(models: list, paths: list[str], config: TrainConfig):
    """A network of this run holding the mean of the saved ``models``' weights: each is first continued
    into a fresh copy of the run's network (``continue_from``: a calibrated model gives its trained head,
    not its calibration map, and a model of another shape is a clear error), then the copies are averaged."""
    copies = []
    for model, path in zip(models, paths):
        copy = bare_network(config)
        continue_from(model, copy, path)
        copies.append(copy)
    average_models(copies, paths)
    log.info("continuing from the average of %s", ", ".join(paths))
    return copies[0]


def warm_start(source, target) -> list[str]:
    """Copy into ``target`` the weights of every layer ``source`` has under the same name and shape.

    For a new head on a trained network: the backbone and the gender head come over, a head of
    another shape (the age distribution) starts fresh. An ensemble gives its first network. Returns
    the names of the layers copied.
    """
    from agebatch.contract import AGE_OUTPUT, members_of

    source = (members_of(source) or [source])[0]
    known = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in target.layers:
        other = known.get(layer.name)
        if not layer.trainable_weights or other is None or layer.name == AGE_OUTPUT and not layer.trainable:
            continue
        values = other.get_weights()
        if [w.shape for w in values] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(values)
            copied.append(layer.name)
    if not copied:
        raise ValueError("the model to warm-start from shares no layer with this run's network")
    log.info("warm start: copied %s", ", ".join(copied))
    return copied


def teacher_predictions(teachers: list, images, index: np.ndarray, batch_size: int) -> pd.DataFrame:
    """The teachers' flip-averaged estimates for the faces ``index``, averaged over the teachers.

    Computed once, before training. Several independently trained teachers are an ensemble, which is
    more accurate than any one of them; distillation is how one network can learn from it.
    """
    from agebatch.training import evaluate

    log.info("teacher: %d model(s) predicting %d training faces (flip-averaged)", len(teachers), len(index))
    faces = np.asarray(images[index])  # gathered once, not once per teacher
    return evaluate.mean_estimates([evaluate.predict_arrays(t, faces, batch_size, flip_average=True) for t in teachers])


def label_ages(frame: pd.DataFrame) -> np.ndarray:
    """One number per face for the regression head and the MAE metric: the age, or a band's middle."""
    middle = (frame["age_low"].to_numpy(float) + frame["age_high"].to_numpy(float)) / 2
    return np.where(frame["age"].notna(), frame["age"].to_numpy(float), middle)


def smoothed(onehot: np.ndarray, amount: float) -> np.ndarray:
    """Gender targets moved ``amount`` of the way towards 50/50: a network that may not be certain of
    every training face overfits its gender head less (the distribution head's calibration refits the
    gender temperature after, so the stated confidence is honest again)."""
    return (1 - amount) * onehot + amount / onehot.shape[1]


def training_targets(
    frame: pd.DataFrame, config: TrainConfig, teacher: pd.DataFrame | None = None, training: bool = False
) -> dict:
    """Targets per output for ``frame``'s faces (a teacher blends in only for the regression head;
    gender smoothing applies only to the faces trained on)."""
    from agebatch.contract import AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT
    from agebatch.training import agedist

    ages, onehot = blend_with_teacher(label_ages(frame), frame["gender"].to_numpy(), teacher, config.teacher_weight)
    if training and config.gender_smoothing > 0:
        onehot = smoothed(onehot, config.gender_smoothing)
    targets = {AGE_OUTPUT: ages, GENDER_OUTPUT: onehot}
    if config.age_head == "distribution":
        targets[AGE_DISTRIBUTION] = agedist.targets(frame["age_low"], frame["age_high"], config.age_sigma)
    return targets


def training_weights(frame: pd.DataFrame, config: TrainConfig, outputs) -> dict:
    """Per-face loss weights per output.

    The regression recipe weights the age loss by age band and the gender loss by gender; the
    distribution head, trained on several sources, weighs every loss by ``sources.balance_weights``
    so no source, group, age band or gender dominates (or, with ``sampling="oversample"``, leaves
    that to ``_drawn_batches`` and weighs every face 1).
    """
    if config.age_head == "distribution":
        if config.sampling == "oversample":  # the draw gives rare strata their share instead
            weights = np.ones(len(frame), "float32")
        else:
            weights = sources.balance_weights(frame, config.age_weight_power)
        return {name: weights for name in outputs}
    gender = frame["gender"].to_numpy()
    return {
        "age_output": age_weights(label_ages(frame), config.age_weight_power),
        "gender_output": gender_weights(gender) if config.balance_gender else np.ones(len(frame), "float32"),
    }


def _make_dataset(images, frame, config: TrainConfig, training: bool, teacher: pd.DataFrame | None = None):
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
        index = _drawn_batches(sources.balance_weights(frame, config.age_weight_power), config)
    else:
        index = tf.data.Dataset.range(len(frame))
        if training:
            index = index.shuffle(len(frame), seed=config.seed, reshuffle_each_iteration=True)
        index = index.batch(config.batch_size)
    return index.map(batch_of, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _drawn_batches(weights: np.ndarray, config: TrainConfig):
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


def _compile(
    model, learning_rate: float | keras.optimizers.schedules.LearningRateSchedule, config: TrainConfig
) -> None:
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


class _StopOnInterrupt:
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


def _checkpoint(config: TrainConfig) -> Path:
    """Where a run keeps its best weights so far, until its model is saved."""
    return Path(config.out_dir) / "checkpoint.keras"


def _stop_when_interrupted(stopper: _StopOnInterrupt, deadline: float | None = None):
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


def _callbacks(config, stopper: _StopOnInterrupt, checkpoint: Path, phase: str, logs: list, deadline: float | None):
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

    callbacks = [Record(), _stop_when_interrupted(stopper, deadline), SaveBest()]
    if _phase_schedule(config, phase) == "cosine":
        # The schedule runs its planned length (stopping early would skip its low-rate end, where
        # the gains are); the checkpoint still holds the best epoch, which train() restores.
        return callbacks
    return [
        *callbacks,
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.3, patience=max(1, config.patience // 2)),
    ]


def _verbosity(config: TrainConfig) -> int:
    if config.verbose is not None:
        return config.verbose
    return 1 if sys.stdout.isatty() else 2


def _copy_weights(source, target, renamed: dict[str, str] | None = None) -> None:
    """Copy weights layer by layer (matched by name, or by ``renamed[name]`` in ``source``), e.g. from
    a checkpoint into a fresh network."""
    renamed = renamed or {}
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(renamed.get(layer.name, layer.name)).get_weights())


def bare_network(config: TrainConfig):
    """This run's network without augmentation layers and with fresh weights, to copy weights into."""
    from agebatch.training.network import build_model

    return build_model(config.image_size, None, config.dropout, config.alpha, augment=False, age_head=config.age_head)


def inference_copy(trained, config: TrainConfig):
    """The trained network without augmentation layers: what scan loads, and smaller to run."""
    clean = bare_network(config)
    _copy_weights(trained, clean)
    return clean


def read_labelled(config: TrainConfig) -> tuple[pd.DataFrame, int]:
    """Every labelled face of the run's sources with its split (train / val / test), and the rows skipped."""
    frame, skipped = sources.read_sources(list(config.sources))
    if config.max_images and len(frame) > config.max_images:
        frame = frame.sample(config.max_images, random_state=config.seed)
        frame = frame.sort_values(["source", "file"]).reset_index(drop=True)
    if len(frame) < 10:
        raise ValueError(f"need at least 10 labelled images in {', '.join(config.sources)}, found {len(frame)}")
    saved = None
    if config.split_from:
        try:
            saved = pd.read_csv(config.split_from)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{config.split_from}: not a split file written by agebatch train ({exc})") from exc
    try:
        frame, left_out = splits.add_split(frame, config.test_split, config.val_split, config.seed, saved)
    except ValueError as exc:
        raise ValueError(f"{config.split_from}: {exc}") from exc
    if left_out:
        log.warning("%d labelled files are not in %s and are left out", left_out, config.split_from)
    return frame, skipped


def train(config: TrainConfig) -> TrainResult:
    """Run the whole recipe and write the model, split, model card and curves into ``config.out_dir``."""
    import keras

    from agebatch.training.network import build_model

    keras.utils.set_random_seed(config.seed)
    out = Path(config.out_dir)
    checkpoint = _checkpoint(config)
    _refuse_to_overwrite_unfinished(checkpoint, config)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    teacher_models = [load_checked(path, config.image_size, "teacher") for path in config.teachers]
    start = load_checked(config.init_from, config.image_size, "model to continue from") if config.init_from else None
    if config.average_with:
        others = [load_checked(path, config.image_size, "model to average with") for path in config.average_with]
        start = averaged_start([start, *others], [config.init_from, *config.average_with], config)
        del others
    warm = load_checked(config.warm_start, config.image_size, "model to warm-start from") if config.warm_start else None

    frame, skipped = read_labelled(config)
    splits.save_split(frame, out / "split.csv")
    images = dataset.cached_images("/", list(frame["path"]), config.image_size, config.cache_dir)
    parts = {name: frame.index[frame["split"] == name].to_numpy() for name in ("train", "val", "test")}
    log.info("images: %s", {k: len(v) for k, v in parts.items()})
    teacher = None
    if teacher_models:
        teacher = teacher_predictions(teacher_models, images, parts["train"], config.batch_size)
        del teacher_models  # their estimates are all training needs
    data = {
        name: _make_dataset(
            np.asarray(images[idx]), frame.loc[idx], config, training=(name == "train"), teacher=teacher
        )
        for name, idx in parts.items()
    }

    model = build_model(
        config.image_size,
        None if start is not None else config.backbone_weights,  # a continued run's weights replace them
        config.dropout,
        config.alpha,
        color_jitter=config.color_jitter,
        age_head=config.age_head,
    )
    if warm is not None:
        warm_start(warm, model)
        del warm
    if start is not None:
        continue_from(start, model, config.init_from)
        del start
    history: list[dict] = []
    deadline = started + 60 * config.time_limit_minutes if config.time_limit_minutes else None
    try:
        with _StopOnInterrupt() as stopper:  # Ctrl-C anywhere below finishes with the best weights so far
            batches = int(np.ceil(len(parts["train"]) / config.batch_size))
            _fit_phases(model, data, config, stopper, history, deadline, batches)
            if checkpoint.exists():
                # The last phase's best epoch: a cosine schedule has no EarlyStopping to restore it, and
                # after Ctrl-C or the time limit the last epoch need not be the best.
                _copy_weights(keras.saving.load_model(checkpoint, compile=False), model)
            final, steps = _last_steps(config, frame, images, model, data, stopper, history)
            run = RunRecord(skipped, history, steps, time.time() - started, stopper.interrupted)
            result = finalize(config, frame, images, final, run)
    except BaseException:  # a second Ctrl-C, SIGTERM or a crash: the best weights so far stay in the checkpoint
        if checkpoint.exists():
            log.warning("the run stopped before it finished: its best weights so far are in %s", checkpoint)
        raise
    return result


def _fit_phases(
    model, data: dict, config: TrainConfig, stopper, history: list, deadline: float | None, steps_per_epoch: int
) -> None:
    """Train the heads (a new network only), then fine-tune the top of the backbone."""
    from agebatch.training.network import set_trainable_from

    checkpoint, verbose = _checkpoint(config), _verbosity(config)
    for phase, fraction, rate, epochs in _phases(config):
        if epochs <= 0 or stopper.interrupted:
            continue
        set_trainable_from(model, fraction)
        schedule = _phase_schedule(config, phase)
        log.info("phase %s: %d epochs at learning rate %g (%s)", phase, epochs, rate, schedule)
        if schedule == "cosine":
            rate = _cosine_rate(config, steps_per_epoch)
        _compile(model, rate, config)
        model.fit(
            data["train"],
            validation_data=data["val"],
            epochs=epochs,
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
            callbacks=_callbacks(config, stopper, checkpoint, phase, history, deadline),
        )


def _refuse_to_overwrite_unfinished(checkpoint: Path, config: TrainConfig) -> None:
    """An earlier run into this folder that did not finish left its best weights in ``checkpoint``; a
    new run would overwrite them (or restore them as its own), so it starts only by continuing them."""
    if not checkpoint.exists():
        return
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint} is in the way of this run's checkpoint: move it away")
    continued = [path for path in (config.init_from, *config.average_with) if path and Path(path).exists()]
    if not any(checkpoint.samefile(path) for path in continued):
        raise ValueError(
            f"{checkpoint} holds the best weights of an earlier run that did not finish: "
            f"continue them with --init-from {checkpoint}, or move the file away"
        )


def _phases(config: TrainConfig) -> list[tuple[str, float, float, int]]:
    """(name, trainable fraction of the backbone, learning rate, epochs) of each training phase; a
    continued run skips the new-heads phase."""
    phases = [
        ("heads", 0.0, config.head_learning_rate, config.head_epochs),
        ("fine-tune", config.fine_tune_fraction, config.learning_rate, config.epochs),
    ]
    return phases[1:] if config.init_from else phases


def _last_steps(config, frame, images, model, data, stopper, history: list) -> tuple:
    """The optional last steps (weight averaging, age-head refit), each skipped once interrupted.

    Returns the inference copy to save and the steps' records for the card.
    """
    skipped = {"kept": False, "skipped": "interrupted"}  # the card says what did not run, and why
    steps = {}
    if config.average_epochs > 0:
        steps["weight_averaging"] = (
            skipped
            if stopper.interrupted
            else average_weights(model, data, config, stopper, _checkpoint(config), history, _verbosity(config))
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
    _compile(model, config.average_learning_rate, config)
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
    callbacks = _callbacks(config, stopper, checkpoint, "average", history, None)[:2]
    model.fit(
        data["train"],
        validation_data=data["val"],
        epochs=config.average_epochs,
        verbose=verbose,
        shuffle=False,
        callbacks=[*callbacks, Accumulate()],
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


class _Interrupted(Exception):
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
    Ctrl-C (``stopper``, see ``_StopOnInterrupt``) stops it within a batch, the old head kept.
    """

    stopper = stopper or _StopOnInterrupt()  # not entered: never interrupted

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
    except _Interrupted:
        log.warning("age head refit interrupted: the trained head is kept")
        return {"kept": False, "skipped": "interrupted"}


def _interruptible_features(model, images, index: np.ndarray, stopper, mirror: bool) -> np.ndarray:
    """``network.pooled_features``, checking for Ctrl-C between batches."""
    from agebatch.training.network import pooled_feature_batches

    chunks = []
    for chunk in pooled_feature_batches(model, images, index, mirror=mirror):
        if stopper.interrupted:
            raise _Interrupted
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
    and early stopping on the validation loss ends the fit before it overfits. Without
    the balance weights the head favours the common ages: lower overall error, more past 55
    (docs/model-history.md, sixteenth session).
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
    ``monitor`` with its best weights restored; raises ``_Interrupted`` on Ctrl-C (``stopper``)."""
    import keras

    epochs, batch_size, patience = budget
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, restore_best_weights=True)
    callbacks = [stop, _stop_when_interrupted(stopper)]
    refit.fit(*train, validation_data=val, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks)
    if stopper.interrupted:
        raise _Interrupted


def _distribution_figures(head_model, x: np.ndarray, targets: np.ndarray, part: pd.DataFrame) -> dict:
    """A head model's age loss on faces (features ``x``) and its MAE on those with an exact age (None
    without any: the card is strict JSON)."""
    from agebatch.training import agedist

    probs = head_model.predict(x, batch_size=1024, verbose=0)
    loss = float(np.mean(np.asarray(agedist.loss(targets, probs))))
    exact = part["age"].notna().to_numpy()
    error = agedist.expected_age(probs[exact]) - part["age"].to_numpy(float)[exact]
    return {"loss": loss, "mae": float(np.mean(np.abs(error))) if exact.any() else None}


def finalize(config: TrainConfig, frame: pd.DataFrame, images, model, run: RunRecord) -> TrainResult:
    """Calibrate on the validation split, save, score on the test split, write the card and curves.

    Saving the model replaces the run's checkpoint and the files made from an earlier model (card,
    LiteRT twin, curves), so an abort after it never leaves them describing the wrong model.

    Both the raw and the calibrated model are scored on the test split and both sets of figures go
    into the card; the calibrated one is shipped when ``config.calibrate`` (it is fitted on validation
    faces only, so the test figures stay honest).
    """
    from agebatch.training import curves, evaluate, modelcard

    out = Path(config.out_dir)
    parts = {name: frame.index[frame["split"] == name].to_numpy() for name in ("val", "test")}
    test = frame.loc[parts["test"]].reset_index(drop=True)

    def scored(network, part: str, truth: pd.DataFrame) -> dict:
        return evaluate.score(truth, evaluate.predict_arrays(network, images[parts[part]], config.batch_size))

    metrics = scored(model, "test", test)
    calibration_info = None
    if config.calibrate and len(parts["val"]) >= 20:
        val = frame.loc[parts["val"]].reset_index(drop=True)
        val_pred = evaluate.predict_arrays(model, images[parts["val"]], config.batch_size)
        model, calibration_info = _calibrate(model, val, val_pred, config)
        calibration_info.update(
            val_before=evaluate.score(val, val_pred)["overall"],
            val_after=scored(model, "val", val)["overall"],
            test_before=metrics["overall"],
        )
        metrics = scored(model, "test", test)
    model_path = out / config.model_name
    stem = Path(config.model_name).stem
    for stale in _made_from_model(model_path):  # an abort below must not leave an old card or twin beside it
        stale.unlink(missing_ok=True)
    with atomic.atomic_path(model_path) as tmp:
        model.save(tmp)
    _checkpoint(config).unlink(missing_ok=True)  # the saved model holds the weights now
    card = modelcard.build_card(config, frame, run.skipped, run.history, metrics, run.seconds, run.interrupted)
    card["calibration"] = calibration_info
    card.update(run.steps)
    card["tflite"] = export_and_score_tflite(model, model_path, test, images[parts["test"]])
    card_path = modelcard.write_card(card, out, stem)
    curves.write_curves(run.history, out / f"{stem}.curves")
    return TrainResult(model_path, card_path, run.history, metrics, run.interrupted)


def _made_from_model(model_path: Path) -> list[Path]:
    """The files ``finalize`` writes after the model, each describing it: card, LiteRT twin, curves."""
    from agebatch.scanning import engines
    from agebatch.training import modelcard

    stem = model_path.with_name(model_path.stem)
    twin = engines.tflite_path_for(model_path)
    suffixes = (modelcard.CARD_SUFFIX, ".card.md", ".curves.html", ".curves.png")
    return [*(Path(f"{stem}{suffix}") for suffix in suffixes), twin, engines.twin_record_path(twin)]


def _calibrate(model, val: pd.DataFrame, val_pred: pd.DataFrame, config: TrainConfig):
    """The calibrated model and what was fitted, from the validation faces' raw estimates.

    A distribution head gets a gender temperature and threshold (its age is the distribution's mean,
    which an extra map would decouple from the interval). A regression head also gets the age map
    that undoes its pull towards the mean.
    """
    from agebatch.training import calibration

    female = val_pred["pred_female"].to_numpy()
    if config.age_head == "distribution":
        return model, calibration.calibrate_gender(model, female, val["gender"])
    coef = calibration.fit_age_map(val_pred["pred_age"].to_numpy(), label_ages(val))
    shift = calibration.best_gender_shift(female, val["gender"].to_numpy())
    info = {
        "age_knots": list(calibration.KNOTS),
        "age_coefficients": [float(c) for c in coef],
        "gender_logit_shift": shift,
    }
    return calibration.calibrated_model(model, coef, shift), info


def export_and_score_tflite(
    model, model_path: Path, test: pd.DataFrame, test_images, half_precision: bool = False
) -> dict | None:
    """Write the ``.tflite`` twin scan uses, and score it on the same test faces as the Keras model."""
    from agebatch.scanning import engines
    from agebatch.training import evaluate

    try:
        path = engines.export_tflite(model, engines.tflite_path_for(model_path), half_precision)
    except Exception as exc:  # conversion is an optimisation: a failure must not lose the trained model
        log.warning("TFLite export failed, scan will use Keras: %s", exc)
        return None
    engines.write_twin_record(model_path, path)
    predictions = evaluate.predict_with(engines.TFLiteRunner(path), test_images)
    return {"file": path.name, "test_metrics": evaluate.score(test, predictions)["overall"]}


def smoke_config(config: TrainConfig) -> TrainConfig:
    """The tiny configuration tests use: a narrow random backbone, 64 images, one epoch per phase.

    It exercises every step of the recipe (split, pipeline, both phases, saving, card, curves) in
    seconds; the numbers it produces mean nothing.
    """
    from dataclasses import replace

    return replace(
        config,
        image_size=min(config.image_size, 64),
        batch_size=16,
        head_epochs=1,
        epochs=1,
        patience=1,
        backbone_weights=None,
        alpha=0.35,
        max_images=64,
        val_split=0.2,
        test_split=0.25,
    )
