"""What the web app does, without Streamlit: analyse uploaded photos, read and filter a results file,
cut face thumbnails. The pages in ``app`` only lay these out, so they are tested like any library code.

Uploads are written to a private temporary folder (mode 0700), analysed through ``scanning.photo``
exactly as ``agebatch predict`` does, and removed at once. Thumbnails are read only for paths listed
in the results file the server was started with, through the same safe decoder a scan uses.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from agebatch.common.files import read_regular
from agebatch.common.text import one_line
from agebatch.results import ALL_COLUMNS
from agebatch.results.schema import excel_safe, results_format

RESULTS_READ_LIMIT = 1 << 30  # bytes of a results file the browser page loads at most
NUMERIC = ("face", "x", "y", "width", "height", "face_score", "age", "gender_prob", "age_low", "age_high")
STATUSES = ("ok", "no_face", "error")


DISPLAY_SIDE = 2048  # pixels: the longest side of an upload's picture kept for the page
UPLOAD_VIDEO_SECONDS = 120  # of an uploaded video, only the first two minutes are scanned (a page, not a batch job)
ROWS_NAME = "rows.csv"  # what the report calls the rows shown in the page


class ResultsFileError(ValueError):
    """A results file the app cannot show; the message is one line."""


@dataclass
class UploadResult:
    """One uploaded photo (or video): its rows in the results file's terms (status, error, faces) and
    the picture (none for a video)."""

    name: str
    status: str  # ok, no_face or error, as in a results file
    error: str | None = None
    rows: list[dict] = field(default_factory=list)
    picture: Image.Image | None = None  # the photo with boxes and labels drawn
    photo: object = None  # scanning.photo.PhotoResult, for Grad-CAM


def analyse_upload(name: str, data: bytes, predictor, detector: str) -> UploadResult:
    """Find and estimate the faces in one uploaded file (``data``), named ``name`` in messages: a
    photo, or a short video (its people)."""
    from agebatch.scanning.images import ImageError
    from agebatch.scanning.photo import analyse, drawn
    from agebatch.scanning.rows import shown_columns
    from agebatch.scanning.videoscan import is_video

    suffix = "".join(c for c in Path(name).suffix.lower()[:10] if c.isascii() and (c.isalnum() or c == "."))
    with tempfile.TemporaryDirectory(prefix="agebatch-upload-") as folder:  # created 0700, removed on exit
        path = Path(folder) / ("upload" + suffix)
        try:
            path.write_bytes(data)
            if is_video(str(path)):
                return _video_upload(name, path, predictor, detector)
            result = analyse(path, predictor, detector)
        except ImageError as exc:
            return UploadResult(name, "error", str(exc))
        except Exception as exc:  # a detector failure on one odd image is that image's error, as in a scan
            return UploadResult(name, "error", f"face detection failed: {one_line(exc)}")
    result = shown_at_most(result, DISPLAY_SIDE)
    if not result.faces:
        return UploadResult(name, "no_face", picture=result.image, photo=result)
    rows = [{"photo": name, **shown_columns(f.index, f.face, f.prediction)} for f in result.faces]
    return UploadResult(name, "ok", rows=rows, picture=drawn(result), photo=result)


def _video_upload(name: str, path: Path, predictor, detector: str) -> UploadResult:
    """A short uploaded video: one row per person seen, as a scan writes it (no picture: a video's
    people are in many frames)."""
    from agebatch.scanning import detectors, videos
    from agebatch.scanning.options import ScanOptions
    from agebatch.scanning.rows import shown_columns
    from agebatch.scanning.videoscan import scan_video

    options = ScanOptions(detector=detector)
    finder = detectors.make_detector(detector, options.min_face, options.min_score)
    side = detectors.decode_side(detector, predictor.image_size)
    try:
        video = scan_video(str(path), finder, predictor, options.video_fps, "tracks", side, until=UPLOAD_VIDEO_SECONDS)
    except videos.VideoError as exc:
        return UploadResult(name, "error", str(exc))
    if not video.seen:
        return UploadResult(name, "no_face", video.note)
    rows = [
        {"photo": name, **shown_columns(s.track, s.face, s.prediction), "t_first": s.t_first, "t_last": s.t_last}
        for s in video.seen
    ]
    return UploadResult(name, "ok", video.note, rows=rows)


def shown_at_most(result, side: int):
    """``result`` (a ``scanning.photo.PhotoResult``) with its picture no larger than ``side`` pixels: what
    the page shows and Grad-CAM draws on, kept per visitor, so a huge upload is not kept at full size."""
    from PIL import Image

    factor = max(result.image.size) / side
    if factor <= 1:
        return result
    size = (max(1, round(result.image.width / factor)), max(1, round(result.image.height / factor)))
    shrunk = result.image.resize(size, Image.Resampling.BILINEAR)
    return dataclasses.replace(result, image=shrunk, scale=result.scale * result.image.width / size[0])


def faces_csv(rows: list[dict]) -> str:
    """The faces of the uploads as CSV for a spreadsheet: a cell that would run as a formula (an upload
    named ``=1+2.jpg``) starts with a quote, as ``scan --excel-safe`` writes it."""
    safe = [{k: excel_safe(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    return pd.DataFrame(safe).to_csv(index=False)


def read_results(source: str | os.PathLike | bytes) -> pd.DataFrame:
    """A results file (a path, or the bytes of an upload) as a frame: text columns as text, numbers as
    numbers, plus ``folder`` (each image's parent folder). Raises ``ResultsFileError``, whose words
    name the file when it is a path."""
    named = "" if isinstance(source, bytes) else f"{source}: "
    try:
        data = source if isinstance(source, bytes) else read_regular(source, RESULTS_READ_LIMIT)
    except (OSError, ValueError) as exc:  # strerror: the file is named once, not again in the OS's words
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        raise ResultsFileError(f"cannot read {source}: {reason}") from exc
    fmt = results_format(data.split(b"\n", 1)[0])
    if fmt is None:
        raise ResultsFileError(f"{named}not an agebatch results file (it does not start with the results header)")
    try:
        if fmt == "csv":
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        else:
            frame = pd.read_json(io.BytesIO(data), lines=True, dtype=False)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:  # TypeError: a JSON line that is no object
        raise ResultsFileError(f"{named}unreadable results file: {one_line(exc)}") from exc
    for column in ALL_COLUMNS:
        if column not in frame:
            frame[column] = "" if column in ("path", "gender", "status", "error", "taken_at") else np.nan
    frame = frame[list(ALL_COLUMNS)].copy()
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in ("path", "gender", "status", "error"):
        frame[column] = frame[column].fillna("").astype(str)
    frame["folder"] = frame["path"].map(lambda p: os.path.dirname(p) or ".")
    return frame


@dataclass(frozen=True)
class Filters:
    """What the results page narrows the rows to; None or empty means no narrowing."""

    age: tuple[float, float] | None = None
    genders: tuple[str, ...] = ()
    min_gender_prob: float = 0.0
    folders: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


def apply_filters(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """The rows that pass ``filters``. Age, gender and confidence filters apply to face rows only, so
    they leave out no-face and error rows; the status filter chooses among those."""
    keep = pd.Series(True, index=frame.index)
    if filters.statuses:
        keep &= frame["status"].isin(filters.statuses)
    if filters.folders:
        keep &= frame["folder"].isin(filters.folders)
    is_face = frame["status"] == "ok"
    if filters.age is not None:
        low, high = filters.age
        keep &= is_face & frame["age"].between(low, high)
    if filters.genders:
        keep &= is_face & frame["gender"].isin(filters.genders)
    if filters.min_gender_prob > 0:
        keep &= is_face & (frame["gender_prob"] >= filters.min_gender_prob)
    return frame[keep]


def as_csv(frame: pd.DataFrame) -> bytes:
    """Rows for download, in the results file's own columns (a file ``agebatch report`` reads)."""
    return frame[list(ALL_COLUMNS)].to_csv(index=False).encode("utf-8")


def caveat() -> str:
    """The caveats every page shows under its numbers, with the served model's figures (its card)."""
    from agebatch.modelfile.card import read_card
    from agebatch.reporting.aggregate import card_summary
    from agebatch.reporting.caveats import plain_caveat

    return plain_caveat(card_summary(read_card()))


def report_data(frame: pd.DataFrame, model_card: dict | None = None) -> dict:
    """The report's aggregates for these rows (the same numbers ``agebatch report`` would give)."""
    from agebatch.reporting.aggregate import report_of
    from agebatch.reporting.options import ReportOptions
    from agebatch.reporting.tally import tally_frame

    options = ReportOptions()
    tally = tally_frame(frame[list(ALL_COLUMNS)], ROWS_NAME, options)
    return report_of([tally], [ROWS_NAME], options, model_card)


class Thumbnails:
    """Face thumbnails cut from the images a results file lists, and from no other path."""

    def __init__(self, listed: Iterable[str], base: Path, side: int = 112) -> None:
        self.listed = frozenset(listed)
        self.base = base  # relative paths are tried against the working folder, then this one
        self.side = side
        self._last: tuple[Path, object] | None = None

    def _resolve(self, path: str) -> Path | None:
        if path not in self.listed:
            return None
        candidate = Path(path)
        if candidate.is_absolute():
            return candidate
        for root in (Path.cwd(), self.base):
            if (root / candidate).is_file():
                return root / candidate
        return None

    def face(self, row: dict) -> Image.Image | None:
        """The face of one results row, squared and resized, or None when the image is not there or
        the row's box is not a box inside it."""
        path = self._resolve(str(row.get("path", "")))
        try:
            x, y, w, h = (float(row.get(k)) for k in ("x", "y", "width", "height"))
        except (TypeError, ValueError):
            return None
        if path is None or not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            return None
        decoded = self._decoded(path)
        if decoded is None:
            return None
        x, y, w, h = (v / decoded.scale for v in (x, y, w, h))
        half = max(w, h) * 0.6
        cx, cy = x + w / 2, y + h / 2
        box = (
            max(0, round(cx - half)),
            max(0, round(cy - half)),
            min(decoded.image.width, round(cx + half)),
            min(decoded.image.height, round(cy + half)),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        return decoded.image.crop(box).resize((self.side, self.side), Image.Resampling.BILINEAR)

    def _decoded(self, path: Path):
        """The decoded image, kept for the next rows of the same photo (a group photo has many faces)."""
        from agebatch.scanning.images import ImageError, decode

        if self._last is not None and self._last[0] == path:
            return self._last[1]
        try:
            decoded = decode(path, max_side=2048)
        except ImageError:
            decoded = None
        self._last = (path, decoded)
        return decoded


def plain(text: object) -> str:
    """``text`` safe to hand to a Streamlit element that reads Markdown: every Markdown and HTML
    character escaped, so a file name or a results cell shows as the text it is."""
    special = set("\\`*_{}[]()#+-.!|<>~$&:\"'")
    flat = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in special else c for c in flat)
