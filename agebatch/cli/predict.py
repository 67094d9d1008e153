"""``agebatch predict`` and ``agebatch explain``: one photo at a time, examined in full (``scanning.photo``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agebatch.cli._app import EXIT_NO_FACE, EXIT_USAGE, Fail, app, fail_message, say
from agebatch.cli._params import (
    DEFAULT_DETECTOR,
    Detector,
    DetectorOption,
    FlipAverageOption,
    Head,
    JsonOption,
    MinFaceOption,
    MinScoreOption,
    ModelOption,
    print_table,
    scan_default,
)
from agebatch.common import atomic, quiet, stdio
from agebatch.common.text import one_line, printable

PREDICT_COLUMNS = ("image", "face", "box (x, y, w, h)", "age", "gender", "confidence")
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _predictor(model: Path | None, flip_average: bool = False):
    from agebatch.scanning.options import ModelOptions
    from agebatch.scanning.predictor import Predictor

    return Predictor.from_options(ModelOptions(model=str(model) if model else None, flip_average=flip_average))


def _finder(detector: Detector, min_face: int, min_score: float | None):
    """The face detector, its model files checked first, built once for every photo given."""
    from agebatch.scanning.detectors import check_detector, make_detector

    check_detector(detector.value)
    return make_detector(detector.value, min_face, min_score)


def _analyse(image: Path, predictor, finder):
    from agebatch.scanning.images import ImageError
    from agebatch.scanning.photo import analyse

    if not image.is_file():
        raise Fail(f"no such image: {image}")
    try:
        return analyse(image, predictor, finder)
    except (ImageError, OSError, ValueError) as exc:  # ValueError: a detector failure on an odd image
        raise Fail(f"{image}: {exc if isinstance(exc, ImageError) else one_line(exc)}") from exc


def _check_picture_out(out: Path, inputs: list[Path]) -> None:
    """The cheap checks of a picture to write, before any model loads: a usable name and place, and
    not one of the inputs (nothing a user has is replaced by a drawing of it)."""
    if out.suffix.lower() not in PICTURE_SUFFIXES:
        raise Fail(f"cannot tell a picture format from {out.name!r}: name a {', '.join(PICTURE_SUFFIXES)} file")
    atomic.check_output(out, inputs)


def _write_picture(picture, out: Path) -> None:
    try:
        atomic.write_image(picture, out)
    except (OSError, ValueError) as exc:
        raise Fail(f"cannot write {out}: {exc}") from exc


def _age_text(prediction) -> str:
    """``31.4``, or ``31.4 (25-38)`` with the model's 80% interval when it gives one."""
    if prediction.age_low is None:
        return f"{prediction.age:.1f}"
    return f"{prediction.age:.1f} ({prediction.age_low:.0f}-{prediction.age_high:.0f})"


def _table_rows(image: Path, result) -> list[list[str]]:
    """The photo's lines of ``predict``'s table: one per face, or one saying none was found."""
    rows = [
        [
            printable(image),
            str(f.index),
            ", ".join(str(round(v)) for v in (f.face.x, f.face.y, f.face.width, f.face.height)),
            _age_text(f.prediction),
            f.prediction.gender,
            f"{100 * f.prediction.gender_prob:.0f}%",
        ]
        for f in result.faces
    ]
    return rows or [[printable(image), "-", "no face found", "", "", ""]]


@app.command()
def predict(
    images: Annotated[list[Path], typer.Argument(help="Photos to examine.", show_default=False, metavar="IMAGE")],
    as_json: JsonOption = False,
    draw: Annotated[
        Path | None,
        typer.Option(help="Save the (single) photo with boxes and labels drawn, as PNG/JPEG.", metavar="FILE"),
    ] = None,
    detector: DetectorOption = DEFAULT_DETECTOR,
    min_face: MinFaceOption = scan_default("min_face"),
    min_score: MinScoreOption = scan_default("min_score"),
    model: ModelOption = None,
    flip_average: FlipAverageOption = False,
) -> None:
    """Show the faces found in photos with box, age, gender and confidence.

    Ages and genders are estimates of apparent age and gender from appearance. Each age comes with an
    80% interval: the range the true age is in for about 8 faces in 10 like the model's test faces
    (less often, and ages may be biased, on a population unlike them: see agebatch adapt).

    A photo that cannot be read is reported on stderr (and in --json as a record with an error) and
    the others are still shown; the exit code is 2 only when none could be read.
    """
    from agebatch.scanning.rows import face_record

    stdio.require_stdout()  # the table (or JSON) is all predict says
    if draw is not None and len(images) != 1:
        raise Fail("--draw takes exactly one image")
    if draw is not None:
        _check_picture_out(draw, images)
    finder = _finder(detector, min_face, min_score)
    predictor = _predictor(model, flip_average)
    records, rows, failed = [], [], 0
    for image in images:
        try:
            result = _analyse(image, predictor, finder)
        except Fail as exc:  # said on stderr; the other photos are still shown
            failed += 1
            fail_message(str(exc))
            records.append({"path": str(image), "error": str(exc)})
            continue
        records += [face_record(str(image), f.index, f.face, f.prediction) for f in result.faces]
        rows += _table_rows(image, result)
        if draw is not None:
            from agebatch.scanning.photo import drawn

            _write_picture(drawn(result), draw)
    if as_json:
        typer.echo(json.dumps(records, indent=2))
    else:
        print_table(PREDICT_COLUMNS, rows)
    if failed == len(images):
        raise typer.Exit(EXIT_USAGE)


@app.command()
def explain(
    image: Annotated[Path, typer.Argument(help="Photo to explain.", show_default=False, metavar="IMAGE")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Picture to write (PNG or JPEG).", metavar="FILE")],
    head: Annotated[Head, typer.Option(help="Which estimate to explain.")] = Head("gender"),
    face: Annotated[int | None, typer.Option(help="Explain only this face (0 = largest).", min=0, metavar="N")] = None,
    detector: DetectorOption = DEFAULT_DETECTOR,
    min_face: MinFaceOption = scan_default("min_face"),
    min_score: MinScoreOption = scan_default("min_score"),
    model: ModelOption = None,
) -> None:
    """Grad-CAM heat map of what drove the age or gender estimate, blended onto the photo."""
    _check_picture_out(out, [image])
    if not image.is_file():
        raise Fail(f"no such image: {image}")
    finder = _finder(detector, min_face, min_score)
    predictor = _predictor(model)
    from agebatch.scanning.explain import explain_photo

    result = _analyse(image, predictor, finder)
    if not result.faces:
        fail_message(f"no face found in {image}; try --detector none for a face crop")
        raise typer.Exit(EXIT_NO_FACE)
    if face is not None and face >= len(result.faces):
        raise Fail(f"--face {face}: {image} has {len(result.faces)} face(s), numbered from 0")
    quiet.load_tensorflow("agebatch explain")  # Grad-CAM runs the Keras model
    explanation = explain_photo(result, predictor.model, head.value, face, detector == Detector.none)
    _write_picture(explanation.picture, out)
    shown = "every face" if face is None else f"face {face}"
    say(f"{printable(out)}: what drove the {head.value} estimate, {shown} of {len(result.faces)}")
