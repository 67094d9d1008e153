"""Training curves (age MAE and gender accuracy per epoch, train and validation): HTML and PNG."""

from __future__ import annotations

import os
from pathlib import Path

from agebatch.common import atomic
from agebatch.common.htmlpage import page

PANELS = (("age_output_mae", "age MAE (years)"), ("gender_output_accuracy", "gender accuracy"))


def _series(history: list[dict], key: str) -> list[float | None]:
    return [h.get(key) for h in history]


def write_curves(history: list[dict], stem: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<stem>.html`` (self-contained Plotly) and ``<stem>.png`` (matplotlib); returns both paths."""
    stem = Path(stem)
    epochs = list(range(1, len(history) + 1))
    html = stem.with_name(stem.name + ".html")
    png = stem.with_name(stem.name + ".png")
    _write_html(history, epochs, html)
    _write_png(history, epochs, png)
    return html, png


def _write_html(history, epochs, path: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=2, subplot_titles=[title for _, title in PANELS])
    for col, (key, _) in enumerate(PANELS, start=1):
        for prefix, name in (("", "train"), ("val_", "validation")):
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=_series(history, prefix + key),
                    mode="lines+markers",
                    name=f"{name}",
                    legendgroup=name,
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        figure.update_xaxes(title_text="epoch", row=1, col=col)
    figure.update_layout(title="agebatch training curves", template="plotly_white", height=420)
    body = figure.to_html(include_plotlyjs=True, full_html=False)
    atomic.write_text(path, page("agebatch training curves", body))


def _write_png(history, epochs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, (key, title) in zip(axes, PANELS):
        for prefix, name in (("", "train"), ("val_", "validation")):
            values = _series(history, prefix + key)
            axis.plot(epochs, [float("nan") if v is None else v for v in values], marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    with atomic.atomic_writer(path, binary=True) as handle:
        fig.savefig(handle, dpi=100, format="png")
    plt.close(fig)
