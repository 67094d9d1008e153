"""The model card beside a model file: read once, here, for ``models``, ``report`` and the web app.

``training.modelcard`` writes cards; everything that only reads one comes here, so what counts as a
card (a JSON object of bounded size, named after its model) is decided in one place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agebatch.common.errors import SetupError
from agebatch.common.files import read_regular
from agebatch.common.text import one_line
from agebatch.modelfile.intervals import SHARES

CARD_SUFFIX = ".card.json"
CARD_LIMIT = 64 << 20  # a model card is JSON of a few hundred KB; more is not a card
SUMMARY_FIGURES = ("n", "age_mae", "gender_accuracy", "age_band_accuracy")  # what ``models`` shows per source


def card_path_for(model_path: str | os.PathLike) -> Path:
    """Where the card of the model at ``model_path`` (``.keras`` or its ``.tflite`` twin) lies."""
    path = Path(model_path)
    return path.with_name(path.name.removesuffix(".keras").removesuffix(".tflite") + CARD_SUFFIX)


def card_for_model(model_path: str | os.PathLike) -> dict | None:
    """The card saved beside a model file, if there is one and it parses."""
    try:
        card = json.loads(read_regular(card_path_for(model_path), CARD_LIMIT))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python goes
        return None
    return card if isinstance(card, dict) else None


def interval_shares_for(model_path: str | os.PathLike) -> dict | None:
    """``interval_shares`` of the card beside a model."""
    return interval_shares(card_for_model(model_path))


def interval_shares(card: dict | None) -> dict | None:
    """The calibrated interval shares in a card (``modelfile.intervals``), or None when it has none or
    they are not shares calibration can give: a damaged card means the plain central 80 %, not a crash."""
    calibration = (card or {}).get("calibration")
    shares = calibration.get("interval_shares") if isinstance(calibration, dict) else None
    if not isinstance(shares, dict) or not shares:
        return None
    low, high = SHARES[0], SHARES[-1]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high for v in shares.values()):
        return None
    return {str(k): float(v) for k, v in shares.items()}


def read_card(path: str | os.PathLike | None = None) -> dict | None:
    """The card a user named (``--model-card``; ``SetupError`` when it cannot be read), else the card of
    the model scans use by default, or None when that has none."""
    if path is None:
        from agebatch.modelfile.load import default_model_path

        return card_for_model(default_model_path())
    try:
        card = json.loads(read_regular(path, CARD_LIMIT))
    except (OSError, ValueError, RecursionError) as exc:
        raise SetupError(f"cannot read model card {path}: {one_line(exc)}") from exc
    return card


def headline_figures(card: dict) -> dict[str, dict]:
    """The card's headline test figures per source (one entry, ``test``, for a single-source card)."""
    metrics = card.get("test_metrics") or {}
    by_source = metrics.get("by_source") or {"test": metrics}
    return {
        name: {k: v for k, v in scored.get("overall", {}).items() if k in SUMMARY_FIGURES}
        for name, scored in by_source.items()
    }


def describe_model(path: Path, source: str) -> dict:
    """What ``agebatch models`` prints: the file, where it was chosen from (``source``), its SHA-256 and
    size, its LiteRT twin and whether the twin's record binds it, and the card's test figures."""
    from agebatch.modelfile.load import check_model_file
    from agebatch.modelfile.twin import checked_twin, file_sha256, int8_approved, tflite_path_for

    check_model_file(path)  # a photo or any other file given by mistake is not described as a model
    lite = tflite_path_for(path)
    small = tflite_path_for(path, "int8")
    card = card_for_model(path) or {}
    return {
        "model": str(path),
        "source": source,
        "sha256": file_sha256(path),
        "size_mb": round(path.stat().st_size / 1e6, 1),
        "litert_twin": str(lite) if lite.is_file() else None,
        "twin_verified": bool(lite.is_file() and checked_twin(path, lite)),
        "int8_twin": str(small) if small.is_file() else None,
        "int8_verified": bool(small.is_file() and checked_twin(path, small)),
        "int8_by_default": bool(small.is_file() and int8_approved(card)),
        "card": card.get("name"),
        "created": card.get("created"),
        "adapted": _adaptation_line(card.get("adaptation")),
        "test_figures": headline_figures(card),
    }


def _adaptation_line(record) -> str | None:
    """For a model made by ``agebatch adapt``: from what, on how many faces, which heads were refitted."""
    if not isinstance(record, dict):
        return None
    return (
        f"from {record.get('adapted_from')} on {record.get('faces')} labelled faces (age head {record.get('age_head')}, "
        f"gender head {record.get('gender_head')}); its figures are cross-validated on them (see its card)"
    )
