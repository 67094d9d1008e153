"""Text for people: one-line error reasons, names safe to print on a terminal, percentages."""

from __future__ import annotations

import re

REASON_LIMIT = 200  # characters of an error reason kept in a message or a results row

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(error: BaseException | str, limit: int = REASON_LIMIT) -> str:
    """An error's message on one line (white space folded, at most ``limit`` characters), its type
    name when it has no message, with control characters made visible (see ``printable``)."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return printable(text)[:limit]


def printable(text: object) -> str:
    """``text`` with every control character (ESC, BEL, newlines, bidirectional overrides...) shown
    as a ``\\xNN``/``\\uNNNN`` escape, so a file name cannot move the cursor, recolour the terminal,
    write the clipboard (OSC 52) or plant a link (OSC 8) when printed."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def percent(share: float | None, missing: str = "-") -> str:
    """``0.1234`` as ``12.3%``; ``missing`` for None."""
    return missing if share is None else f"{100 * share:.1f}%"


def count(number: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1 face``, ``3 errors``."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
