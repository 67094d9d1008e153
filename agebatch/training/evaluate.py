"""Scoring a model on labelled faces: overall, per age band, gender and race.

The numbers here are the ones the model card and the README quote, so they are computed in one place
from plain arrays; ``score`` knows nothing about Keras and is tested on hand-computed examples.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd

from agebatch import contract
from agebatch.common import atomic
from agebatch.common.htmlpage import page
from agebatch.training import dataset, sources, splits


def predict_with(run, images: np.ndarray, batch_size: int = 64) -> pd.DataFrame:
    """``predictor.run_in_batches`` as a frame with columns ``pred_age, pred_female``."""
    from agebatch.scanning.predictor import run_in_batches

    estimates = run_in_batches(run, images, batch_size)
    return pd.DataFrame({"pred_age": estimates.ages, "pred_female": estimates.females})


def predict_arrays(model, images: np.ndarray, batch_size: int = 64, flip_average: bool = False) -> pd.DataFrame:
    """``predict_with`` for a Keras model (chunks of 16 batches through ``model.predict``)."""
    from agebatch.scanning.predictor import flip_averaged

    def run(chunk):
        out = model.predict(chunk, batch_size=batch_size, verbose=0)
        return out["age_output"], np.asarray(out["gender_output"])[:, 1]

    return predict_with(flip_averaged(run) if flip_average else run, images, batch_size * 16)


def mean_estimates(estimates: list[pd.DataFrame]) -> pd.DataFrame:
    """Face-by-face mean of several ``predict_with`` results (views of the faces, or several models)."""
    return sum(estimates[1:], estimates[0]) / len(estimates)


ECE_BINS = 10


def calibration_error(female_prob, true_gender, bins: int = ECE_BINS) -> float:
    """Expected calibration error of the gender call: the mean gap, weighted by faces, between the
    stated confidence (max(p, 1 - p)) and the share called right, over ``bins`` confidence bins."""
    p = np.asarray(female_prob, float)
    confidence = np.maximum(p, 1 - p)
    correct = (p >= 0.5).astype(int) == np.asarray(true_gender, int)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.sum() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(gap / max(len(p), 1))


def _recalls(true_gender: np.ndarray, pred_gender: np.ndarray) -> dict:
    """How often real women are called female and real men male (for the report's correction)."""
    out = {}
    for name, value in (("female_recall", 1), ("male_recall", 0)):
        mask = true_gender == value
        if mask.any():
            out[name] = float(np.mean(pred_gender[mask] == value))
    return out


def _metrics(part: pd.DataFrame) -> dict:
    """Figures for faces with true ``age`` (NaN where only a band is known), ``age_low``/``age_high``,
    ``gender`` and predicted ``pred_age``, ``pred_female``."""
    n = len(part)
    if n == 0:
        return {"n": 0}
    pred_gender = (part["pred_female"].to_numpy() >= 0.5).astype(int)
    result = {
        "n": int(n),
        "gender_accuracy": float(np.mean(pred_gender == part["gender"].to_numpy())),
        **_recalls(part["gender"].to_numpy(), pred_gender),
        "gender_ece": calibration_error(part["pred_female"], part["gender"]),
    }
    exact = part[part["age"].notna()]
    if len(exact):
        error = exact["pred_age"].to_numpy(float) - exact["age"].to_numpy(float)
        result.update(
            n_exact_age=int(len(exact)),
            age_mae=float(np.mean(np.abs(error))),
            age_rmse=float(math.sqrt(np.mean(error**2))),
            age_within_5=float(np.mean(np.abs(error) <= 5)),
            age_bias=float(np.mean(error)),
        )
    banded = part[part["age"].isna()]
    if len(banded):  # the predicted age's whole years fall inside the labelled band
        pred = banded["pred_age"].to_numpy(float)
        hit = (pred >= banded["age_low"].to_numpy(float)) & (pred < banded["age_high"].to_numpy(float) + 1)
        result.update(n_age_band=int(len(banded)), age_band_accuracy=float(np.mean(hit)))
    return result


def confusion(true_gender, pred_gender) -> list[list[int]]:
    """2x2 counts: rows are true (male, female), columns predicted (male, female)."""
    matrix = np.zeros((2, 2), dtype=int)
    np.add.at(matrix, (np.asarray(true_gender, int), np.asarray(pred_gender, int)), 1)
    return matrix.tolist()


def _with_label_columns(truth: pd.DataFrame) -> pd.DataFrame:
    """``truth`` with the columns scoring needs, for frames from ``dataset`` (exact ages, race numbers)."""
    data = truth.reset_index(drop=True).copy()
    data["age"] = data["age"].astype(float)
    if "age_low" not in data:
        data["age_low"] = data["age"].clip(upper=100).astype(int)
        data["age_high"] = data["age_low"]
    if "race" in data and pd.api.types.is_integer_dtype(data["race"]):
        data["race"] = data["race"].map(lambda r: dataset.RACES[r] if 0 <= r < len(dataset.RACES) else str(r))
    return data


def score(truth: pd.DataFrame, predictions: pd.DataFrame) -> dict:
    """All evaluation figures for labelled faces and their predictions (``pred_age, pred_female``).

    Returns ``overall`` plus ``by_age_band`` (faces with an exact age), ``by_label_band`` (faces
    labelled with a band, such as FairFace's), ``by_gender``, ``by_race`` (each a dict of the same
    metrics) and ``race_gender_gap``: the spread of gender accuracy between the best and worst race
    group. With several sources, ``by_source`` holds the same figures for each.
    """
    data = _with_label_columns(truth)
    data["pred_age"] = predictions["pred_age"].to_numpy()
    data["pred_female"] = predictions["pred_female"].to_numpy()
    result = _score_frame(data)
    if "source" in data and data["source"].nunique() > 1:
        result["by_source"] = {name: _score_frame(part) for name, part in data.groupby("source", sort=False)}
    return result


def band_confusion(true_ages, predicted_ages) -> dict:
    """Faces per (true report age band, estimated band): what the report's corrected band shares undo."""
    from agebatch.modelfile.intervals import band_index

    bands = len(contract.AGE_BAND_LABELS)
    counts = np.zeros((bands, bands), int)
    np.add.at(counts, (band_index(np.asarray(true_ages, float)), band_index(np.asarray(predicted_ages, float))), 1)
    return {"bands": list(contract.AGE_BAND_LABELS), "counts": counts.tolist()}


def _score_frame(data: pd.DataFrame) -> dict:
    pred_gender = (data["pred_female"].to_numpy() >= 0.5).astype(int)
    result = {"overall": _metrics(data), "confusion": confusion(data["gender"], pred_gender)}
    result["confusion_labels"] = list(contract.GENDERS)
    exact = data[data["age"].notna()]
    band_order = [contract.age_band(low) for low, _ in contract.AGE_BANDS]
    bands = exact["age"].map(contract.age_band)
    result["by_age_band"] = {b: _metrics(exact[bands == b]) for b in band_order if (bands == b).any()}
    if len(exact):
        result["age_band_confusion"] = band_confusion(exact["age"], exact["pred_age"])
    banded = data[data["age"].isna()]
    if len(banded):
        labels = banded["age_low"].astype(str) + "-" + banded["age_high"].astype(str)
        order = labels.groupby(banded["age_low"].to_numpy()).first().tolist()
        result["by_label_band"] = {band: _metrics(banded[labels == band]) for band in order}
    result["by_gender"] = {
        contract.GENDERS[g]: _metrics(data[data["gender"] == g]) for g in (0, 1) if (data["gender"] == g).any()
    }
    if "race" in data and (data["race"] != "").any():
        groups = [g for g in pd.unique(data["race"]) if g != ""]
        result["by_race"] = {g: _metrics(data[data["race"] == g]) for g in sorted(groups)}
        accuracies = {k: v["gender_accuracy"] for k, v in result["by_race"].items()}
        best, worst = max(accuracies, key=accuracies.get), min(accuracies, key=accuracies.get)
        result["race_gender_gap"] = {"best": best, "worst": worst, "gap": accuracies[best] - accuracies[worst]}
    return result


def evaluate_folder(
    model_path: str | os.PathLike,
    data: str | os.PathLike | list[str | os.PathLike],
    split_file: str | os.PathLike | None = None,
    split: str = "test",
    batch_size: int = 64,
    limit: int | None = None,
    flip_average: bool = False,
) -> dict:
    """Score a saved model on labelled sources (see ``sources``), or on one part of a saved split of them.

    With several sources the result also holds each source's figures under ``by_source``.
    """
    from agebatch.modelfile.load import load_model

    paths = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    model, image_size = load_model(model_path)
    frame, _ = sources.read_sources(paths)
    if split_file is not None:
        frame = splits.saved_parts(frame, pd.read_csv(split_file))
        frame = frame[frame["split"] == split].reset_index(drop=True)
    if limit:
        frame = frame.head(limit)
    if frame.empty:
        raise ValueError(f"no labelled images to evaluate in {', '.join(map(str, paths))}")
    frame, images, unreadable = dataset.readable_faces(frame, "path", "/", image_size)
    if frame.empty:
        raise ValueError(f"none of the {unreadable} labelled images in {', '.join(map(str, paths))} could be decoded")
    result = score(frame, predict_arrays(model, images, batch_size, flip_average))
    result["unreadable"] = unreadable
    result["flip_average"] = flip_average
    result["model"] = str(model_path)
    result["data"] = ", ".join(map(str, paths))
    result["split"] = split if split_file is not None else "all"
    return result


def format_text(result: dict) -> str:
    """A readable summary for the terminal (the same figures ``--json`` prints)."""
    lines = [
        f"{result['overall']['n']} faces ({result.get('split', '')}) from {result.get('data', '')}"
        + (", each also mirrored (flip-averaged)" if result.get("flip_average") else ""),
        *_summary_lines(result),
    ]
    for source, scored in (result.get("by_source") or {}).items():
        lines += ["", f"source {source}: {scored['overall']['n']} faces", *_summary_lines(scored)]
    return "\n".join(lines)


def _summary_lines(result: dict) -> list[str]:
    o = result["overall"]
    lines = []
    if "age_mae" in o:
        lines.append(
            f"age:    MAE {o['age_mae']:.2f} y, RMSE {o['age_rmse']:.2f} y, within 5 y {100 * o['age_within_5']:.1f}%"
        )
    if "age_band_accuracy" in o:
        lines.append(f"age band right: {100 * o['age_band_accuracy']:.1f}% of {o['n_age_band']} band-labelled faces")
    lines.append(
        f"gender: accuracy {100 * o['gender_accuracy']:.1f}%, calibration error {100 * o['gender_ece']:.1f}%  "
        f"confusion (rows true m/f, cols predicted) {result['confusion']}"
    )
    for title, key in (
        ("age band", "by_age_band"),
        ("labelled band", "by_label_band"),
        ("gender", "by_gender"),
        ("race", "by_race"),
    ):
        for name, m in (result.get(key) or {}).items():
            age = (
                f"MAE {m['age_mae']:5.2f}"
                if "age_mae" in m
                else f"band right {100 * m.get('age_band_accuracy', 0):5.1f}%"
            )
            lines.append(f"  {title} {name:>16}  n={m['n']:>5}  {age}  gender {100 * m['gender_accuracy']:5.1f}%")
    if "race_gender_gap" in result:
        gap = result["race_gender_gap"]
        lines.append(
            f"largest per-race gender-accuracy gap: {100 * gap['gap']:.1f} points ({gap['best']} vs {gap['worst']})"
        )
    return lines


def write_html(result: dict, path: str | os.PathLike) -> None:
    """An offline HTML page with the per-group bars and the confusion matrix."""
    import html as html_lib

    from plotly.subplots import make_subplots

    groups = [("by_age_band", "age band"), ("by_gender", "gender"), ("by_race", "race")]
    figure = make_subplots(
        rows=2,
        cols=3,
        subplot_titles=[f"age MAE by {t}" for _, t in groups] + [f"gender accuracy by {t}" for _, t in groups],
    )
    for col, (key, _) in enumerate(groups, start=1):
        data = result.get(key) or {}
        names = list(data)
        figure.add_bar(x=names, y=[data[n].get("age_mae") for n in names], row=1, col=col, showlegend=False)
        figure.add_bar(x=names, y=[data[n]["gender_accuracy"] for n in names], row=2, col=col, showlegend=False)
    figure.update_layout(height=700, template="plotly_white", title="agebatch evaluation")
    body = figure.to_html(include_plotlyjs=True, full_html=False)
    summary = html_lib.escape(format_text(result))
    atomic.write_text(path, page("agebatch evaluation", f"<pre>{summary}</pre>{body}"))
