"""Every choice and default of the reporting layer, in one cheap module (the CLI reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from agebatch.common.settings import setting

REPORT_FORMATS = ("html", "json")
BIN_WIDTHS = (1, 5)  # years per bar of the age histograms
BREAKDOWNS = ("folder", "taken_at")  # what the comparison charts and tables compare


@dataclass(frozen=True)
class ReportOptions:
    """How results are summarised; ``build_report`` and ``write_report`` take these as keywords."""

    depth: int = setting(1, "Folder levels below the scanned root to group by.")
    bins: int = setting(5, "Default age histogram bin width in years.")
    min_gender_prob: float = setting(0.0, "Leave faces with a less confident gender call out of gender splits.")
    low_confidence: float = setting(0.6, "Gender calls below this probability count as low confidence.")
    by: tuple[str, ...] = setting(
        BREAKDOWNS,
        "Compare faces by folder and/or by taken_at (capture date), in this order; repeat to give both. "
        "Defaults to both.",
    )
