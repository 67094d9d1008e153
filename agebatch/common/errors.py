"""The one exception class a run that cannot start raises, so the CLI maps every such case to exit 2.

Each layer keeps its own, more precise class (``ModelLoadError``, ``OutputError``, ``ReportError``...)
and derives it from ``SetupError``: the command line then needs no list of them, and a new one is
reported as one line with the usage exit code without touching the CLI.
"""

from __future__ import annotations


class SetupError(Exception):
    """The run cannot proceed as asked: a bad argument, a missing or unusable input, model or output, or
    a missing extra. ``str()`` is the one-line message a user sees."""
