"""Keeping native libraries' start-up chatter out of cron mail.

TensorFlow's C++ core writes two absl/oneDNN notices straight to file descriptor 2 while it loads,
ignoring ``TF_CPP_MIN_LOG_LEVEL``; only silencing the descriptor itself around the import stops them.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextmanager
def native_stderr_silenced():
    """Point fd 2 at /dev/null for the duration (Python-level ``sys.stderr`` is flushed first)."""
    if os.environ.get("AGEBATCH_DEBUG"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_loading = threading.Lock()


def load_tensorflow() -> None:
    """Import TensorFlow (and Keras) once, silently; later imports are free.

    Locked: two threads silencing fd 2 at once could restore it in the wrong order and leave the
    process mute.
    """
    if "keras" in sys.modules and "tensorflow" in sys.modules:
        return
    with _loading, native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow  # noqa: F401
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
