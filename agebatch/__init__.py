"""agebatch: age and gender estimates for every face in a folder of photos.

The command line (``agebatch scan|report|train|evaluate|combine|predict|explain``) is a thin shell over this API::

    from agebatch import scan, Predictor
    frame = scan("photos/")                 # pandas DataFrame, one row per face
    predictor = Predictor()                 # the shipped model, loaded once
    predictor.predict([PIL.Image.open("face.jpg")])

Heavy modules (TensorFlow) load on first use, so ``import agebatch`` is cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "scan": ("agebatch.scanner", "scan"),
    "scan_to_file": ("agebatch.scanner", "scan_to_file"),
    "ScanOptions": ("agebatch.scanner", "ScanOptions"),
    "ScanSummary": ("agebatch.scanner", "ScanSummary"),
    "Predictor": ("agebatch.predictor", "Predictor"),
    "Prediction": ("agebatch.predictor", "Prediction"),
    "load_model": ("agebatch.predictor", "load_model"),
    "ModelLoadError": ("agebatch.predictor", "ModelLoadError"),
    "discover": ("agebatch.discovery", "discover"),
    "decode": ("agebatch.images", "decode"),
    "ImageError": ("agebatch.images", "ImageError"),
    "train": ("agebatch.train", "train"),
    "TrainConfig": ("agebatch.train_config", "TrainConfig"),
    "evaluate_folder": ("agebatch.evaluate", "evaluate_folder"),
    "combine": ("agebatch.ensemble", "combine"),
    "write_ensemble": ("agebatch.ensemble", "write_ensemble"),
    "build_report": ("agebatch.report", "build_report"),
    "write_report": ("agebatch.report", "write_report"),
    "grad_cam": ("agebatch.explain", "grad_cam"),
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agebatch' has no attribute {name!r}")
