"""The one place a detected face and its estimate become columns of a row.

``scan`` writes these columns into the results file (``results.schema`` orders them), ``predict
--json`` and the web app's "Try photos" page show the same ones, so a new per-face column is added
here and in the schema, and every output has it.
"""

from __future__ import annotations

from agebatch.contract import AGE_INTERVAL
from agebatch.scanning.facebox import Face
from agebatch.scanning.predictor import Prediction

BOX_COLUMNS = ("x", "y", "width", "height")
# female_prob says again what gender and gender_prob say; results files keep it for the report's sums,
# the views a person reads leave it out.
RESULTS_ONLY = ("female_prob",)


def face_columns(index: int, face: Face, prediction: Prediction) -> dict:
    """The per-face columns of a results row: number, box (whole pixels), detector score and estimates."""
    return {
        "face": index,
        "x": round(face.x),
        "y": round(face.y),
        "width": round(face.width),
        "height": round(face.height),
        "age": prediction.age,
        "age_low": prediction.age_low,
        "age_high": prediction.age_high,
        "gender": prediction.gender,
        "gender_prob": prediction.gender_prob,
        "female_prob": prediction.female_prob,
        "face_score": round(face.score, 4),
    }


def shown_columns(index: int, face: Face, prediction: Prediction) -> dict:
    """``face_columns`` as the web app shows them: without the results-only columns."""
    return {k: v for k, v in face_columns(index, face, prediction).items() if k not in RESULTS_ONLY}


def face_record(path: str, index: int, face: Face, prediction: Prediction) -> dict:
    """A face as ``predict --json`` prints it: its path, then ``shown_columns`` with the box as one
    ``[x, y, width, height]`` list in the place of its four columns, and ``age_interval``: how often
    ``age_low``..``age_high`` is meant to hold the true age (0.8), so a script need not guess."""
    columns = shown_columns(index, face, prediction)
    record: dict = {"path": path}
    for key, value in columns.items():
        if key == BOX_COLUMNS[0]:
            record["box"] = [columns[name] for name in BOX_COLUMNS]
        elif key not in BOX_COLUMNS:
            record[key] = value
    if record.get("age_low") is not None:
        record["age_interval"] = AGE_INTERVAL
    return record
