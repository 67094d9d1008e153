"""From results files to a demographic report: streaming aggregation, then HTML or JSON.

Results are read in chunks and reduced to counts (age histograms in 1-year bins, gender counts,
per-folder tallies), so a million-row CSV needs the memory of one chunk, and the report's size depends
on the number of folders, not of faces. Rendering lives in ``report_html``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common import atomic
from agebatch.common.files import open_regular, read_regular
from agebatch.common.text import one_line
from agebatch.contract import AGE_BAND_LABELS, AGE_BANDS, GENDERS, REPORT_MAX_AGE, age_band
from agebatch.reporting import timeline
from agebatch.reporting.estimates import error_rates, median_of_histogram, share_with_interval
from agebatch.reporting.options import BREAKDOWNS, ReportOptions
from agebatch.results import reason_group

_DEFAULTS = ReportOptions()

REQUIRED_COLUMNS = ("path", "face", "age", "gender", "gender_prob", "status", "error")
MAX_AGE = REPORT_MAX_AGE
AGE_GROUPS = list(AGE_BAND_LABELS)
ERROR_LIST_CAP = 200
CHUNK_ROWS = 200_000
TOP_LEVEL = "(top level)"


class ReportError(Exception):
    """A results file that cannot be reported on; one-line message."""


def _age_histogram(ages: np.ndarray) -> np.ndarray:
    bins = np.clip(np.floor(ages), 0, MAX_AGE).astype(np.int64)
    return np.bincount(bins, minlength=MAX_AGE + 1)


@dataclass
class FolderTally:
    faces: int = 0
    male: int = 0
    female: int = 0
    images: int = 0
    ages: np.ndarray = field(default_factory=lambda: np.zeros(MAX_AGE + 1, np.int64))

    def merge(self, other: FolderTally) -> None:
        self.faces += other.faces
        self.male += other.male
        self.female += other.female
        self.images += other.images
        self.ages += other.ages


@dataclass
class Tally:
    """Everything the report shows about one results file, as counts."""

    name: str
    rows: int = 0
    images: int = 0
    faces: int = 0
    no_face: int = 0
    errors: int = 0
    low_confidence: int = 0
    excluded_low_confidence: int = 0
    ages: np.ndarray = field(default_factory=lambda: np.zeros(MAX_AGE + 1, np.int64))
    ages_by_gender: dict = field(default_factory=lambda: {g: np.zeros(MAX_AGE + 1, np.int64) for g in GENDERS})
    gender_prob_bins: np.ndarray = field(default_factory=lambda: np.zeros(10, np.int64))  # 0.5..1.0
    faces_per_image: Counter = field(default_factory=Counter)
    error_reasons: Counter = field(default_factory=Counter)
    error_examples: list = field(default_factory=list)
    folders: dict = field(default_factory=dict)  # parent folder -> FolderTally
    days: dict = field(default_factory=dict)  # capture day -> tallies (see timeline)
    has_dates: bool = False  # the results have a taken_at column at all

    @property
    def gender_counts(self) -> dict:
        return {g: int(self.ages_by_gender[g].sum()) for g in GENDERS}


# -- reading ------------------------------------------------------------------------------------
def _read_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """Chunks of a results file with the required columns as strings (so nothing is guessed)."""
    if path.is_dir():
        raise ReportError(f"{path} is a folder; give the results file(s) that agebatch scan wrote")
    if not path.is_file():
        raise ReportError(f"results file not found: {path}")
    try:  # the content decides, not the name: a .json or .txt holding JSON Lines still reads
        first = read_regular(path, 1 << 16, first_line=True)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {one_line(exc)}") from exc
    is_jsonl = first.lstrip().startswith(b"{")
    try:
        if is_jsonl:
            reader = pd.read_json(path, lines=True, chunksize=CHUNK_ROWS, dtype=False)
        else:
            with open(path, encoding="utf-8", errors="replace", newline="") as handle:
                header_line = handle.readline()
            if not header_line.strip():
                return
            import csv

            columns = next(csv.reader([header_line]))
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ReportError(f"{path} is missing column(s) {', '.join(missing)}: is it an agebatch results file?")
            wanted = [c for c in (*REQUIRED_COLUMNS, "faces", timeline.COLUMN) if c in columns]
            reader = pd.read_csv(
                path,
                usecols=wanted,
                dtype=str,
                keep_default_na=False,
                chunksize=CHUNK_ROWS,
                encoding="utf-8",
                encoding_errors="replace",
            )
        for chunk in reader:
            missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
            if missing:
                raise ReportError(f"{path} is missing column(s) {', '.join(missing)}: is it an agebatch results file?")
            yield chunk
    except ReportError:
        raise
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = one_line(exc)
        raise ReportError(f"cannot parse {path}: {reason}") from exc


def _as_text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).replace({"None": "", "nan": ""})


def _parent(paths: pd.Series) -> pd.Series:
    if paths.empty:
        return paths
    parts = paths.str.rpartition("/")
    return parts[0].where(parts[1] == "/", ".")


def tally_file(
    path: str | os.PathLike,
    min_gender_prob: float = _DEFAULTS.min_gender_prob,
    low_confidence: float = _DEFAULTS.low_confidence,
) -> Tally:
    """Stream one results file into a ``Tally``."""
    path = Path(path)
    tally = Tally(name=path.name)
    for chunk in _read_chunks(path):
        _add_chunk(tally, chunk, min_gender_prob, low_confidence)
    return tally


def _add_chunk(tally: Tally, chunk: pd.DataFrame, min_gender_prob: float, low_confidence: float) -> None:
    tally.rows += len(chunk)
    if chunk.empty:
        return
    status = _as_text(chunk["status"])
    face = _as_text(chunk["face"]).str.replace(".0", "", regex=False)
    first_row = face.isin(["", "0"])  # exactly one per image
    tally.images += int(first_row.sum())
    tally.no_face += int((status == "no_face").sum())
    errors = status == "error"
    tally.errors += int(errors.sum())
    if errors.any():
        reasons = _as_text(chunk.loc[errors, "error"])
        tally.error_reasons.update(reasons.map(reason_group))
        room = ERROR_LIST_CAP - len(tally.error_examples)
        if room > 0:
            sample = chunk.loc[errors, ["path", "error"]].head(room)
            tally.error_examples += [(str(p), str(e)) for p, e in sample.itertuples(index=False)]
    if "faces" in chunk:
        counts = pd.to_numeric(chunk.loc[first_row, "faces"], errors="coerce").fillna(0).astype(int)
        tally.faces_per_image.update(counts.clip(upper=10).tolist())

    ok = chunk[status == "ok"]
    parents_all = _parent(_as_text(chunk.loc[first_row, "path"]))
    for parent, n in parents_all.value_counts().items():
        tally.folders.setdefault(parent, FolderTally()).images += int(n)
    if ok.empty:
        return
    ages = pd.to_numeric(ok["age"], errors="coerce")
    probs = pd.to_numeric(ok["gender_prob"], errors="coerce").fillna(0.0)
    genders = _as_text(ok["gender"])
    valid = ages.notna()
    ages, probs, genders = ages[valid].to_numpy(float), probs[valid].to_numpy(float), genders[valid].to_numpy()
    parents = _parent(_as_text(ok.loc[valid, "path"])).to_numpy()
    tally.faces += len(ages)
    tally.ages += _age_histogram(ages)
    tally.low_confidence += int((probs < low_confidence).sum())
    tally.gender_prob_bins += np.bincount(np.clip(((probs - 0.5) * 20).astype(int), 0, 9), minlength=10)
    confident = probs >= min_gender_prob
    tally.excluded_low_confidence += int((~confident).sum())
    for gender in GENDERS:
        mask = confident & (genders == gender)
        tally.ages_by_gender[gender] += _age_histogram(ages[mask])
    frame = pd.DataFrame(
        {
            "parent": parents,
            "age": np.clip(np.floor(ages), 0, MAX_AGE).astype(int),
            "male": confident & (genders == "male"),
            "female": confident & (genders == "female"),
        }
    )
    if timeline.COLUMN in ok:
        tally.has_dates = True
        timeline.add_days(
            tally.days, ok.loc[valid, timeline.COLUMN], ages, frame["male"].to_numpy(), frame["female"].to_numpy()
        )
    for parent, group in frame.groupby("parent", sort=False):
        folder = tally.folders.setdefault(parent, FolderTally())
        folder.faces += len(group)
        folder.male += int(group["male"].sum())
        folder.female += int(group["female"].sum())
        folder.ages += np.bincount(group["age"].to_numpy(), minlength=MAX_AGE + 1)


# -- shaping ------------------------------------------------------------------------------------
def _common_root(folders: Iterable[str]) -> str:
    folders = [f for f in folders if f != "."]
    if not folders:
        return "."
    try:
        return os.path.commonpath(folders)
    except ValueError:  # absolute and relative paths mixed
        return ""


def folder_groups(tally: Tally, depth: int = 1) -> dict[str, FolderTally]:
    """Per-folder tallies merged to ``depth`` levels below the common root of all folders."""
    root = _common_root(tally.folders)
    groups: dict[str, FolderTally] = {}
    for folder, stats in tally.folders.items():
        relative = os.path.relpath(folder, root) if root not in ("", ".") or folder != "." else "."
        if root == "":
            relative = folder
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        key = "/".join(parts[:depth]) if parts else TOP_LEVEL
        groups.setdefault(key, FolderTally()).merge(stats)
    return dict(sorted(groups.items()))


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def group_table(tally: Tally) -> list[dict]:
    """Age group x gender counts from the 1-year histograms."""
    rows = []
    for low, high in AGE_BANDS:
        top = min(high, MAX_AGE) + 1
        male = int(tally.ages_by_gender["male"][low:top].sum())
        female = int(tally.ages_by_gender["female"][low:top].sum())
        rows.append({"group": age_band(low), "male": male, "female": female, "all": int(tally.ages[low:top].sum())})
    return rows


def summarise(tally: Tally, depth: int = 1) -> dict:
    """The JSON-able aggregates of one tally (what ``--format json`` writes and the HTML shows)."""
    genders = tally.gender_counts
    called = sum(genders.values())
    folders = folder_groups(tally, depth)
    return {
        "name": tally.name,
        "rows": tally.rows,
        "images": tally.images,
        "faces": tally.faces,
        "images_without_face": tally.no_face,
        "errors": tally.errors,
        "median_age": median_of_histogram(tally.ages),
        "gender_counts": genders,
        "gender_shares": {g: _share(n, called) for g, n in genders.items()},
        "low_confidence_faces": tally.low_confidence,
        "low_confidence_share": _share(tally.low_confidence, tally.faces),
        "excluded_from_gender_splits": tally.excluded_low_confidence,
        "age_histogram": tally.ages.tolist(),
        "age_histogram_by_gender": {g: h.tolist() for g, h in tally.ages_by_gender.items()},
        "gender_prob_histogram": {
            "edges": [round(0.5 + 0.05 * i, 2) for i in range(11)],
            "counts": tally.gender_prob_bins.tolist(),
        },
        "age_groups": group_table(tally),
        "_days": tally.days,  # replaced by "time" in add_estimates, which knows the model's error rates
        "_has_dates": tally.has_dates,
        "faces_per_image": {("10+" if k >= 10 else str(k)): v for k, v in sorted(tally.faces_per_image.items())},
        "errors_by_reason": dict(tally.error_reasons.most_common()),
        "error_files": [{"path": p, "error": e} for p, e in tally.error_examples],
        "folders": [
            {
                "folder": name,
                "images": f.images,
                "faces": f.faces,
                "median_age": median_of_histogram(f.ages),
                "male": f.male,
                "female": f.female,
                "male_share": _share(f.male, f.male + f.female),
                "female_share": _share(f.female, f.male + f.female),
            }
            for name, f in folders.items()
        ],
    }


def add_estimates(summary: dict, card: dict | None) -> None:
    """Female shares with 95 % intervals, raw and corrected for the model's gender errors (overall and
    per folder with the card's overall rates, per age group with that band's rates where it has them)."""
    card = card if card and not card.get("unreadable") else {}
    overall = card.get("gender_error_rates") or [None, None]
    by_band = card.get("gender_error_rates_by_age_band") or {}
    counts = summary["gender_counts"]
    summary["female_share"] = share_with_interval(counts["female"], counts["female"] + counts["male"], *overall)
    for group in summary["age_groups"]:
        rates = by_band.get(group["group"]) or overall
        group["female_share"] = share_with_interval(group["female"], group["female"] + group["male"], *rates)
    for folder in summary["folders"]:
        folder["female_share_estimate"] = share_with_interval(
            folder["female"], folder["female"] + folder["male"], *overall
        )
    summary["time"] = timeline.summarise(summary.pop("_days"), summary.pop("_has_dates"), summary["faces"], overall)


def combine(tallies: list[Tally]) -> Tally:
    total = Tally(name="all files")
    for t in tallies:
        for attr in ("rows", "images", "faces", "no_face", "errors", "low_confidence", "excluded_low_confidence"):
            setattr(total, attr, getattr(total, attr) + getattr(t, attr))
        total.ages += t.ages
        for g in GENDERS:
            total.ages_by_gender[g] += t.ages_by_gender[g]
        total.gender_prob_bins += t.gender_prob_bins
        total.faces_per_image.update(t.faces_per_image)
        total.error_reasons.update(t.error_reasons)
        total.error_examples += t.error_examples[: max(0, ERROR_LIST_CAP - len(total.error_examples))]
        for name, folder in t.folders.items():
            total.folders.setdefault(name, FolderTally()).merge(folder)
        timeline.merge_days(total.days, t.days)
        total.has_dates = total.has_dates or t.has_dates
    return total


def build_report(
    paths: Iterable[str | os.PathLike],
    depth: int = _DEFAULTS.depth,
    min_gender_prob: float = _DEFAULTS.min_gender_prob,
    low_confidence: float = _DEFAULTS.low_confidence,
    model_card: dict | None = None,
    by: Iterable[str] = _DEFAULTS.by,
) -> dict:
    """Aggregate one or more results files into the report's data (``--format json`` writes this).
    ``by`` orders the page's comparisons (folders, capture dates); the data holds both either way."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise ReportError("no results file given")
    by = list(dict.fromkeys(by))
    unknown = [b for b in by if b not in BREAKDOWNS]
    if unknown or not by:
        raise ReportError(f"cannot break down by {', '.join(unknown) or 'nothing'}: choose {' or '.join(BREAKDOWNS)}")
    tallies = [tally_file(p, min_gender_prob, low_confidence) for p in paths]
    overall = tallies[0] if len(tallies) == 1 else combine(tallies)
    card = _card_summary(model_card)
    summaries = [summarise(overall, depth)] + ([summarise(t, depth) for t in tallies] if len(tallies) > 1 else [])
    for summary in summaries:
        add_estimates(summary, card)
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "inputs": [str(p) for p in paths],
        "settings": {"depth": depth, "min_gender_prob": min_gender_prob, "low_confidence": low_confidence, "by": by},
        "model_card": card,
        "overall": summaries[0],
        "files": summaries[1:],
    }


def _rates(confusion) -> list[float] | None:
    rates = error_rates(confusion)
    return None if rates is None else [float(r) for r in rates]


def _number(value) -> float | None:
    """A figure from a model card, or None for anything that is not a number."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _card_summary(card: dict | None) -> dict | None:
    """The figures the report quotes from a model card. A card is optional data: one that does not
    have the expected shape gives ``{"unreadable": True}`` (the page says so) rather than an error."""
    if not card:
        return None
    try:
        metrics = card.get("test_metrics") or {}
        if not isinstance(card, dict):
            raise TypeError("a card is a JSON object")
        overall = metrics.get("overall") or {}
        gap = metrics.get("race_gender_gap")
        return {
            "name": str(card.get("name") or ""),
            "created": str(card.get("created") or ""),
            "age_mae": _number(overall.get("age_mae")),
            "gender_accuracy": _number(overall.get("gender_accuracy")),
            "test_faces": _number(overall.get("n")),
            "by_age_band": {str(k): _number(v.get("age_mae")) for k, v in (metrics.get("by_age_band") or {}).items()},
            "gender_accuracy_by_age_band": {
                str(k): _number(v.get("gender_accuracy")) for k, v in (metrics.get("by_age_band") or {}).items()
            },
            "gender_error_rates": _rates(metrics.get("confusion")),
            "gender_error_rates_by_age_band": {
                str(k): [_number(v.get("female_recall")), _number(v.get("male_recall"))]
                for k, v in (metrics.get("by_age_band") or {}).items()
                if _number(v.get("female_recall")) is not None and _number(v.get("male_recall")) is not None
            },
            "gender_accuracy_by_race": {
                str(k): _number(v.get("gender_accuracy")) for k, v in (metrics.get("by_race") or {}).items()
            },
            "race_gender_gap": {
                "best": str(gap.get("best")),
                "worst": str(gap.get("worst")),
                "gap": _number(gap.get("gap")),
            }
            if isinstance(gap, dict)
            else None,
            "by_source": {
                str(name): {
                    "faces": _number((scored.get("overall") or {}).get("n")),
                    "age_mae": _number((scored.get("overall") or {}).get("age_mae")),
                    "age_band_accuracy": _number((scored.get("overall") or {}).get("age_band_accuracy")),
                    "gender_accuracy": _number((scored.get("overall") or {}).get("gender_accuracy")),
                }
                for name, scored in (metrics.get("by_source") or {}).items()
            },
        }
    except (AttributeError, TypeError, ValueError, OverflowError):
        return {"unreadable": True}


def _is_report(path: Path) -> bool:
    """True for a report an earlier run wrote (HTML or JSON), or an empty file: only those are replaced,
    so a slip of ``--out`` (a photo, a results file, a document) never loses anything."""
    try:
        fd = open_regular(path)
    except (OSError, ValueError):
        return False
    try:
        head = os.read(fd, 4096)
    finally:
        os.close(fd)
    if not head:
        return True
    html = head.startswith(b"<!DOCTYPE html>") and b"<title>agebatch report</title>" in head
    return html or (head.lstrip().startswith(b"{") and b'"created"' in head and b'"inputs"' in head)


def write_report(data: dict, out: str | os.PathLike, fmt: str = "html", bins: int = _DEFAULTS.bins) -> Path:
    """Write the report atomically (temporary file, then rename) as HTML or JSON."""
    out = Path(out)
    try:
        atomic.check_output(out, data.get("inputs") or [])
    except atomic.UnsafeOutputError as exc:
        raise ReportError(str(exc)) from exc
    if out.exists() and not _is_report(out):
        raise ReportError(f"refusing to replace {out}: it exists and is not an agebatch report")
    return atomic.write_text(out, report_text(data, fmt, bins))


def report_text(data: dict, fmt: str = "html", bins: int = _DEFAULTS.bins) -> str:
    """The report as text: the HTML page, or the aggregates as JSON."""
    if fmt == "json":
        return json.dumps(data, indent=1)
    from agebatch.common.vendored import VendoredFileError
    from agebatch.reporting.html import render

    try:
        return render(data, bins=bins)
    except VendoredFileError as exc:
        raise ReportError(str(exc)) from exc
