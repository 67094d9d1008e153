"""Declaring a setting once: its default and its help text live on a dataclass field.

Library dataclasses (``ScanOptions``, ``ReportOptions``, ``TrainConfig``) declare each knob with
``setting(default, help)``; the command line reads both back with ``help_of`` and ``default_of``, and
``tests/test_docs.py`` checks the README's option tables against the resulting ``--help``.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def setting(default: Any, help: str, *, factory: Any = None) -> Any:  # noqa: A002 - the word users see
    """A dataclass field with its help text; ``factory`` for mutable defaults."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _field(cls: type, name: str) -> dataclasses.Field:
    try:
        return next(f for f in dataclasses.fields(cls) if f.name == name)
    except StopIteration:
        raise KeyError(f"{cls.__name__} has no setting {name!r}") from None


def help_of(cls: type, name: str) -> str:
    """The help text declared for ``cls.name``."""
    return _field(cls, name).metadata["help"]


def default_of(cls: type, name: str) -> Any:
    """The default declared for ``cls.name``."""
    found = _field(cls, name)
    return found.default_factory() if found.default is dataclasses.MISSING else found.default
