"""Terminal feedback that stays out of the way: a live line on a terminal, silence elsewhere.

Cron mails whatever a job prints, so nothing but real errors may reach stderr when it is not a terminal
or when the user asked for ``--quiet``.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager

from rich.console import Console


def interactive(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


def error_console() -> Console:
    """Console for messages on stderr; plain text (no colour codes) when stderr is not a terminal."""
    return Console(stderr=True, highlight=False, soft_wrap=True, no_color=not sys.stderr.isatty())


@contextmanager
def scan_progress(enabled: bool, total: int | None = None):
    """Yield a callback taking a ``ScanSummary``; it draws a live status line when ``enabled``: with a
    ``total``, a bar with the share done and the time left."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns += [BarColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=total or None)

        def update(summary) -> None:
            rate = summary.images / max(time.monotonic() - started, 1e-6)
            done = f"{summary.images}/{total}" if total else f"{summary.images}"
            bar.update(
                task,
                completed=summary.images,
                description=(
                    f"{done} images ({rate:.1f}/s), {summary.faces} faces, "
                    f"{summary.no_face} without face, {summary.errors} errors"
                    + (f", {summary.skipped} skipped" if summary.skipped else "")
                ),
            )

        yield update
