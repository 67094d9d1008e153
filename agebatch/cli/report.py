"""``agebatch report``: results files in, a self-contained HTML page or JSON aggregates out."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from agebatch.cli._app import Fail, app, reader_gone, say
from agebatch.cli._params import (
    BinWidth,
    Breakdown,
    QuietOption,
    ReportFormat,
    library_values,
    report_default,
    report_option,
)
from agebatch.common import stdio
from agebatch.common.text import count, printable
from agebatch.reporting.options import BREAKDOWNS, REPORT_FORMATS, ReportOptions

EXAMPLES_REPORT = """
Examples:

\b
  agebatch report results.csv --out report.html
  agebatch report results.csv --depth 2 --out report.html
  agebatch report monday.csv tuesday.csv --out compare.html
  agebatch report results.csv --format json --out report.json
  agebatch report results.csv --by taken_at --out by-date.html
"""


@app.command(epilog=EXAMPLES_REPORT)
def report(
    results_files: Annotated[
        list[str],
        typer.Argument(
            help="One or more results files (CSV, JSON Lines, Parquet) or Parquet datasets from agebatch scan.",
            show_default=False,
            metavar="RESULTS",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Report file to write; - for stdout.", metavar="FILE")],
    fmt: Annotated[
        ReportFormat, typer.Option("--format", "-f", help="html (self-contained page) or json (aggregates).")
    ] = ReportFormat(REPORT_FORMATS[0]),
    depth: Annotated[int, report_option("depth", min=1)] = report_default("depth"),
    bins: Annotated[BinWidth, report_option("bins", metavar=None)] = BinWidth(str(report_default("bins"))),
    min_gender_prob: Annotated[float, report_option("min_gender_prob", min=0.0, max=1.0)] = report_default(
        "min_gender_prob"
    ),
    low_confidence: Annotated[float, report_option("low_confidence", min=0.5, max=1.0)] = report_default(
        "low_confidence"
    ),
    by: Annotated[list[Breakdown], report_option("by", metavar=f"<{'|'.join(BREAKDOWNS)}>", show_default=False)] = [  # noqa: B006 - typer reads it
        Breakdown(b) for b in report_default("by")
    ],
    model_card: Annotated[
        Path | None,
        typer.Option(
            help="Model card JSON for the 'how to read this' figures (default: the shipped model's).", metavar="FILE"
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Turn scan results into a self-contained HTML report (or JSON aggregates)."""
    from agebatch.modelfile.card import read_card
    from agebatch.reporting.aggregate import build_report, check_report_out, report_text, write_report

    options = ReportOptions(**library_values(ReportOptions, dict(locals(), bins=int(bins.value))))
    to_stdout = str(out) == "-"
    if to_stdout:
        stdio.require_stdout()
    else:  # before any results file is read: a bad --out fails at once
        check_report_out(out, results_files)
    card = read_card(model_card)
    started = time.monotonic()
    try:
        data = build_report(results_files, options, card)
        if to_stdout:
            sys.stdout.write(report_text(data, fmt.value, options.bins))
        else:
            write_report(data, out, fmt.value, options.bins)
    except BrokenPipeError:  # --out - and the reader went away
        reader_gone()
    except OSError as exc:
        raise Fail(f"cannot write {out}: {exc.strerror or exc}") from exc
    if not quiet:
        o = data["overall"]
        say(
            f"{printable(out)}: {count(o['images'], 'image')}, {count(o['faces'], 'face')}, "
            f"{count(o['errors'], 'error')} ({time.monotonic() - started:.1f} s)"
        )
