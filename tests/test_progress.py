"""The live status line of a scan: labelled times, and nothing cut short on an 80-column terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from agebatch.common.progress import scan_progress, status_text


def _summary(images: int) -> SimpleNamespace:
    return SimpleNamespace(images=images, faces=130, no_face=4, errors=1, skipped=0)


def test_the_status_says_what_its_times_are():
    text = status_text(_summary(120), 900, started=0.0, now=23.0)
    assert text == "120/900 images, 5.2/s, 130 faces, 4 no face, 1 error, 0:00:23 elapsed, 0:02:29 left"
    assert status_text(_summary(900), 900, started=0.0, now=60.0).endswith("0:01:00 elapsed")
    assert "left" not in status_text(_summary(120), None, started=0.0, now=23.0)


def test_at_80_columns_the_counts_fold_instead_of_being_cut():
    screen = io.StringIO()
    console = Console(file=screen, width=80, force_terminal=True, color_system=None)
    with scan_progress(True, 900, console) as update:
        update(_summary(120))
    shown = screen.getvalue()
    assert "…" not in shown and "elapsed" in shown and "left" in shown and "900 images" in shown
