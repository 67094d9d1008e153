"""The model card: what the shipped model was trained on, how, and how well it does, per group.

Written as JSON (read by ``report`` for its "how to read this" section) and Markdown (for people).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
from importlib import metadata
from pathlib import Path

import pandas as pd

from agebatch import contract
from agebatch.common import atomic
from agebatch.common.text import percent
from agebatch.modelfile.card import CARD_SUFFIX


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "pillow", "agebatch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


TASK = "apparent age (years) and gender (male/female) from a face crop"
LIMITATIONS = [
    "Estimates apparent age and binary gender presentation from appearance; not identity, not self-reported gender.",
    "Trained on UTKFace (web images, mostly frontal, ages 0-116); accuracy differs by age band and group, see the tables.",
    "UTKFace is licensed for non-commercial research; so is any model trained on it.",
]


def build_card(
    config,
    frame: pd.DataFrame,
    skipped: int,
    history: list[dict],
    metrics: dict,
    seconds: float,
    interrupted: bool,
) -> dict:
    """Collect everything worth knowing about a finished training run into one JSON-able dict."""
    counts = frame["split"].value_counts().to_dict()
    epoch_seconds = [h["seconds"] for h in history if "seconds" in h]
    return {
        "name": Path(config.model_name).stem,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": TASK,
        "architecture": "MobileNetV2 (ImageNet) -> global average pooling -> dropout -> "
        + (
            "age_distribution Dense(101, softmax) over years 0..100+ -> age_output its expected value, "
            "gender_output Dense(2, softmax)"
            if config.age_head == "distribution"
            else "age_output Dense(1, linear), gender_output Dense(2, softmax)"
        ),
        "input": {"size": [config.image_size, config.image_size, 3], "scale": "RGB in [0, 1]"},
        "data": {
            "folder": str(config.data_dir),
            "sources": list(config.sources),
            "images": int(len(frame)),
            "skipped_rows": int(skipped),
            "split_counts": {k: int(v) for k, v in counts.items()},
            "split_file": "split.csv",
            "stratified_by": "source x age band x gender",
        },
        "recipe": {k: v for k, v in dataclasses.asdict(config).items() if k not in ("extra", "verbose")},
        "history": history,
        "training": {
            "epochs": len(history),
            "seconds_total": round(seconds, 1),
            "seconds_per_epoch_mean": round(sum(epoch_seconds) / len(epoch_seconds), 1) if epoch_seconds else None,
            "interrupted": interrupted,
        },
        "test_metrics": metrics,
        "versions": _versions(),
        "limitations": LIMITATIONS,
    }


def ensemble_card(
    model_path: Path,
    member_paths: list[str],
    member_cards: list[dict | None],
    frame: pd.DataFrame,
    scores: dict,
    image_size: int,
    half_precision: bool,
    seconds: float,
) -> dict:
    """The card of a model that averages saved networks: each member's own card is kept inside it."""
    members = [{"file": str(path), "card": card} for path, card in zip(member_paths, member_cards, strict=True)]
    counts = frame["split"].value_counts().to_dict()
    return {
        "name": Path(model_path).stem,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "task": TASK,
        "architecture": f"the average of {len(members)} networks, each MobileNetV2 (ImageNet) -> global average "
        "pooling -> dropout -> age_output Dense(1, linear) and gender_output Dense(2, softmax), calibrated; "
        "ages and female probabilities are averaged",
        "input": {"size": [image_size, image_size, 3], "scale": "RGB in [0, 1]"},
        "storage": "convolution kernels float16, everything else float32; arithmetic float32"
        if half_precision
        else "float32",
        "data": {"split_file": "split.csv", "split_counts": {k: int(v) for k, v in counts.items()}},
        "members": members,
        "val_metrics": scores["val"],
        "test_metrics": scores["test"],
        "seconds": round(seconds, 1),
        "versions": _versions(),
        "limitations": LIMITATIONS,
    }


def _years(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _group_table(title: str, groups: dict) -> list[str]:
    if not groups:
        return []
    lines = [
        f"### {title}",
        "",
        "| group | n | age MAE | age bias | within 5 y | age band right | gender accuracy | gender ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in groups.items():
        if m.get("n"):
            bias = m.get("age_bias")
            lines.append(
                f"| {name} | {m['n']} | {_years(m.get('age_mae'))} | {'-' if bias is None else f'{bias:+.2f}'} "
                f"| {percent(m.get('age_within_5'))} "
                f"| {percent(m.get('age_band_accuracy'))} | {percent(m.get('gender_accuracy'))} | {percent(m.get('gender_ece'))} |"
            )
    return lines + [""]


def to_markdown(card: dict) -> str:
    if "members" in card:
        return ensemble_markdown(card)
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Created {card['created']}. {card['task']}.",
        "",
        f"**Architecture.** {card['architecture']}. Input {card['input']['size']} {card['input']['scale']}.",
        "",
        f"**Data.** {card['data']['images']} images from "
        f"{', '.join(f'`{s}`' for s in card['data'].get('sources') or [card['data']['folder']])} "
        f"({_skipped_count(card['data'])} unreadable labels skipped); split "
        f"{card['data']['split_counts']}, stratified by {card['data']['stratified_by']} (`split.csv`).",
        "",
        f"**Training.** {card['training']['epochs']} epochs, {card['training']['seconds_total'] / 60:.1f} min in all, "
        f"{card['training']['seconds_per_epoch_mean']} s per epoch on average.",
        "",
    ]
    lines += _test_section(card)
    lines += ["## Recipe", "", "```json", json.dumps(card["recipe"], indent=2), "```", ""]
    lines += _history_table(card["history"])
    tta = card.get("flip_tta_measured")
    if tta:
        p, f = tta["plain"], tta["flip_averaged"]
        lines += [
            "",
            "## Optional: flip averaging (`--flip-average`, off by default)",
            "",
            f"- averaging each face with its mirror image (test-time flip): age MAE {p['age_mae']:.2f} -> {f['age_mae']:.2f}, "
            f"gender {percent(p['gender_accuracy'])} -> {percent(f['gender_accuracy'])}, at twice the inference cost",
        ]
    return "\n".join(lines + _closing_sections(card))


def ensemble_markdown(card: dict) -> str:
    v = card["val_metrics"]["overall"]
    lines = [
        f"# Model card: {card['name']}",
        "",
        f"Created {card['created']}. {card['task']}.",
        "",
        f"**Architecture.** {card['architecture']}. Input {card['input']['size']} {card['input']['scale']}. "
        f"Stored: {card['storage']}.",
        "",
        f"**Data.** The members' split (`split.csv`): {card['data']['split_counts']}. Validation: age MAE "
        f"{v['age_mae']:.2f}, gender {percent(v['gender_accuracy'])}.",
        "",
    ]
    lines += _test_section(card)
    lines += ["## Members", ""]
    for number, member in enumerate(card["members"], start=1):
        member_card = member["card"] or {}
        lines.append(f"### {number}. `{member['file']}`")
        if member_card:
            o = member_card["test_metrics"]["overall"]
            t = member_card["training"]
            lines += [
                "",
                f"Alone: test age MAE {o['age_mae']:.2f}, gender {percent(o['gender_accuracy'])}. Trained "
                f"{t['epochs']} epochs, {t['seconds_total'] / 60:.1f} min. Recipe:",
                "",
                "```json",
                json.dumps(member_card["recipe"], indent=2),
                "```",
                "",
            ]
            lines += _history_table(member_card["history"])
            if member_card.get("notes"):
                lines += ["", "Notes:", ""] + [f"- {x}" for x in member_card["notes"]]
        lines.append("")
    return "\n".join(lines + _closing_sections(card))


def _overall_lines(m: dict) -> list[str]:
    """The headline figures of one scored set of faces (a whole split or one source of it)."""
    o = m["overall"]
    lines = []
    if "age_mae" in o:
        lines.append(
            f"- age MAE **{o['age_mae']:.2f}** years, RMSE {o['age_rmse']:.2f}, within 5 years "
            f"{percent(o['age_within_5'])} ({o.get('n_exact_age', o['n'])} faces with an exact age)"
        )
    if "age_band_accuracy" in o:
        lines.append(
            f"- age band right (the estimate inside the labelled band) **{percent(o['age_band_accuracy'])}** "
            f"({o['n_age_band']} faces labelled with a band)"
        )
    lines.append(
        f"- gender accuracy **{percent(o['gender_accuracy'])}**, calibration error (ECE) {percent(o.get('gender_ece'))} "
        f"(confusion rows true male/female, columns predicted: {m['confusion']})"
    )
    if "race_gender_gap" in m:
        gap = m["race_gender_gap"]
        lines.append(
            f"- gender accuracy gap between race groups: {100 * gap['gap']:.1f} points ({gap['best']} best, {gap['worst']} worst)"
        )
    return lines


def _group_tables(m: dict, level: str = "###") -> list[str]:
    lines = _group_table("By age band", m.get("by_age_band", {}))
    lines += _group_table("By labelled age band", m.get("by_label_band", {}))
    lines += _group_table("By gender", m.get("by_gender", {}))
    lines += _group_table("By race", m.get("by_race", {}))
    return [line.replace("### ", level + " ", 1) if line.startswith("### ") else line for line in lines]


def _test_section(card: dict) -> list[str]:
    m = card["test_metrics"]
    lines = ["## Test split", "", *_overall_lines(m)]
    cal = card.get("calibration")
    if cal:
        vb, va, tb = cal["val_before"], cal["val_after"], cal["test_before"]
        fitted = (
            f"gender temperature {cal['gender_temperature']:.2f}, threshold shift {cal['gender_logit_shift']:+.2f}"
            if "gender_temperature" in cal
            else "age map and gender threshold"
        )
        lines.append(
            f"- calibration ({fitted}; fitted on the validation split, folded into the network): validation age MAE "
            f"{_years(vb.get('age_mae'))} -> {_years(va.get('age_mae'))}, gender {percent(vb['gender_accuracy'])} -> "
            f"{percent(va['gender_accuracy'])}; test before calibration: age MAE {_years(tb.get('age_mae'))}, "
            f"gender {percent(tb['gender_accuracy'])}"
        )
    lite = card.get("tflite")
    if lite and lite.get("test_metrics"):
        t = lite["test_metrics"]
        lines.append(
            f"- `{lite['file']}` (the engine scan uses): age MAE {_years(t.get('age_mae'))}, gender {percent(t['gender_accuracy'])} on the same test faces"
        )
    lines += _engine_lines(card.get("engines"))
    lines.append("")
    lines += _interval_lines(cal or {})
    for source, scored in (m.get("by_source") or {}).items():
        lines += [f"### Source: {source}", "", *_overall_lines(scored), "", *_group_tables(scored, "####")]
    if not m.get("by_source"):
        lines += _group_tables(m)
    return lines


def _adapted_only_markdown(card: dict) -> str:
    """The card of a model made by ``agebatch adapt``: what the adaptation measured on the user's faces."""
    lines = [f"# Model card: {card.get('name')}", "", f"Created {card.get('created')}.", ""]
    lines += _adaptation_section(card.get("adaptation"))
    if card.get("base_test_metrics"):
        lines += [
            "The model it was adapted from is described by its own card; its test figures (of the read-out",
            "before adaptation) are kept in this card's JSON as `base_test_metrics`.",
            "",
        ]
    return "\n".join(lines)


def _adaptation_section(adaptation: dict | None) -> list[str]:
    """For a model made by ``agebatch adapt``: from what, on how many faces, and the k-fold figures."""
    if not adaptation:
        return []
    before, after = adaptation["cross_validated_before"], adaptation["cross_validated_after"]
    rows = [
        ("age error, exact ages (years)", "age_mae", _years),
        ("age bias, exact ages (years)", "age_bias", lambda v: "-" if v is None else f"{v:+.2f}"),
        ("right age band, banded labels", "age_band_accuracy", percent),
        ("age-band distribution off by (total variation)", "band_distance", percent),
        ("gender right, known genders", "gender_accuracy", percent),
        ("80% interval holds the truth", "interval_coverage", percent),
    ]
    lines = [
        "## Adaptation",
        "",
        f"Adapted from `{adaptation['adapted_from']}` (created {adaptation.get('base_created')}) on "
        f"{adaptation['faces']} labelled faces ({adaptation['exact_ages']} with exact ages, "
        f"{adaptation['with_gender']} with a gender; detector {adaptation['detector']}). Age head "
        f"{adaptation['age_head']}; gender head {adaptation['gender_head']}. Figures from "
        f"{adaptation['folds']}-fold cross-validation on those faces (each face estimated by a read-out fitted "
        "without it).",
        "",
        "| on the labelled faces | before | after |",
        "|---|---:|---:|",
    ]
    for label, key, shown in rows:
        if before.get(key) is not None:
            lines.append(f"| {label} | {shown(before[key])} | {shown(after[key])} |")
    return [*lines, ""]


def _engine_lines(engines: dict | None) -> list[str]:
    """The LiteRT twins' test figures and speed (``benchmarks/int8_engine.py``), and which one ``auto`` runs."""
    if not engines:
        return []
    from agebatch.modelfile.twin import int8_approved

    lines = []
    for name, label in (("tflite", "float32 twin"), ("int8", "8-bit twin")):
        entry = engines.get(name) or {}
        figures = "; ".join(
            f"{source}: "
            + ", ".join(
                f"{key.replace('_', ' ')} {percent(value) if 'accuracy' in key else _years(value)}"
                for key, value in scored.items()
                if key != "n" and value is not None
            )
            for source, scored in (entry.get("test_metrics") or {}).items()
        )
        lines.append(
            f"- {label}: {entry.get('faces_per_second')} faces/s (model only, {engines.get('measured')}); {figures}"
        )
    chosen = "the 8-bit twin" if int8_approved({"engines": engines}) else "the float32 twin"
    return [*lines, f"- `--engine auto` runs {chosen} (8-bit only within 0.05 years and 0.3 points of float32)"]


def _interval_lines(calibration: dict) -> list[str]:
    """The age interval's calibration and how often it holds the truth, per source and true age band."""
    coverage = calibration.get("interval_coverage")
    if not coverage:
        return []
    shares = ", ".join(f"{band} {share:.2f}" for band, share in calibration.get("interval_shares", {}).items())
    lines = [
        "### The 80% age interval",
        "",
        f"`age_low`..`age_high` is the central share of the age distribution given per band of the estimated age "
        f"(calibrated on {coverage['calibrated_on']}): {shares}. How often it holds the true age (UTKFace) or meets "
        "the labelled band (FairFace), on test faces, calibrated and (in brackets) as the plain central 80%:",
        "",
        "| source | all | " + " | ".join(contract.AGE_BAND_LABELS) + " | mean width |",
        "|---|---:|" + "---:|" * len(contract.AGE_BAND_LABELS) + "---:|",
    ]
    for source, table in coverage["test"].items():
        plain = coverage.get("test_central_80", {}).get(source, {})
        width = table["overall"]["width"]
        before_width = plain.get("overall", {}).get("width")
        widths = f"{width:.1f} y" + (f" ({before_width:.1f} y)" if before_width is not None else "")
        bands = " | ".join(_coverage_cell(table, plain, band) for band in contract.AGE_BAND_LABELS)
        lines.append(f"| {source} | {_coverage_cell(table, plain, 'overall')} | {bands} | {widths} |")
    return [*lines, ""]


def _coverage_cell(table: dict, plain: dict, band: str) -> str:
    if band not in table:
        return "-"
    before = plain.get(band, {}).get("coverage")
    return percent(table[band]["coverage"]) + (f" ({percent(before)})" if before is not None else "")


def _history_table(history: list[dict]) -> list[str]:
    lines = [
        "## Per-epoch history",
        "",
        "| phase | epoch | val age MAE | val gender acc | seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for h in history:
        lines.append(
            f"| {h.get('phase')} | {h.get('epoch')} | {h.get('val_age_output_mae', float('nan')):.2f} | "
            f"{percent(h.get('val_gender_output_accuracy'))} | {h.get('seconds')} |"
        )
    return lines


def _closing_sections(card: dict) -> list[str]:
    lines = []
    if card.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {x}" for x in card["notes"]]
    lines += ["", "## Limitations", ""] + [f"- {x}" for x in card["limitations"]]
    lines += ["", "## Versions", "", ", ".join(f"{k} {v}" for k, v in card["versions"].items()), ""]
    return lines


def write_card(card: dict, out_dir: str | os.PathLike, stem: str) -> Path:
    """Write ``<stem>.card.json`` and ``<stem>.card.md``; returns the JSON path."""
    out = Path(out_dir)
    path = out / f"{stem}{CARD_SUFFIX}"
    atomic.write_text(path, json.dumps(card, indent=2))
    text = _adapted_only_markdown(card) if "adaptation" in card else to_markdown(card)
    atomic.write_text(out / f"{stem}.card.md", text)
    return path


def _skipped_count(data: dict) -> int:
    """Labels skipped when the model was trained (cards written before several sources list the names)."""
    return int(data.get("skipped_rows", len(data.get("skipped_names", []))))
