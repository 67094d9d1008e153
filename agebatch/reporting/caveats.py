"""What every page that shows estimates must say about them: "how to read this", from the model card.

The report, both web pages and ``predict`` quote the same caveats: estimates of *apparent* age and
gender; the error figures measured on held-out faces (the age error on faces with exact ages only);
what the 80 % interval means and how often it held; and that on a population unlike the training
faces the ages may be biased, which ``agebatch adapt`` corrects from a few hundred labelled photos.
"""

from __future__ import annotations

from agebatch.common.htmlpage import escaped, percent_cell
from agebatch.common.text import percent
from agebatch.contract import AGE_BAND_LABELS

ESTIMATES = (
    "Ages and genders here are estimates of apparent age and gender from appearance, made by a model from a "
    "face crop. They are not identities, not self-reported genders, and individual estimates can be far off; "
    "use them for patterns across many faces."
)
INTERVAL = (
    "Each face's age comes with an 80% interval (age_low..age_high): the range its true age is in for about "
    "8 faces in 10 like the model's test faces."
)
POPULATION = (
    "On a population unlike the training faces (other ages, ethnicities, cameras, scans), ages can be biased "
    "by a few years and intervals hold less often; agebatch adapt refits the model on a few hundred "
    "labelled photos of your own population and measures the difference."
)


def plain_caveat(card: dict | None) -> str:
    """The caveats as plain sentences (web pages, ``predict --help``): estimates, interval, population."""
    return " ".join([ESTIMATES, INTERVAL + _coverage_words(card), _adapted_words(card) or POPULATION])


def _coverage_words(card: dict | None) -> str:
    held = {k: v for k, v in ((card or {}).get("interval_coverage") or {}).items() if v is not None}
    if not held:
        return ""
    return " On held-out faces it held for " + ", ".join(f"{percent(v)} ({k})" for k, v in held.items()) + "."


def _adapted_words(card: dict | None) -> str:
    adapted = (card or {}).get("adaptation")
    if not adapted:
        return ""
    faces = adapted.get("faces")
    text = (
        "This model was adapted on "
        + (f"{faces:.0f} " if faces is not None else "")
        + "labelled faces of its user's population"
    )
    if adapted.get("age_mae_before") is not None and adapted.get("age_mae_after") is not None:
        text += (
            f"; cross-validated on them, its age error went from {adapted['age_mae_before']:.2f} to "
            f"{adapted['age_mae_after']:.2f} years"
        )
    return text + "."


def how_to_read(card: dict | None) -> str:
    """The report's "how to read this" section (HTML), from ``aggregate.card_summary``'s figures."""
    text = f"<p>{escaped(ESTIMATES)}</p>"
    if card and card.get("unreadable"):
        text += "<p class='meta'>The model card could not be read, so the model's error figures are not shown.</p>"
    elif card and card.get("age_mae") is not None:
        text += _error_paragraphs(card)
    elif card and card.get("adaptation"):
        pass  # an adapted model's figures are its cross-validated ones, said below
    else:
        text += "<p class='meta'>No model card was found, so the model's error figures are not shown.</p>"
    text += f"<p>{escaped(INTERVAL + _coverage_words(card))}</p>"
    adapted = _adapted_words(card)
    text += f"<p><b>{'Adapted' if adapted else 'Your population'}:</b> {escaped(adapted or POPULATION)}</p>"
    return f"<h2>How to read this</h2><div class='note'>{text}</div>"


def _error_paragraphs(card: dict) -> str:
    """The age error (exact-age faces only), gender accuracy (all test faces), groups, bands, children."""
    gap = card.get("race_gender_gap") or {}
    bias = card.get("age_bias")
    text = (
        f"<p>On {escaped(_count(card.get('exact_age_faces')))} held-out faces with exact ages the model "
        f"({escaped(card.get('name'))}) is off by <b>{card['age_mae']:.2f} years</b> on average"
        + (f" (bias {bias:+.2f} years)" if bias is not None else "")
        + f"; on all {escaped(_count(card.get('test_faces')))} held-out faces it names the gender correctly for "
        f"<b>{percent_cell(card.get('gender_accuracy'))}</b>."
    )
    if gap and gap.get("gap") is not None:
        text += (
            f" Gender accuracy differs by group: {100 * gap['gap']:.1f} points between the best "
            f"({escaped(gap.get('best'))}) and worst ({escaped(gap.get('worst'))}) group."
        )
    text += "</p>"
    biases = card.get("bias_by_age_band") or {}
    bands = ", ".join(
        f"{escaped(k)}: {v:.1f}" + (f" ({biases[k]:+.1f})" if biases.get(k) is not None else "")
        for k, v in (card.get("by_age_band") or {}).items()
        if v is not None
    )
    if bands:
        text += f"<p class='meta'>Mean age error (and bias: + reads older) by true age band, in years: {bands}.</p>"
    groups = ", ".join(f"{escaped(k)} {v:+.1f}" for k, v in (card.get("bias_by_race") or {}).items() if v is not None)
    if groups:
        text += f"<p class='meta'>Age bias by group (years, faces with exact ages): {groups}.</p>"
    children = (card.get("gender_accuracy_by_age_band") or {}).get(AGE_BAND_LABELS[0])
    if children is not None:
        text += (
            f"<p><b>Children:</b> for faces aged {AGE_BAND_LABELS[0]} the gender call is right for only "
            f"{percent_cell(children)} of test faces, so every gender figure on this page that includes children "
            "is less certain than the overall accuracy suggests.</p>"
        )
    return text + _per_source(card.get("by_source") or {})


def _count(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _per_source(sources: dict) -> str:
    """One line per collection the model was tested on (its card's ``by_source``)."""
    lines = []
    for name, figures in sources.items():
        parts = [f"{percent_cell(figures.get('gender_accuracy'))} gender right"]
        if figures.get("age_mae") is not None:
            parts.append(f"age off by {figures['age_mae']:.2f} years on average")
        if figures.get("age_band_accuracy") is not None:
            parts.append(f"age band right for {percent_cell(figures['age_band_accuracy'])}")
        lines.append(
            f"<li>{escaped(name)} ({escaped(_count(figures.get('faces')))} test faces): {', '.join(parts)}</li>"
        )
    return f"<p class='meta'>By test collection:</p><ul class='meta'>{''.join(lines)}</ul>" if lines else ""
