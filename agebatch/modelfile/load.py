"""The model file: where the one ``scan`` uses is, and loading it safely.

A model file is untrusted input like any other: it is checked as an archive before Keras sees it,
loaded with Keras safe mode (no Python code inside Lambda layers can run) and checked for the
agebatch interface; every way that can fail becomes a ``ModelLoadError`` with a one-line message.
"""

from __future__ import annotations

import os
import zipfile
from importlib import resources
from pathlib import Path

from agebatch.common.errors import SetupError
from agebatch.common.text import one_line, printable

MODEL_ENV = "AGEBATCH_MODEL"
DEFAULT_MODEL_NAME = "agebatch.keras"


class ModelLoadError(SetupError):
    """A model path that does not give a usable agebatch model; ``str()`` is one line."""


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

    quiet.load_tensorflow(f"loading {path.name} with Keras")  # first: Keras' start-up notices stay quiet
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
    from agebatch.modelfile.precision import full_precision

    return full_precision(model), size  # a file stored in half precision still computes in float32
