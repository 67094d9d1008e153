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

from agebatch.common.errors import SetupError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_silencing = threading.RLock()  # fd 2 is one per process: one thread silences it at a time


@contextmanager
def native_stderr_silenced():
    """Point fd 2 at /dev/null for the duration (Python-level ``sys.stderr`` is flushed first).

    Held under a process-wide lock: two threads silencing at once (decode threads building their
    detector networks) could otherwise restore fd 2 in the wrong order and leave the process mute.
    """
    if os.environ.get("AGEBATCH_DEBUG"):
        yield
        return
    with _silencing:
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


TENSORFLOW_EXTRA = "pip install 'agebatch[train]' (from a clone: pip install '.[train]')"


def load_tensorflow(purpose: str = "this") -> None:
    """Import TensorFlow (and Keras) once, silently; later imports are free (locked: once). Without the
    extra that brings them, a ``SetupError`` says what needed them (``purpose``) and how to add them."""
    if sys.modules.get("keras") is not None and sys.modules.get("tensorflow") is not None:
        return
    try:
        with _loading, native_stderr_silenced():
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
    except ImportError as exc:
        raise SetupError(f"{purpose} needs TensorFlow: {TENSORFLOW_EXTRA}") from exc
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
