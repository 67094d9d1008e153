"""Standard streams that a shell or a scheduler closed (``2>&-``, ``>&-``, ``<&-``).

A closed descriptor 0, 1 or 2 is reopened on /dev/null before anything else opens a file: otherwise
the next file opened (a results file's temporary copy) would take its number, and a message meant
for stderr would land inside the results. Which ones were closed is remembered, so ``--out -`` with
stdout closed is refused instead of writing the rows into nothing.
"""

from __future__ import annotations

import os
import sys

from agebatch.common.errors import SetupError

_STREAMS = ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w"))
_closed: set[int] = set()


def reopen_closed_streams() -> None:
    """Give every closed standard descriptor /dev/null, and Python a stream object for it."""
    for fd, name, mode in _STREAMS:
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:  # the lowest free number: fd itself when the ones below it are open
                os.dup2(null, fd)
                os.close(null)
            os.set_inheritable(fd, True)  # a child process (serve's Streamlit) gets it too, as a stream
            _closed.add(fd)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, mode, closefd=False, encoding="utf-8", errors="backslashreplace"))


def require_stdout() -> None:
    """``SetupError`` when standard output was closed: rows written there would be lost."""
    if 1 in _closed:
        raise SetupError("standard output is closed: name a file with --out instead of -")
