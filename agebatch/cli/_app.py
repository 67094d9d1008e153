"""The Typer application every command registers on, the exit codes, and how failures are said.

Exit codes: 0 the run completed (per-file problems are rows, not failures); 1 unexpected internal
error; 2 usage or setup error (bad argument, missing path, unusable model, unwritable output);
3 nothing to explain (``explain`` on an image without a face); 4 ``scan`` found no image at all; 5 every
image ``scan`` read was an error row (with ``--strict``: any was); 130 interrupted (Ctrl-C / SIGINT),
143 on SIGTERM, 141 when the reader of stdout goes away.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from agebatch.common import progress
from agebatch.common.text import printable

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_NO_FACE = 0, 1, 2, 3  # interrupted: 128 + signal (130, 143)
EXIT_NO_IMAGES = 4  # scan found no image at all (an empty folder, an unmounted share)
EXIT_FAILED_FILES = 5  # scan: every image failed, or, with --strict, any did


def _argument_type_hidden(self, ctx) -> None:
    """Arguments name their values in their metavar (PATH..., IMAGE); typer would append a Python type."""
    return None


typer.core.TyperArgument.display_type_rich = _argument_type_hidden

app = typer.Typer(
    name="agebatch",
    help="Estimate age and gender for every face in a folder of photos, and report on the results.",
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Exit codes: 0 done, 1 unexpected error, 2 usage or setup error, 3 no face to explain, 4 no image found, "
    "5 images failed, 130 interrupted (143 on SIGTERM, 141 when the reader of stdout goes away).",
)


def _version(value: bool) -> None:
    if value:
        from agebatch import __version__

        typer.echo(f"agebatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Estimate age and gender for every face in a folder of photos, and report on the results."""


class Fail(Exception):
    """A usage problem the CLI itself finds: printed as one line, exit code 2."""


def fail_message(message: str) -> None:
    """``agebatch: error: ...`` on stderr, with control characters made visible."""
    progress.error_console().print(f"agebatch: error: {printable(message)}", markup=False)


def say(message: str) -> None:
    """A one-line report on stderr (a command's summary), plain text even when names hold markup."""
    progress.error_console().print(message, markup=False)


RECEIVED: dict[str, int] = {}


def on_sigterm(signum, frame) -> None:
    """SIGTERM (systemd, ``timeout``, a scheduler) stops like Ctrl-C: finished rows are kept."""
    RECEIVED["signal"] = signum
    raise KeyboardInterrupt


def interrupted_code() -> int:
    """130 after Ctrl-C (SIGINT), 143 after SIGTERM: the shell's 128 + signal number."""
    return 128 + RECEIVED.get("signal", signal.SIGINT)


def reader_gone() -> None:
    """Exit as a Unix tool killed by SIGPIPE would (128 + 13), without a message or a flush error."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's final flush of stdout must not fail again
    sys.exit(128 + signal.SIGPIPE)
