"""Faces over time: when the photos were taken (the results' ``taken_at``), by day, week or month.

Faces are tallied per calendar day while the results stream by (a day's tally is a small histogram),
then grouped into periods whose length suits the span: days for two months or less, ISO weeks for two
years or less, months beyond. Files written before ``taken_at`` existed, and photos without a capture
date, are said to be missing rather than guessed from file times.
"""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd

from agebatch.contract import REPORT_MAX_AGE
from agebatch.reporting.estimates import median_of_histogram, share_with_interval

COLUMN = "taken_at"
DAY_SPAN_LIMIT = 62  # days: up to two months, one bar per day
WEEK_SPAN_LIMIT = 731  # days: up to two years, one bar per ISO week; months beyond
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")


def add_days(days: dict, taken_at: pd.Series, ages: np.ndarray, male: np.ndarray, female: np.ndarray) -> int:
    """Tally faces into ``days`` (``"YYYY-MM-DD"`` -> [faces, male, female, age histogram]); returns
    how many faces had a usable date."""
    day = taken_at.fillna("").astype(str).str[:10].to_numpy()
    usable = np.array([bool(_DAY.match(d)) for d in day], dtype=bool)
    if not usable.any():
        return 0
    frame = pd.DataFrame(
        {
            "day": day[usable],
            "age": np.clip(np.floor(ages[usable]), 0, REPORT_MAX_AGE).astype(int),
            "male": male[usable],
            "female": female[usable],
        }
    )
    for name, group in frame.groupby("day", sort=False):
        ages_seen = np.bincount(group["age"].to_numpy(), minlength=REPORT_MAX_AGE + 1)
        _add(days, name, len(group), int(group["male"].sum()), int(group["female"].sum()), ages_seen)
    return int(usable.sum())


def merge_days(into: dict, other: dict) -> None:
    for name, entry in other.items():
        _add(into, name, *entry)


def _add(tallies: dict, key: str, faces: int, male: int, female: int, ages: np.ndarray) -> None:
    """Add one group's counts to ``tallies[key]`` ([faces, male, female, age histogram]), new or not."""
    entry = tallies.setdefault(key, [0, 0, 0, np.zeros(REPORT_MAX_AGE + 1, np.int64)])
    entry[0] += faces
    entry[1] += male
    entry[2] += female
    entry[3] += ages


def _period(day: dt.date, granularity: str) -> str:
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year}-{day.month:02d}"


def summarise(days: dict, has_column: bool, faces: int, rates: list | None = None) -> dict:
    """Per-period faces, median age and female share (with intervals), or why there are none."""
    if not has_column:
        return {"periods": [], "reason": "these results were written before agebatch recorded capture dates"}
    parsed = {}
    for name, entry in days.items():
        try:
            parsed[dt.date.fromisoformat(name)] = entry
        except ValueError:
            continue
    if not parsed:
        return {"periods": [], "reason": "none of the photos says when it was taken (no EXIF date)"}
    span = (max(parsed) - min(parsed)).days
    granularity = "day" if span <= DAY_SPAN_LIMIT else "week" if span <= WEEK_SPAN_LIMIT else "month"
    periods: dict[str, list] = {}
    for day in sorted(parsed):
        _add(periods, _period(day, granularity), *parsed[day])
    dated = sum(e[0] for e in periods.values())
    return {
        "granularity": granularity,
        "dated_faces": dated,
        "undated_faces": max(0, faces - dated),
        "periods": [
            {
                "period": name,
                "faces": entry[0],
                "median_age": median_of_histogram(entry[3]),
                "female_share": share_with_interval(entry[2], entry[1] + entry[2], *(rates or [None, None])),
            }
            for name, entry in periods.items()
        ],
    }
