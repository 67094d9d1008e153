"""The report's charts as Plotly figures, and the one script that draws them in the page.

Markup lives in ``html``; everything here is figures and their data. Chart data goes into the page as
JSON with ``<``, ``>`` and ``&`` escaped, so a name in the data cannot close the script.
"""

from __future__ import annotations

import html
import json

import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

from agebatch.contract import REPORT_MAX_AGE as MAX_AGE

COLOURS = {"male": "#3b6fb6", "female": "#d0587e", "all": "#555"}


def _script_json(value) -> str:
    text = json.dumps(value, cls=PlotlyJSONEncoder)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Charts:
    """The page's figures, each placed by ``add`` and drawn by the one ``script``."""

    def __init__(self) -> None:
        self.specs: list[tuple[str, dict]] = []

    def add(self, figure: go.Figure, height: int = 380) -> str:
        chart_id = f"chart{len(self.specs)}"
        figure.update_layout(template="plotly_white", height=height, margin=dict(l=50, r=20, t=50, b=50))
        self.specs.append((chart_id, figure.to_plotly_json()))
        return f'<div class="chart" id="{chart_id}"></div>'

    def script(self) -> str:
        calls = "\n".join(
            f"Plotly.newPlot('{cid}', {_script_json(spec['data'])}, {_script_json(spec['layout'])}, {{responsive: true, displaylogo: false}});"
            for cid, spec in self.specs
        )
        return f"<script>\n{calls}\n</script>"


def binned(hist: list[int], width: int, top: int = MAX_AGE) -> tuple[list[str], list[int]]:
    labels, counts = [], []
    for start in range(0, top + 1, width):
        labels.append(str(start) if width == 1 else f"{start}-{start + width - 1}")
        counts.append(int(sum(hist[start : start + width])))
    return labels, counts


def last_age(series: dict[str, list[int]]) -> int:
    """The oldest age with a face in any series, rounded up to the end of its 5-year bin."""
    last = max((i for hist in series.values() for i, n in enumerate(hist) if n), default=0)
    return min(MAX_AGE, (last // 5) * 5 + 4)


def count_axis(most: int, title: str = "faces") -> dict:
    """A count axis: whole numbers only (no 0.5 faces), from zero."""
    axis = {"title": title, "rangemode": "tozero", "tickformat": ",d"}
    if most < 10:
        axis["dtick"] = 1
    return axis


def pyramid_figure(summary: dict, title: str = "Population pyramid (estimated age group and gender)") -> go.Figure:
    """Age groups x gender as a population pyramid: men to the left, women to the right."""
    groups = summary["age_groups"]
    labels = [g["group"] for g in groups]
    most = max((max(g["male"], g["female"]) for g in groups), default=0)
    figure = go.Figure()
    figure.add_bar(
        y=labels,
        x=[-g["male"] for g in groups],
        orientation="h",
        name="male",
        marker_color=COLOURS["male"],
        customdata=[g["male"] for g in groups],
        hovertemplate="%{y}: %{customdata} men<extra></extra>",
    )
    figure.add_bar(
        y=labels,
        x=[g["female"] for g in groups],
        orientation="h",
        name="female",
        marker_color=COLOURS["female"],
        hovertemplate="%{y}: %{x} women<extra></extra>",
    )
    step = max(1, round(most / 4)) if most else 1
    ticks = [t for t in range(-4 * step, 4 * step + 1, step)]
    figure.update_layout(
        title=dict(text=title, x=0.5),
        barmode="relative",
        bargap=0.1,
        xaxis=dict(title="faces", tickvals=ticks, ticktext=[str(abs(t)) for t in ticks]),
        yaxis=dict(title="age group"),
    )
    return figure


def age_figure(series: dict[str, list[int]], title: str, default_bins: int, shares: bool = False) -> go.Figure:
    """Histograms with a 1-year / 5-year toggle (both sets of bars are in the figure).

    With ``shares`` each series is drawn as percentages of its own faces, so collections of different
    sizes compare by shape."""
    figure = go.Figure()
    widths = (1, 5)
    top = last_age(series)  # trimmed to the range that holds data
    for width in widths:
        for name, hist in series.items():
            labels, counts = binned(hist, width, top)
            total = sum(counts)
            figure.add_bar(
                x=labels,
                y=[100 * c / total for c in counts] if shares and total else counts,
                name=html.escape(name, quote=True),
                visible=(width == default_bins),
                marker_color=COLOURS.get(name),
                legendgroup=name,
            )
    n = len(series)
    buttons = [
        dict(label=f"{w}-year bins", method="update", args=[{"visible": [i // n == k for i in range(n * len(widths))]}])
        for k, w in enumerate(widths)
    ]
    figure.update_layout(
        title=dict(text=title, x=0.5),
        barmode="group" if n > 1 else "relative",
        bargap=0.05,
        xaxis_title="estimated age (years)",
        yaxis=(
            {"title": "share of the file's faces (%)", "rangemode": "tozero", "ticksuffix": "%"}
            if shares
            else count_axis(max((max(h) for h in series.values() if len(h)), default=0))
        ),
        updatemenus=[
            dict(
                type="buttons",
                direction="right",
                x=0,
                y=1.18,
                xanchor="left",
                active=widths.index(default_bins) if default_bins in widths else 1,
                buttons=buttons,
            )
        ],
    )
    return figure


def faces_and_median_age(labels: list[str], groups: list[dict], title: str) -> go.Figure:
    """Faces per group (bars, whole numbers) and each group's median age (dots, on an axis from zero)."""
    figure = go.Figure()
    figure.add_bar(x=labels, y=[g["faces"] for g in groups], name="faces", marker_color="#777")
    figure.add_scatter(
        x=labels,
        y=[g["median_age"] for g in groups],
        name="median age",
        yaxis="y2",
        mode="markers",
        marker=dict(size=10, color="#e08b00"),
    )
    oldest = max((g["median_age"] or 0 for g in groups), default=0)
    figure.update_layout(
        title=title,
        yaxis=count_axis(max(g["faces"] for g in groups)),
        yaxis2=dict(
            title="median age (years)", overlaying="y", side="right", range=[0, max(10, oldest * 1.15)], tickformat=",d"
        ),
    )
    return figure
