"""``agebatch adapt``: a model whose read-out fits a user's own labelled photos."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from agebatch.cli._app import app
from agebatch.cli._params import Detector, ModelOption, QuietOption, library_option, library_values
from agebatch.common import quiet
from agebatch.common.settings import default_of, help_of
from agebatch.training.adaptoptions import AdaptOptions

EXAMPLES_ADAPT = """
Examples:

\b
  agebatch adapt labels.csv --out mine/          # labels.csv: path,age,gender
  agebatch scan photos/ --model mine/adapted.keras --out results.csv
  agebatch adapt faces/labels.csv --detector none --out mine/   # crops
"""


def _option(name: str, *flags: str, **limits):
    return library_option(AdaptOptions, name, *flags, **limits)


def _default(name: str):
    return default_of(AdaptOptions, name)


@app.command(epilog=EXAMPLES_ADAPT)
def adapt(
    labelled: Annotated[
        list[Path], typer.Argument(help=help_of(AdaptOptions, "labelled"), show_default=False, metavar="LABELLED")
    ],
    out_dir: Annotated[Path, _option("out_dir", "--out", metavar="DIR")] = Path(_default("out_dir")),
    model: ModelOption = None,
    name: Annotated[str, _option("name")] = _default("name"),
    detector: Annotated[Detector, _option("detector", metavar=None)] = Detector(_default("detector")),
    folds: Annotated[int, _option("folds", min=2, max=20)] = _default("folds"),
    min_faces: Annotated[int, _option("min_faces", min=10)] = _default("min_faces"),
    seed: Annotated[int, _option("seed", min=0)] = _default("seed"),
    quiet_: QuietOption = False,
) -> None:
    """Refit the model's read-out on your own labelled photos (k-fold checked) and write the adapted model."""
    from agebatch.training.adapt import adapt as run_adapt
    from agebatch.training.adapt import summary

    quiet.load_tensorflow("agebatch adapt")
    values = library_values(AdaptOptions, dict(locals()))
    options = AdaptOptions(**{**values, "labelled": tuple(str(p) for p in labelled), "progress": not quiet_})
    if not quiet_:
        logging.getLogger("agebatch").setLevel(logging.INFO)
    result = run_adapt(options)
    if not quiet_:
        typer.echo(summary(result))
