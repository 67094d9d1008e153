"""One shell for every HTML page agebatch writes (report, evaluation, training curves).

Pages are self-contained: whatever script they need (Plotly's) is passed in and embedded, so a page
works offline and from a file. Titles are escaped here; ``body`` is trusted HTML the caller built
(escaping every string that came from data).
"""

from __future__ import annotations

import html

from agebatch.common.text import percent

DASH = "–"  # what a page shows for a figure it does not have


def escaped(value) -> str:
    """``value`` as text safe inside HTML (attributes included); None as nothing."""
    return html.escape("" if value is None else str(value), quote=True)


def percent_cell(value: float | None) -> str:
    """``0.1234`` as ``12.3%``; the dash for a missing figure."""
    return percent(value, missing=DASH)


def page(title: str, body: str, *, style: str = "", head_scripts: tuple[str, ...] = ()) -> str:
    """A complete HTML5 document."""
    scripts = "".join(f"<script>{script}</script>" for script in head_scripts)
    css = f"<style>{style}</style>" if style else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>{css}{scripts}</head><body>{body}</body></html>"
    )
