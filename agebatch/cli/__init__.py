"""The ``agebatch`` command: each command parses its options, builds the library's options object,
makes one call and maps the outcome onto an exit code.

One module per command group (``scan`` and ``merge``; ``report``; ``predict`` and ``explain``;
``train``, ``evaluate`` and ``combine``; ``models``; ``serve``); ``_app`` holds the Typer application
and the exit codes, ``_params`` the options several commands share. ``main`` below is the one place
outcomes become exit codes: a library ``SetupError`` (a bad path, model, output or a missing extra)
is one line and exit 2, whichever command raised it.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

# isort: off
# Each module registers its commands, in the order --help lists them.
from agebatch.cli import _app, scan, report, predict, serve, train, adapt, models  # noqa: F401

# isort: on
from agebatch.cli._app import (
    EXIT_NO_FACE,
    EXIT_OK,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    Fail,
    app,
    fail_message,
    interrupted_code,
    on_sigterm,
    reader_gone,
)
from agebatch.common import stdio
from agebatch.common.errors import SetupError
from agebatch.common.text import one_line

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer with click installed
    import click.exceptions as click_exceptions

__all__ = ["EXIT_NO_FACE", "EXIT_OK", "EXIT_UNEXPECTED", "EXIT_USAGE", "app", "main"]


def main() -> None:
    """Console-script entry point: maps every outcome onto the documented exit codes."""
    stdio.reopen_closed_streams()
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        code = app(standalone_mode=False)
        if code == 128 + signal.SIGINT and _app.RECEIVED:  # Typer maps any KeyboardInterrupt to 130, SIGTERM's too
            code = interrupted_code()
    except (Fail, SetupError, FileNotFoundError) as exc:
        fail_message(str(exc))
        sys.exit(EXIT_USAGE)
    except click_exceptions.ClickException as exc:  # usage errors: bad option, missing argument
        exc.show()
        sys.exit(EXIT_USAGE)
    except (KeyboardInterrupt, typer.Abort):
        fail_message("interrupted")
        sys.exit(interrupted_code())
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly, as Unix tools do
        reader_gone()
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if os.environ.get("AGEBATCH_DEBUG"):
            raise
        fail_message(f"unexpected {type(exc).__name__}: {one_line(exc)} (set AGEBATCH_DEBUG=1 for a traceback)")
        sys.exit(EXIT_UNEXPECTED)
    # The work is done: a late Ctrl-C or SIGTERM must not turn it into a failure.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        reader_gone()
    sys.exit(code if isinstance(code, int) else EXIT_OK)
