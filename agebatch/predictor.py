"""Loads a model once and turns batches of face crops into age and gender estimates.

The model file is untrusted input like any other: it is loaded with Keras safe mode (no Python code
inside Lambda layers can run) and checked for the agebatch interface, and every way that can fail
becomes a ``ModelLoadError`` with a one-line message.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from agebatch.images import resize_face

MODEL_ENV = "AGEBATCH_MODEL"
DEFAULT_MODEL_NAME = "agebatch.keras"


class ModelLoadError(Exception):
    """A model path that does not give a usable agebatch model; ``str()`` is one line."""


@dataclass(frozen=True)
class Prediction:
    age: float
    gender: str  # "male" or "female"
    gender_prob: float  # probability of ``gender``
    female_prob: float


def default_model_path() -> Path:
    """The model ``scan`` uses without ``--model``: ``$AGEBATCH_MODEL``, else the one shipped in the package."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override)
    try:
        shipped = Path(str(resources.files("agebatch.models") / DEFAULT_MODEL_NAME))
        if shipped.is_file():
            return shipped
    except (ModuleNotFoundError, TypeError):
        pass
    # Running from a source checkout without installing: the repository's models/ folder.
    return Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME


def check_model_file(path: Path) -> None:
    """The cheap checks, without loading anything: exists, is a file, is a .keras archive."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelLoadError(f"not a Keras model file (.keras zip archive): {path}")


def load_model(path: str | os.PathLike | None = None):
    """Load and check a model; returns ``(model, image_size)`` or raises ``ModelLoadError``."""
    path = Path(path) if path is not None else default_model_path()
    check_model_file(path)
    from agebatch import quiet

    quiet.load_tensorflow()  # before anything imports Keras, so its start-up notices stay quiet
    import keras

    from agebatch.model import ModelInterfaceError, check_interface

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad archives; all mean "unusable"
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ModelLoadError(f"cannot load model {path}: {reason}") from exc
    try:
        size = check_interface(model)
    except ModelInterfaceError as exc:
        raise ModelLoadError(f"not an agebatch model ({path}): {exc}") from exc
    from agebatch.precision import full_precision

    return full_precision(model), size  # a file stored in half precision still computes in float32


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
        batch_size: int = 64,
        engine: str = "auto",
        flip_average: bool = False,
    ) -> None:
        from agebatch.engines import ENGINES, TFLiteRunner, tflite_path_for, twin_matches

        if engine not in ENGINES:
            raise ModelLoadError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        check_model_file(self.model_path)
        self.batch_size = max(1, int(batch_size))
        self.flip_average = flip_average
        self._model = None
        self._run = None
        self.engine = "keras"
        lite = tflite_path_for(self.model_path)
        if engine == "tflite" and not lite.is_file():
            raise ModelLoadError(f"--engine tflite needs {lite} beside the model")
        runner = None
        if engine in ("auto", "tflite") and lite.is_file():
            try:
                runner = TFLiteRunner(lite)
            except (ValueError, RuntimeError) as exc:
                if engine == "tflite":
                    raise ModelLoadError(f"cannot load {lite}: {' '.join(str(exc).split())[:160]}") from exc
        if runner is not None and twin_matches(self.model_path, lite):
            self.image_size = runner.image_size  # Keras loads only if someone asks for .model
        else:
            self._model, self.image_size = load_model(self.model_path)
            if runner is not None and runner.image_size != self.image_size:
                runner = None
        if runner is not None:
            self._run = runner
            self.engine = "tflite"

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

            @tf.function(reduce_retracing=True)
            def run(batch):
                out = model(batch, training=False)
                return out["age_output"], out["gender_output"][:, 1]

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

    def predict_array(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for uint8 faces: ages (n,) and female probabilities (n,)."""
        ages, females = [], []
        run = flip_averaged(self._compiled()) if self.flip_average else self._compiled()
        for start in range(0, len(faces), self.batch_size):
            batch = np.asarray(faces[start : start + self.batch_size], dtype=np.float32) / 255.0
            age, female = run(batch)
            ages.append(np.asarray(age).reshape(-1))
            females.append(np.asarray(female).reshape(-1))
        if not ages:
            return np.empty(0, np.float32), np.empty(0, np.float32)
        return np.concatenate(ages), np.concatenate(females)

    def predict(self, faces: Sequence[Image.Image | np.ndarray]) -> list[Prediction]:
        ages, females = self.predict_array(self.as_array(faces))
        return [to_prediction(a, f) for a, f in zip(ages, females)]


def flip_averaged(run):
    """``run`` applied to each face and to its mirror image, outputs averaged.

    Test-time averaging over the horizontal flip (the augmentation the model was trained with):
    on the shipped model's test split it lowers the age MAE from 5.05 to 4.99 years and lifts gender
    accuracy from 91.67% to 91.74%, for twice the inference work.
    """

    def averaged(batch):
        age, female = run(batch)
        age_flipped, female_flipped = run(np.ascontiguousarray(batch[:, :, ::-1, :]))
        return (
            (np.asarray(age).reshape(-1) + np.asarray(age_flipped).reshape(-1)) / 2,
            (np.asarray(female).reshape(-1) + np.asarray(female_flipped).reshape(-1)) / 2,
        )

    return averaged


def to_prediction(age: float, female_prob: float) -> Prediction:
    """Round and label raw outputs the way the CSV reports them (age clipped at 0, one decimal)."""
    female_prob = float(np.clip(female_prob, 0.0, 1.0))
    gender = "female" if female_prob >= 0.5 else "male"
    prob = female_prob if gender == "female" else 1.0 - female_prob
    return Prediction(round(max(0.0, float(age)), 1), gender, round(prob, 4), round(female_prob, 4))
