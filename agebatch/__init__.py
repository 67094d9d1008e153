"""agebatch: age and gender estimates for every face in a folder of photos.

The command line (``agebatch scan|merge|report|predict|explain|serve|train|evaluate|combine|models``) is a
thin shell over this API::

    from agebatch import scan, Predictor
    frame = scan("photos/")                 # pandas DataFrame, one row per face
    predictor = Predictor()                 # the shipped model, loaded once
    predictor.predict([PIL.Image.open("face.jpg")])

Heavy modules (TensorFlow) load on first use, so ``import agebatch`` is cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "scan": ("agebatch.scanning.scanner", "scan"),
    "scan_to_file": ("agebatch.scanning.scanner", "scan_to_file"),
    "ScanOptions": ("agebatch.scanning.options", "ScanOptions"),
    "ScanSummary": ("agebatch.scanning.scanner", "ScanSummary"),
    "Predictor": ("agebatch.scanning.predictor", "Predictor"),
    "Prediction": ("agebatch.scanning.predictor", "Prediction"),
    "load_model": ("agebatch.modelfile.load", "load_model"),
    "ModelLoadError": ("agebatch.modelfile.load", "ModelLoadError"),
    "discover": ("agebatch.scanning.discovery", "discover"),
    "decode": ("agebatch.scanning.images", "decode"),
    "ImageError": ("agebatch.scanning.images", "ImageError"),
    "train": ("agebatch.training.train", "train"),
    "TrainConfig": ("agebatch.training.config", "TrainConfig"),
    "evaluate_folder": ("agebatch.training.evaluate", "evaluate_folder"),
    "combine": ("agebatch.training.ensemble", "combine"),
    "write_ensemble": ("agebatch.training.ensemble", "write_ensemble"),
    "build_report": ("agebatch.reporting.aggregate", "build_report"),
    "write_report": ("agebatch.reporting.aggregate", "write_report"),
    "grad_cam": ("agebatch.scanning.explain", "grad_cam"),
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
