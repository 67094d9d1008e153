"""Loads a model once and turns batches of face crops into age and gender estimates.

The model file is untrusted input like any other: it is loaded with Keras safe mode (no Python code
inside Lambda layers can run) and checked for the agebatch interface, and every way that can fail
becomes a ``ModelLoadError`` with a one-line message.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from agebatch.common.text import one_line, printable
from agebatch.contract import AGE_DISTRIBUTION, AGE_OUTPUT, GENDER_OUTPUT, age_interval, has_distribution
from agebatch.scanning.images import resize_face

MODEL_ENV = "AGEBATCH_MODEL"
DEFAULT_MODEL_NAME = "agebatch.keras"


log = logging.getLogger(__name__)


class ModelLoadError(Exception):
    """A model path that does not give a usable agebatch model; ``str()`` is one line."""


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
    return Path(__file__).resolve().parents[2] / "models" / DEFAULT_MODEL_NAME


# What a .keras archive may hold, and how large each part may unpack (Keras reads the JSON into memory
# and extracts the weights to a temporary folder, so both are bounded before Keras sees the file).
_ARCHIVE_LIMITS = {"metadata.json": 1 << 20, "config.json": 16 << 20, "model.weights.h5": 1 << 30}
_ASSET_LIMIT = 64 << 20  # files under assets/, all together
_MEMBER_LIMIT = 1000


def check_model_file(path: Path) -> None:
    """The cheap checks, without loading anything: exists, is a file, is a .keras archive whose
    members are the ones Keras writes and unpack to a bounded size (no zip bomb, no extra payload)."""
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"model path is not a file: {path}")
    if path.suffix != ".keras" or not zipfile.is_zipfile(path):
        raise ModelLoadError(f"not a Keras model file (.keras zip archive): {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"not a Keras model file (.keras zip archive): {path}: {one_line(exc)}") from exc
    if len(members) > _MEMBER_LIMIT:
        raise ModelLoadError(f"{path} holds {len(members)} files, more than a model needs: refusing it")
    assets = 0
    for member in members:
        name = member.filename
        if name.startswith("assets/") and ".." not in name.split("/"):
            assets += member.file_size
            limit, size = _ASSET_LIMIT, assets
        elif name in _ARCHIVE_LIMITS:
            limit, size = _ARCHIVE_LIMITS[name], member.file_size
        else:
            raise ModelLoadError(f"{path} holds {printable(name)!r}, which a Keras model file does not: refusing it")
        if size > limit:
            raise ModelLoadError(f"{path}: {printable(name)} unpacks to {size >> 20} MB, more than a model needs")
    if "config.json" not in {m.filename for m in members}:
        raise ModelLoadError(f"not a Keras model file (no config.json inside): {path}")


def load_model(path: str | os.PathLike | None = None):
    """Load and check a model; returns ``(model, image_size)`` or raises ``ModelLoadError``."""
    path = Path(path) if path is not None else default_model_path()
    check_model_file(path)
    from agebatch.common import quiet

    quiet.load_tensorflow()  # before anything imports Keras, so its start-up notices stay quiet
    import keras

    from agebatch.contract import ModelInterfaceError, check_interface

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad archives; all mean "unusable"
        reason = one_line(exc)
        raise ModelLoadError(f"cannot load model {path}: {reason}") from exc
    try:
        size = check_interface(model)
    except ModelInterfaceError as exc:
        raise ModelLoadError(f"not an agebatch model ({path}): {exc}") from exc
    from agebatch.scanning.precision import full_precision

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
        from agebatch.scanning.engines import checked_twin, tflite_path_for
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
        self._model = None
        self._run = None
        self.engine = "keras"
        lite = tflite_path_for(self.model_path)
        if engine == "tflite" and not lite.is_file():
            raise ModelLoadError(f"--engine tflite needs {lite} beside the model")
        if engine in ("auto", "tflite") and lite.is_file():
            self._run = self._checked_runner(lite, checked_twin(self.model_path, lite), required=engine == "tflite")
        if self._run is not None:
            self.engine = "tflite"
            self.image_size = self._run.image_size  # Keras loads only if someone asks for .model
        else:
            self._model, self.image_size = load_model(self.model_path)

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
        log.warning("agebatch: warning: ignoring the LiteRT twin, running the Keras model: %s", problem)
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
        """All raw outputs for uint8 faces (n, size, size, 3), the age interval included."""
        run = flip_averaged(self._compiled()) if self.flip_average else self._compiled()
        return run_in_batches(run, faces, self.batch_size)

    def predict_array(self, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for uint8 faces: ages (n,) and female probabilities (n,)."""
        estimates = self.estimate(faces)
        return estimates.ages, estimates.females

    def predict(self, faces: Sequence[Image.Image | np.ndarray]) -> list[Prediction]:
        estimates = self.estimate(self.as_array(faces))
        return [estimates.prediction(i) for i in range(len(estimates))]


def run_in_batches(run, faces, batch_size: int) -> Estimates:
    """Feed uint8 ``faces`` to ``run`` in chunks of ``batch_size``, so memory stays bounded (``faces``
    may be a memory-mapped array). ``run`` takes a float batch in [0, 1] and returns ages and female
    probabilities, and the age distribution when the model has one."""
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
    low, high = age_interval(np.concatenate(parts[2]))
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
