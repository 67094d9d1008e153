"""``agebatch models``: which model file scans use, whether its twin is bound to it, and its figures."""

from __future__ import annotations

import json
import os

import typer

from agebatch.cli._app import app
from agebatch.cli._params import JsonOption, ModelOption
from agebatch.common import stdio
from agebatch.common.text import printable


@app.command()
def models(model: ModelOption = None, as_json: JsonOption = False) -> None:
    """Show the model scans use (or --model): file, SHA-256, LiteRT twin, and its card's test figures."""
    from agebatch.modelfile.card import describe_model
    from agebatch.modelfile.load import MODEL_ENV, default_model_path

    stdio.require_stdout()
    source = "--model" if model else f"${MODEL_ENV}" if os.environ.get(MODEL_ENV) else "shipped with agebatch"
    info = describe_model(model or default_model_path(), source)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        if key != "test_figures" and not (key == "adapted" and value is None):
            typer.echo(f"{key:>13}: {printable(value)}")
    for name, scored in info["test_figures"].items():
        parts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in scored.items()]
        typer.echo(f"{'test ' + name:>13}: {', '.join(parts)}")
