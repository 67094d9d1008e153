"""``agebatch serve``: the local web app (Streamlit, an optional extra), started only once all is checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agebatch.cli._app import Fail, app
from agebatch.cli._params import (
    DEFAULT_DETECTOR,
    DetectorOption,
    ModelOption,
    library_values,
    serve_default,
    serve_option,
)
from agebatch.web.options import ServeOptions

EXAMPLES_SERVE = """
Examples:

\b
  agebatch serve                              # open http://127.0.0.1:8501
  agebatch serve --results results.csv        # browse a scan, with faces
  agebatch serve --host 0.0.0.0 --port 8080   # other machines (think first)
"""


@app.command(epilog=EXAMPLES_SERVE)
def serve(
    host: Annotated[str, serve_option("host", metavar="ADDRESS")] = serve_default("host"),
    port: Annotated[int, serve_option("port", min=1, max=65535)] = serve_default("port"),
    results: Annotated[
        Path | None,
        typer.Option(help="Results file to browse; its images are the only files the pages read.", metavar="FILE"),
    ] = None,
    max_upload_mb: Annotated[int, serve_option("max_upload_mb", min=1, max=2000)] = serve_default("max_upload_mb"),
    thumbnails: Annotated[int, serve_option("thumbnails", min=0, max=1000)] = serve_default("thumbnails"),
    detector: DetectorOption = DEFAULT_DETECTOR,
    model: ModelOption = None,
) -> None:
    """A local web app: drop photos to see their faces, ages and genders, or browse a results file."""
    from agebatch.scanning.detectors import check_detector
    from agebatch.web.server import require_streamlit
    from agebatch.web.server import serve as run_server

    options = ServeOptions(**library_values(ServeOptions, locals()))
    require_streamlit()
    if results is not None:
        from agebatch.web.core import ResultsFileError, read_results

        try:
            read_results(results)
        except ResultsFileError as exc:  # its words name the file
            raise Fail(str(exc)) from exc
    if model is not None:
        from agebatch.scanning.predictor import Predictor

        Predictor(model)  # a bad model is an error now, not in the page
    check_detector(detector.value)
    raise typer.Exit(run_server(options, results, model, detector.value))
