"""Labelled faces from several kinds of source, as one table that training and evaluation read.

Three kinds, told apart by what the path is:

- a folder without ``labels.csv``: UTKFace style, labels in the file names
  (``age_gender_race_datetime.jpg``);
- a folder with ``labels.csv``, or a ``.csv`` file: one row per image, columns ``file`` (or ``path``),
  ``age``, ``gender`` and optionally ``race`` (or ``group``); paths are relative to the CSV's folder.
  FairFace's labels are this kind.

An age is either a number (an exact age) or a band: ``20-29``, ``70+`` or ``more than 70``. Exact ages
and bands both train the age head (see ``agedist``); a band is kept as its inclusive year range.
Gender is ``male``/``female`` (also ``m``/``f``/``0``/``1``, any case). A row that cannot be read is
counted and reported in one warning, never a crash: a wrong label is worse than a missing one.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch import contract
from agebatch.training import dataset

log = logging.getLogger(__name__)

LABELS_FILE = "labels.csv"
MAX_AGE = 100  # the age head's last bin holds 100 and over
COLUMNS = ("source", "file", "path", "age", "age_low", "age_high", "gender", "race")
UTK_RACES = dataset.RACES

_BAND = re.compile(r"^\s*(\d{1,3})\s*-\s*(\d{1,3})\s*$")
_OPEN_BAND = re.compile(r"^\s*(?:(\d{1,3})\s*\+|more than\s*(\d{1,3}))\s*$", re.I)
_GENDERS = {"male": 0, "m": 0, "man": 0, "0": 0, "female": 1, "f": 1, "woman": 1, "1": 1}


@dataclass(frozen=True)
class AgeLabel:
    """An exact age (``low == high == age``) or an inclusive band of years (``age`` is NaN)."""

    age: float
    low: int
    high: int


def parse_age(text: object) -> AgeLabel | None:
    """An ``AgeLabel`` from ``"34"``, ``"34.5"``, ``"20-29"``, ``"70+"`` or ``"more than 70"``; None if unreadable."""
    value = str(text).strip()
    band = _BAND.match(value)
    if band:
        low, high = int(band.group(1)), int(band.group(2))
        if low > high or high > 120:
            return None
        return AgeLabel(math.nan, min(low, MAX_AGE), min(high, MAX_AGE))
    open_band = _OPEN_BAND.match(value)
    if open_band:
        low = int(open_band.group(1) or open_band.group(2))
        return AgeLabel(math.nan, min(low, MAX_AGE), MAX_AGE) if low <= 120 else None
    try:
        age = float(value)
    except ValueError:
        return None
    if not 0 <= age <= 120 or math.isnan(age):
        return None
    year = min(int(age), MAX_AGE)
    return AgeLabel(age, year, year)


def parse_gender(text: object) -> int | None:
    """0 (male) or 1 (female) from the usual spellings; None if unreadable."""
    return _GENDERS.get(str(text).strip().lower())


def normalise_group(text: object) -> str:
    """A group (race) label in one spelling: lower case, words separated by single spaces."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return " ".join(re.split(r"[\s_]+", str(text).strip().lower()))


def kind_of(path: str | os.PathLike) -> str:
    """``"names"`` (UTKFace-style folder) or ``"csv"``; raises FileNotFoundError for a missing path."""
    path = Path(path)
    if path.is_file():
        return "csv"
    if path.is_dir():
        return "csv" if (path / LABELS_FILE).is_file() else "names"
    raise FileNotFoundError(f"labelled data not found: {path}")


def source_name(path: str | os.PathLike) -> str:
    """A short name for a source: its folder's name (``utkface``, ``fairface``) or the CSV's stem."""
    path = Path(path).resolve()
    if path.is_file():
        return path.parent.name if path.name == LABELS_FILE else path.stem
    return path.name


UNKNOWN_GENDER = -1  # a labels CSV row without a gender, where one may be missing (``adapt``)
UNKNOWN_WORDS = ("", "unknown", "na", "n/a", "?", "-", "none")  # how people write "not known" in a gender cell


def read_source(
    path: str | os.PathLike, name: str | None = None, gender_optional: bool = False
) -> tuple[pd.DataFrame, int]:
    """One source as a frame with ``COLUMNS``, sorted by file, and the number of rows skipped.

    With ``gender_optional`` a labels CSV may lack the gender column or leave cells empty: those rows
    get ``UNKNOWN_GENDER`` instead of being skipped."""
    name = name or source_name(path)
    if kind_of(path) == "names":
        return _read_names(Path(path).resolve(), name)
    csv = Path(path) if Path(path).is_file() else Path(path) / LABELS_FILE
    return _read_csv(csv, name, gender_optional)


def read_sources(paths: list[str | os.PathLike], gender_optional: bool = False) -> tuple[pd.DataFrame, int]:
    """Every source in ``paths`` in one frame (sources keep their order), and the rows skipped in all."""
    frames, skipped, names = [], 0, set()
    for path in paths:
        name = source_name(path)
        while name in names:  # two folders with one name: keep them apart
            name += "+"
        names.add(name)
        frame, bad = read_source(path, name, gender_optional)
        frames.append(frame)
        skipped += bad
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COLUMNS))
    return frame, skipped


def _read_names(root: Path, name: str) -> tuple[pd.DataFrame, int]:
    labels, skipped = dataset.read_labels(root)
    frame = pd.DataFrame(
        {
            "source": name,
            "file": labels["file"],
            "path": [str(root / f) for f in labels["file"]],
            "age": labels["age"].astype(float),
            "age_low": labels["age"].clip(upper=MAX_AGE).astype(int),
            "age_high": labels["age"].clip(upper=MAX_AGE).astype(int),
            "gender": labels["gender"].astype(int),
            "race": [UTK_RACES[r] for r in labels["race"]],
        },
        columns=list(COLUMNS),
    )
    return frame, len(skipped)


def _read_csv(csv: Path, name: str, gender_optional: bool = False) -> tuple[pd.DataFrame, int]:
    try:
        table = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{csv}: not a readable labels CSV ({exc})") from exc
    columns = {c.strip().lower(): c for c in table.columns}
    file_column = columns.get("file") or columns.get("path")
    if file_column is None or "age" not in columns or ("gender" not in columns and not gender_optional):
        needed = "age and gender" if not gender_optional else "and age (gender optional)"
        raise ValueError(f"{csv}: a labels CSV needs columns file (or path), {needed}; has {list(table.columns)}")
    group_column = columns.get("race") or columns.get("group")
    root = csv.parent.resolve()
    rows, bad, outside, seen = [], [], [], set()
    for index, record in enumerate(table.to_dict("records"), start=2):  # line numbers as a spreadsheet shows them
        relative = str(record[file_column]).strip()
        age = parse_age(record[columns["age"]])
        written = str(record[columns["gender"]]).strip() if "gender" in columns else ""
        unknown = gender_optional and written.lower() in UNKNOWN_WORDS
        gender = UNKNOWN_GENDER if unknown else parse_gender(written)
        try:
            image = (root / relative).resolve() if relative else None
            usable = image is not None and image.is_file()
        except (OSError, RuntimeError, ValueError):  # a link loop, a name too long, a NUL byte: this row only
            image, usable = None, False
        if image is not None and not image.is_relative_to(root):
            outside.append(index)  # a label names its image inside the CSV's folder, never elsewhere
            continue
        if not usable or age is None or gender is None or str(image) in seen:
            bad.append(index)
            continue
        seen.add(str(image))
        group = normalise_group(record[group_column]) if group_column else ""
        rows.append((name, relative, str(image), age.age, age.low, age.high, gender, group))
    _warn_skipped(csv, bad, "with a missing or repeated image, or an unreadable age or gender")
    _warn_skipped(csv, outside, "naming a file outside the CSV's folder")
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("file", kind="stable").reset_index(drop=True)
    return frame, len(bad) + len(outside)


def _warn_skipped(csv: Path, lines: list[int], why: str) -> None:
    if lines:
        shown = ", ".join(map(str, lines[:5])) + (" ..." if len(lines) > 5 else "")
        log.warning("%s: skipped %d row(s) %s (lines %s)", csv, len(lines), why, shown)


def band_of(frame: pd.DataFrame) -> pd.Series:
    """The report's age band of each row's lower age bound (exact ages: the age itself)."""
    return frame["age_low"].map(contract.age_band)


def balance_weights(frame: pd.DataFrame, power: float = 0.5) -> np.ndarray:
    """Per-face weights (mean 1) so no source, group, age band or gender dominates training.

    Each face weighs ``count(stratum) ** -power`` where the stratum is (source, group, age band,
    gender); each source's total is then set in proportion to the square root of its size, so a large
    source still counts for more, but not in proportion. ``power`` 0 turns the first part off.
    """
    if frame.empty:
        return np.ones(0, "float32")
    key = frame["source"] + "/" + frame["race"] + "/" + band_of(frame) + "/" + frame["gender"].astype(str)
    weights = key.map(key.value_counts()).to_numpy(float) ** -power
    sources = frame["source"].to_numpy()
    for source in np.unique(sources):
        mask = sources == source
        weights[mask] *= math.sqrt(mask.sum()) / weights[mask].sum()
    return (weights / weights.mean()).astype("float32")
