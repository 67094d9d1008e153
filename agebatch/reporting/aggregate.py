"""From tallies to the report's data (``build_report``), and that data written as HTML or JSON.

``tally`` reads the results files into counts; here they are shaped into shares, intervals, age groups,
folders and capture periods, with the model card's figures for "how to read this". The page itself is
``html`` (markup) and ``charts`` (figures).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from agebatch.common import atomic
from agebatch.contract import AGE_BAND_LABELS, AGE_BANDS, age_band
from agebatch.reporting import timeline
from agebatch.reporting.bandshares import band_shares
from agebatch.reporting.estimates import error_rates, median_of_histogram, share_with_interval
from agebatch.reporting.options import BREAKDOWNS, ReportOptions
from agebatch.reporting.tally import MAX_AGE, FolderTally, ReportError, Tally, common_root, relative_parts, tally_file

_DEFAULTS = ReportOptions()

AGE_GROUPS = list(AGE_BAND_LABELS)
TOP_LEVEL = "(top level)"


# -- shaping ------------------------------------------------------------------------------------
def folder_groups(tally: Tally, depth: int = 1) -> dict[str, FolderTally]:
    """Per-folder tallies merged to ``depth`` levels below the common root of all folders.

    Where results mix relative and absolute paths (files scanned from different places), the absolute
    folders keep their full path below their own common root, so ``/tmp/x/photos`` is not shown as a
    folder called "tmp" beside the relative ones."""
    absolute = [folder for folder in tally.folders if os.path.isabs(folder)]
    mixed = bool(absolute) and len(absolute) < len(tally.folders)
    root = common_root([f for f in tally.folders if not os.path.isabs(f)] if mixed else tally.folders)
    absolute_root = common_root(absolute) if mixed else ""
    groups: dict[str, FolderTally] = {}
    for folder, stats in tally.folders.items():
        if mixed and os.path.isabs(folder):
            key = os.path.join(absolute_root, *relative_parts(folder, absolute_root)[:depth])
        else:
            parts = relative_parts(folder, root)
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
        "videos": tally.videos,
        "people_in_videos": tally.people,
        "seconds_seen_per_person": round(tally.seconds_seen / tally.people, 1) if tally.people else None,
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
    summary["age_bands"] = band_shares(np.asarray(summary["age_histogram"]), card.get("age_band_confusion"))
    summary["time"] = timeline.summarise(summary.pop("_days"), summary.pop("_has_dates"), summary["faces"], overall)


def combine(tallies: list[Tally]) -> Tally:
    """One tally counting everything ``tallies`` counted (the report's "all files")."""
    total = Tally(name="all files")
    for tally in tallies:
        total.merge(tally)
    return total


def build_report(
    paths: Iterable[str | os.PathLike], options: ReportOptions | None = None, model_card: dict | None = None
) -> dict:
    """Aggregate one or more results files into the report's data (``--format json`` writes this).

    ``options.by`` orders the page's comparisons (folders, capture dates); the data holds both either way.
    ``model_card`` (``modelfile.card``) gives the "how to read this" figures and the corrected shares.
    """
    paths = [os.fspath(p) for p in paths]
    if not paths:
        raise ReportError("no results file given")
    options = options or ReportOptions()
    _check_breakdowns(options.by)
    tallies = [tally_file(p, options) for p in paths]
    return report_of(tallies, [str(p) for p in paths], options, model_card)


def _check_breakdowns(by: Iterable[str]) -> None:
    by = list(by)
    unknown = [b for b in by if b not in BREAKDOWNS]
    if unknown or not by:
        raise ReportError(f"cannot break down by {', '.join(unknown) or 'nothing'}: choose {' or '.join(BREAKDOWNS)}")


def report_of(tallies: list[Tally], inputs: list[str], options: ReportOptions, model_card: dict | None) -> dict:
    """The report's data from tallies already made (of files, or of rows in memory: ``tally_frame``)."""
    overall = tallies[0] if len(tallies) == 1 else combine(tallies)
    card = card_summary(model_card)
    depth = options.depth
    summaries = [summarise(overall, depth)] + ([summarise(t, depth) for t in tallies] if len(tallies) > 1 else [])
    for summary in summaries:
        add_estimates(summary, card)
    settings = {
        "depth": depth,
        "min_gender_prob": options.min_gender_prob,
        "low_confidence": options.low_confidence,
        "by": list(dict.fromkeys(options.by)),
    }
    return {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "inputs": inputs,
        "settings": settings,
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


def card_summary(card: dict | None) -> dict | None:
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
            "exact_age_faces": _number(overall.get("n_exact_age", overall.get("n"))),
            "age_bias": _number(overall.get("age_bias")),
            "by_age_band": {str(k): _number(v.get("age_mae")) for k, v in (metrics.get("by_age_band") or {}).items()},
            "bias_by_age_band": {
                str(k): _number(v.get("age_bias")) for k, v in (metrics.get("by_age_band") or {}).items()
            },
            "interval_coverage": _interval_coverage(card),
            "age_band_confusion": _mapping(metrics.get("age_band_confusion")).get("counts"),
            "adaptation": _adaptation(card),
            "gender_accuracy_by_age_band": {
                str(k): _number(v.get("gender_accuracy")) for k, v in (metrics.get("by_age_band") or {}).items()
            },
            "gender_error_rates": _rates(metrics.get("confusion")),
            "gender_error_rates_by_age_band": {
                str(k): [_number(v.get("female_recall")), _number(v.get("male_recall"))]
                for k, v in (metrics.get("by_age_band") or {}).items()
                if _number(v.get("female_recall")) is not None and _number(v.get("male_recall")) is not None
            },
            "bias_by_race": {str(k): _number(v.get("age_bias")) for k, v in (metrics.get("by_race") or {}).items()},
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


def _mapping(value) -> dict:
    """``value`` when it is a JSON object, else an empty one: one odd field of a card hides only itself."""
    return value if isinstance(value, dict) else {}


def _share_figure(value) -> float | None:
    number = _number(value)
    return number if number is not None and 0 <= number <= 1 else None


def _interval_coverage(card: dict) -> dict:
    """source -> how often the card's calibrated 80 % interval held on that source's test faces."""
    tested = _mapping(_mapping(_mapping(card.get("calibration")).get("interval_coverage")).get("test"))
    return {
        str(source): _share_figure(_mapping(_mapping(table).get("overall")).get("coverage"))
        for source, table in tested.items()
    }


def _adaptation(card: dict) -> dict | None:
    """For an adapted model: on how many of the user's faces, and its cross-validated figures."""
    record = card.get("adaptation")
    if not isinstance(record, dict):
        return None
    before, after = _mapping(record.get("cross_validated_before")), _mapping(record.get("cross_validated_after"))
    return {
        "faces": _number(record.get("faces")),
        "adapted_from": str(record.get("adapted_from") or ""),
        **{f"{key}_before": _number(before.get(key)) for key in ("age_mae", "band_distance", "interval_coverage")},
        **{f"{key}_after": _number(after.get(key)) for key in ("age_mae", "band_distance", "interval_coverage")},
    }


def is_report(head: bytes) -> bool:
    """True for the first bytes of a report an earlier run wrote (HTML or JSON): only those are
    replaced, so a slip of ``--out`` (a photo, a results file, a document) never loses anything."""
    html = head.startswith(b"<!DOCTYPE html>") and b"<title>agebatch report</title>" in head
    return html or (head.lstrip().startswith(b"{") and b'"created"' in head and b'"inputs"' in head)


def check_report_out(out: str | os.PathLike, inputs: Iterable[str | os.PathLike]) -> Path:
    """``out`` if a report may be written there (see ``atomic.check_output``); ``ReportError`` if not."""
    try:
        return atomic.check_output(out, inputs, is_report, "an agebatch report")
    except atomic.UnsafeOutputError as exc:
        raise ReportError(str(exc)) from exc


def write_report(data: dict, out: str | os.PathLike, fmt: str = "html", bins: int = _DEFAULTS.bins) -> Path:
    """Write the report atomically (temporary file, then rename) as HTML or JSON."""
    return atomic.write_text(check_report_out(out, data.get("inputs") or []), report_text(data, fmt, bins))


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
