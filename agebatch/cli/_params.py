"""Options that several commands share, and the bridge from the library's settings to Typer.

Help text, defaults and choice lists are declared once, on the library's options dataclasses
(``common.settings``); the aliases here read them, so a command's signature only names what it takes.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from agebatch.common.settings import default_of, help_of
from agebatch.reporting.options import BIN_WIDTHS, BREAKDOWNS, REPORT_FORMATS, ReportOptions
from agebatch.results import FORMATS
from agebatch.scanning.options import DETECTORS, ENGINES, EXPLAIN_HEADS, VIDEO_ROWS, ModelOptions, ScanOptions
from agebatch.training.config import AGE_HEADS, SAMPLINGS, SCHEDULES, TrainConfig
from agebatch.web.options import ServeOptions


def _choices(name: str, values: tuple) -> type[StrEnum]:
    """A typer choice type for one of the library's choice lists."""
    return StrEnum(name, [(str(value), str(value)) for value in values])


# Choices that the library defines, as enums for typer's help and validation.
Detector = _choices("Detector", DETECTORS)
Format = _choices("Format", FORMATS)
Engine = _choices("Engine", ENGINES)
Schedule = _choices("Schedule", SCHEDULES)
AgeHead = _choices("AgeHead", AGE_HEADS)
Sampling = _choices("Sampling", SAMPLINGS)
ReportFormat = _choices("ReportFormat", REPORT_FORMATS)
BinWidth = _choices("BinWidth", BIN_WIDTHS)
Breakdown = _choices("Breakdown", BREAKDOWNS)
Head = _choices("Head", EXPLAIN_HEADS)
VideoRows = _choices("VideoRows", VIDEO_ROWS)


def _metavar(cls: type, name: str) -> str | None:
    """A short placeholder for an option's value in --help (N, X, PATH...), from the field's type."""
    kind = str(next(f.type for f in dataclasses.fields(cls) if f.name == name))
    for words, metavar in (("bool", None), ("tuple", "VALUE"), ("int", "N"), ("float", "X"), ("str", "TEXT")):
        if kind.startswith(words) or f" {words}" in kind or f"[{words}" in kind:
            return metavar
    return None


def library_option(cls: type, name: str, *flags: str, **limits):
    """A typer option whose help text (and value placeholder) come from the library's field ``cls.name``."""
    limits.setdefault("metavar", _metavar(cls, name))
    return typer.Option(*flags, help=help_of(cls, name), **limits)


def scan_option(name: str, *flags: str, **limits):
    """An option documented by ``ScanOptions.name``."""
    return library_option(ScanOptions, name, *flags, **limits)


def report_option(name: str, *flags: str, **limits):
    """An option documented by ``ReportOptions.name``."""
    return library_option(ReportOptions, name, *flags, **limits)


def train_option(name: str, *flags: str, **limits):
    """An option documented by ``TrainConfig.name``."""
    return library_option(TrainConfig, name, *flags, **limits)


def serve_option(name: str, *flags: str, **limits):
    """An option documented by ``ServeOptions.name``."""
    return library_option(ServeOptions, name, *flags, **limits)


def scan_default(name: str) -> Any:
    return default_of(ScanOptions, name)


def report_default(name: str) -> Any:
    return default_of(ReportOptions, name)


def train_default(name: str) -> Any:
    return default_of(TrainConfig, name)


def serve_default(name: str) -> Any:
    return default_of(ServeOptions, name)


def library_values(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The entries of a command's ``values`` that are fields of ``cls``, as the library takes them:
    choices as their plain strings, paths as strings where the field holds text, lists as tuples.
    Lets a command build its options object without copying each field by hand."""
    fields = {field.name: field for field in dataclasses.fields(cls)}
    return {
        name: _plain(value, str(fields[name].type))
        for name, value in values.items()
        if name in fields and not (value is None and fields[name].default is not None)  # None: the field's default
    }


def _plain(value: Any, kind: str) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return tuple(_plain(item, kind) for item in value)
    if isinstance(value, Path) and "Path" not in kind:
        return str(value)
    return value


# Options that several commands share, declared once.
DetectorOption = Annotated[Detector, scan_option("detector", metavar=None)]
DEFAULT_DETECTOR = Detector(scan_default("detector"))
MinFaceOption = Annotated[int, scan_option("min_face", min=1)]
MinScoreOption = Annotated[float | None, scan_option("min_score", min=0.0, max=1.0, show_default=False)]
FlipAverageOption = Annotated[bool, library_option(ModelOptions, "flip_average")]
ModelOption = Annotated[Path | None, library_option(ModelOptions, "model", metavar="MODEL")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def print_table(columns: tuple[str, ...], rows: list[list[str]], console=None) -> None:
    """A table on a terminal; tab-separated lines (header first) for a pipe or a file.

    On a narrow terminal the first column (a file name) folds onto more lines rather than being cut
    to ``myphotos/fami...`` (rows of different photos would look the same); the others never wrap."""
    if console is None and not sys.stdout.isatty():
        for row in (list(columns), *rows):
            typer.echo("\t".join(cell.replace("\t", " ") for cell in row))
        return
    from rich.console import Console
    from rich.table import Column, Table
    from rich.text import Text

    first, *others = columns
    table = Table(Column(first, overflow="fold"), *(Column(name, no_wrap=True) for name in others))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text cells: a file name is never read as markup
    (console or Console()).print(table)
