"""Reading a small file that someone else may have put there: never blocking, never too much.

A FIFO or a device put where a card, a record or a results file was expected would block ``open``
or ``read`` forever; a huge file would be read into memory whole. ``read_regular`` opens without
blocking, insists on a regular file and reads at most ``limit`` bytes.
"""

from __future__ import annotations

import os
import stat


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor for ``path``, opened without blocking, or ``ValueError`` when it is not a
    regular file (a FIFO, socket, device or folder)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("not a regular file")
    return fd


def read_regular(path: str | os.PathLike, limit: int, first_line: bool = False) -> bytes:
    """The bytes of a regular file (its first line only, with ``first_line``); ``ValueError`` when it
    is not a regular file or holds more than ``limit`` bytes (``first_line``: reads at most ``limit``)."""
    with os.fdopen(open_regular(path), "rb") as handle:
        if first_line:
            return handle.readline(limit)
        if os.fstat(handle.fileno()).st_size > limit:
            raise ValueError(f"larger than {limit >> 20} MB")
        return handle.read(limit + 1)


def head_of(path: str | os.PathLike, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of a regular file, or None when it is not one or cannot be read."""
    try:
        fd = open_regular(path)
    except (OSError, ValueError):
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)
