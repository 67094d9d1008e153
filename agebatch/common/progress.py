"""Terminal feedback that stays out of the way: a live line on a terminal, silence elsewhere.

Cron mails whatever a job prints, so nothing but real errors may reach stderr when it is not a terminal
or when the user asked for ``--quiet``.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console

from agebatch.common.text import count


def interactive(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def error_console() -> Console:
    """Console for messages on stderr; plain text (no colour codes) when stderr is not a terminal."""
    return Console(stderr=True, highlight=False, soft_wrap=True, no_color=not sys.stderr.isatty())


@contextmanager
def scan_progress(enabled: bool, total: int | None = None, console: Console | None = None):
    """Yield a callback taking a ``ScanSummary``; it draws a live status line when ``enabled``: with a
    ``total``, a bar with the share done and the time left. The times are labelled ("elapsed", "left"),
    and on a narrow terminal the counts fold onto a second line instead of being cut."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn
    from rich.table import Column

    started = time.monotonic()
    columns = [SpinnerColumn()]
    if total:
        columns += [BarColumn(bar_width=20), TaskProgressColumn()]
    columns.append(TextColumn("{task.description}", table_column=Column(overflow="fold")))
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=total or None)

        def update(summary) -> None:
            bar.update(task, completed=summary.images, description=status_text(summary, total, started))

        yield update


def status_text(summary, total: int | None, started: float, now: float | None = None) -> str:
    """``120/900 images, 5.1/s, 130 faces, 4 no face, 1 error, 0:00:23 elapsed, 0:02:33 left``."""
    elapsed = max((time.monotonic() if now is None else now) - started, 1e-6)
    rate = summary.images / elapsed
    done = f"{summary.images}/{total}" if total else f"{summary.images}"
    text = (
        f"{done} images, {rate:.1f}/s, {summary.faces} faces, {summary.no_face} no face, "
        f"{count(summary.errors, 'error')}" + (f", {summary.skipped} skipped" if summary.skipped else "")
    )
    text += f", {_clock(elapsed)} elapsed"
    if total and rate > 0 and summary.images < total:
        text += f", {_clock((total - summary.images) / rate)} left"
    return text


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
