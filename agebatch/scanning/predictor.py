"""Loads a model once and turns batches of face crops into age and gender estimates.

The model file is untrusted input like any other: it is loaded with Keras safe mode (no Python code
inside Lambda layers can run) and checked for the agebatch interface, and every way that can fail
becomes a ``ModelLoadError`` with a one-line message.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from agebatch.common.text import one_line
from agebatch.contract import AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT, has_distribution
from agebatch.modelfile import intervals
from agebatch.modelfile.card import card_for_model, interval_shares
from agebatch.modelfile.load import MODEL_ENV, ModelLoadError, check_model_file, default_model_path, load_model
from agebatch.scanning.images import resize_face
from agebatch.scanning.options import DEFAULT_BATCH_SIZE, ModelOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    age: float
    gender: str  # "male" or "female"
    gender_prob: float  # probability of ``gender``
    female_prob: float
    age_low: float | None = None  # the central 80% of the model's age distribution, when it has one
    age_high: float | None = None


@dataclass
class Estimates:
    """Raw outputs for a batch of faces: ages, female probabilities and, for a model with an age
    distribution, the bounds of its central ``contract.AGE_INTERVAL`` (else None)."""

    ages: np.ndarray
    females: np.ndarray
    age_low: np.ndarray | None = None
    age_high: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ages)

    def prediction(self, index: int) -> Prediction:
        low = None if self.age_low is None else self.age_low[index]
        high = None if self.age_high is None else self.age_high[index]
        return to_prediction(self.ages[index], self.females[index], low, high)

    def part(self, start: int, stop: int) -> Estimates:
        def cut(array):
            return None if array is None else array[start:stop]

        return Estimates(self.ages[start:stop], self.females[start:stop], cut(self.age_low), cut(self.age_high))


class Predictor:
    """Age and gender for face crops, with the model loaded once.

    >>> predictor = Predictor()                      # the shipped model
    >>> predictor.predict([Image.open("face.jpg")])  # doctest: +SKIP
    [Prediction(age=31.4, gender='female', gender_prob=0.97, female_prob=0.97)]

    Faces may be PIL images (any size; resized like the training crops) or uint8 arrays already at
    ``image_size``. Inference runs through a compiled function rather than ``model.predict`` because
    the latter re-creates its data pipeline on every call, which costs more than a small batch.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        engine: str = "auto",
        flip_average: bool = False,
    ) -> None:
        from agebatch.modelfile.twin import checked_twin, tflite_path_for
        from agebatch.scanning.options import ENGINES

        if engine not in ENGINES:
            raise ModelLoadError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        try:
            check_model_file(self.model_path)
        except ModelLoadError as exc:
            if model_path is None and os.environ.get(MODEL_ENV):  # say where the path came from
                raise ModelLoadError(f"{exc} (from ${MODEL_ENV})") from exc
            raise
        self.batch_size = max(1, int(batch_size))
        self.flip_average = flip_average
        card = card_for_model(self.model_path)  # read once: the interval's calibration, the engines' figures
        self.interval_shares = interval_shares(card)
        self._lock = threading.Lock()
        self._model = None
        self._run = None
        self.engine = "keras"
        for twin in _twins_to_try(engine, card):
            lite = tflite_path_for(self.model_path, twin)
            if engine == twin and not lite.is_file():
                raise ModelLoadError(f"--engine {twin} needs {lite} beside the model")
            if lite.is_file():
                blob = checked_twin(self.model_path, lite)
                self._run = self._checked_runner(lite, blob, required=engine == twin)
            if self._run is not None:
                self.engine = twin
                break
        if self._run is not None:
            self.image_size = self._run.image_size  # Keras loads only if someone asks for .model
        else:
            self._model, self.image_size = load_model(self.model_path)

    @classmethod
    def from_options(cls, options: ModelOptions, batch_size: int = DEFAULT_BATCH_SIZE) -> Predictor:
        """The predictor ``options`` describe, batching ``batch_size`` faces (``ScanOptions.batch_size``)."""
        return cls(options.model, batch_size, options.engine, options.flip_average)

    @staticmethod
    def _checked_runner(lite: Path, blob: bytes | None, required: bool):
        """The LiteRT runner for a twin whose record binds it to the model, else None (with a warning),
        or a ``ModelLoadError`` when the twin was asked for (``--engine tflite``)."""
        from agebatch.scanning.engines import TFLiteRunner

        problem = None
        if blob is None:
            problem = (
                f"{lite} does not match its record {lite.name}.json (or the model); it was not made from this model"
            )
        else:
            try:
                return TFLiteRunner(content=blob)
            except (ValueError, RuntimeError) as exc:
                problem = f"cannot load {lite}: {one_line(exc)}"
        if required:
            raise ModelLoadError(problem)
        log.warning("agebatch: warning: ignoring the LiteRT twin: %s", problem)
        return None

    @property
    def model(self):
        """The Keras model (the reference; Grad-CAM needs it), loaded on first use."""
        if self._model is None:
            self._model, _ = load_model(self.model_path)
        return self._model

    def _compiled(self):
        if self._run is None:
            import tensorflow as tf

            model = self.model

            with_distribution = has_distribution(model)

            @tf.function(reduce_retracing=True)
            def run(batch):
                out = model(batch, training=False)
                if with_distribution:
                    return out[AGE_OUTPUT], out[GENDER_OUTPUT][:, 1], out[AGE_DISTRIBUTION]
                return out[AGE_OUTPUT], out[GENDER_OUTPUT][:, 1]

            self._run = run
        return self._run

    def as_array(self, faces: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Faces as one (n, size, size, 3) uint8 array."""
        arrays = []
        for face in faces:
            if isinstance(face, Image.Image):
                arrays.append(resize_face(face.convert("RGB"), self.image_size))
            else:
                array = np.asarray(face)
                if array.shape != (self.image_size, self.image_size, 3):
                    array = resize_face(Image.fromarray(array.astype(np.uint8)).convert("RGB"), self.image_size)
                arrays.append(array.astype(np.uint8, copy=False))
        if not arrays:
            return np.empty((0, self.image_size, self.image_size, 3), np.uint8)
        return np.stack(arrays)

    def estimate(self, faces: np.ndarray) -> Estimates:
        """All raw outputs for uint8 faces (n, size, size, 3), the age interval included. Safe to call
        from several threads (the web app's visitors share one predictor): one batch runs at a time,
        as a LiteRT interpreter allows."""
        with self._lock:
            run = flip_averaged(self._compiled()) if self.flip_average else self._compiled()
            return run_in_batches(run, faces, self.batch_size, self.interval_shares)

    def predict_array(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for uint8 faces: ages (n,) and female probabilities (n,)."""
        estimates = self.estimate(faces)
        return estimates.ages, estimates.females

    def predict(self, faces: Sequence[Image.Image | np.ndarray]) -> list[Prediction]:
        estimates = self.estimate(self.as_array(faces))
        return [estimates.prediction(i) for i in range(len(estimates))]


def _twins_to_try(engine: str, card: dict | None) -> tuple[str, ...]:
    """The twins ``engine`` runs, in order: the one asked for, or for ``auto`` the 8-bit twin where the
    card shows it as accurate as float32, then the float32 twin."""
    from agebatch.modelfile.twin import int8_approved

    if engine == "auto":
        return ("int8", "tflite") if int8_approved(card) else ("tflite",)
    return (engine,) if engine in ("tflite", "int8") else ()


def run_in_batches(run, faces, batch_size: int, interval_shares: dict | None = None) -> Estimates:
    """Feed uint8 ``faces`` to ``run`` in chunks of ``batch_size``, so memory stays bounded (``faces``
    may be a memory-mapped array). ``run`` takes a float batch in [0, 1] and returns ages and female
    probabilities, and the age distribution when the model has one; its interval is the central share
    ``interval_shares`` gives (``modelfile.intervals``; the plain central 80 % without)."""
    parts: list[list[np.ndarray]] = [[], [], []]
    for start in range(0, len(faces), batch_size):
        outputs = run(np.asarray(faces[start : start + batch_size], dtype=np.float32) / 255.0)
        for kept, output in zip(parts, outputs):
            kept.append(np.asarray(output).reshape(len(outputs[0]), -1))
    if not parts[0]:
        return Estimates(np.empty(0, np.float32), np.empty(0, np.float32))
    ages, females = (np.concatenate(p).reshape(-1) for p in parts[:2])
    if not parts[2]:
        return Estimates(ages, females)
    low, high = intervals.interval(np.concatenate(parts[2]), ages, interval_shares)
    return Estimates(ages, females, low, high)


def flip_averaged(run):
    """``run`` applied to each face and to its mirror image, outputs averaged.

    Test-time averaging over the horizontal flip (the augmentation the model was trained with):
    a little more accurate for twice the inference work (the README quotes the shipped model's figures).
    """

    def averaged(batch):
        straight = run(batch)
        mirrored = run(np.ascontiguousarray(batch[:, :, ::-1, :]))
        return tuple((np.asarray(a) + np.asarray(b)) / 2 for a, b in zip(straight, mirrored))

    return averaged


def to_prediction(
    age: float, female_prob: float, age_low: float | None = None, age_high: float | None = None
) -> Prediction:
    """Round and label raw outputs the way the CSV reports them (ages clipped at 0, one decimal)."""
    female_prob = float(np.clip(female_prob, 0.0, 1.0))
    gender = "female" if female_prob >= 0.5 else "male"
    prob = female_prob if gender == "female" else 1.0 - female_prob

    def years(value):
        return None if value is None else round(max(0.0, float(value)), 1)

    return Prediction(years(age), gender, round(prob, 4), round(female_prob, 4), years(age_low), years(age_high))
