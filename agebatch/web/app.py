"""The Streamlit script of ``agebatch serve``: two pages, "Try photos" and "Browse results".

Run through ``agebatch serve`` (``server``), which sets the safe Streamlit settings and tells this
script, by environment, which results file it may read images for. Everything shown that comes from
a file name or a results file goes through ``st.text``, ``st.dataframe`` or ``core.plain``: text,
never Markdown or HTML.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from agebatch.scanning.discovery import IMAGE_EXTENSIONS
from agebatch.scanning.options import DEFAULT_DETECTOR, DETECTORS, EXPLAIN_HEADS
from agebatch.scanning.videos import VIDEO_EXTENSIONS
from agebatch.web import core
from agebatch.web.options import ServeOptions
from agebatch.web.server import DETECTOR_ENV, MAX_UPLOAD_ENV, RESULTS_ENV, THUMBNAILS_ENV

PAGES = ("Try photos", "Browse results")
UPLOAD_TYPES = sorted(suffix.lstrip(".") for suffix in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS)
MAX_UPLOAD_BYTES = int(os.environ.get(MAX_UPLOAD_ENV, ServeOptions().max_upload_mb)) * 2**20
TABLE_ROWS = 1000  # rows of the filtered table shown in the page (the download has all)


@st.cache_resource(show_spinner="Loading the model…")
def predictor():
    """The model, loaded once per server (not per visitor or per upload)."""
    from agebatch.scanning.predictor import Predictor

    return Predictor()


@st.cache_data(show_spinner="Reading the results file…", max_entries=1)  # one copy, the current one
def startup_results(path: str, mtime: float):
    """The results file the server was started with, read again only when it changes."""
    return core.read_results(path)


def try_photos() -> None:
    st.header("Try photos")
    first = os.environ.get(DETECTOR_ENV, DEFAULT_DETECTOR)
    detector = st.selectbox("Face detector", DETECTORS, index=DETECTORS.index(first), key="detector")
    uploads = st.file_uploader(
        "Photos or short videos (drag and drop one or many)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key="photos",
    )
    if not uploads:
        st.info(
            "Drop photos here: each is shown with its faces boxed, their ages and genders. "
            "A video gives one row per person seen in it."
        )
        return
    _forget_other_uploads(uploads, detector)
    rows = []
    for number, upload in enumerate(uploads):
        data = upload.getvalue()
        st.subheader(core.plain(upload.name))
        if len(data) > MAX_UPLOAD_BYTES:
            st.error(f"error: file too large ({len(data) // 2**20} MB; at most {MAX_UPLOAD_BYTES // 2**20} MB a file)")
            continue
        result = _analysed(upload, data, detector)
        if result.status == "error":
            st.error(f"error: {core.plain(result.error)}")
            continue
        if result.status == "no_face":
            st.warning("no_face: no face found in this file")
            if result.picture is not None:
                st.image(result.picture, width=360)
            continue
        if result.error:  # a video cut short: its rows are what decoded
            st.warning(core.plain(result.error))
        if result.picture is not None:
            st.image(result.picture)
        st.dataframe(result.rows, hide_index=True, placeholder="")
        rows += result.rows
        if result.photo is not None:  # Grad-CAM explains a photo's faces
            _grad_cam(number, result)
    if rows:
        st.download_button("Download the faces as CSV", core.faces_csv(rows), "faces.csv", "text/csv")


def _upload_key(upload, detector: str) -> tuple:
    return getattr(upload, "file_id", None) or upload.name, upload.size, detector


def _forget_other_uploads(uploads, detector: str) -> None:
    """A visitor's kept analyses are those of the photos on the page now, no others."""
    cache = st.session_state.setdefault("analysed", {})
    current = {_upload_key(upload, detector) for upload in uploads}
    for key in [key for key in cache if key not in current]:
        del cache[key]


def _analysed(upload, data: bytes, detector: str) -> core.UploadResult:
    """An upload's analysis, kept for this visitor while the upload stays on the page (a click on a
    Grad-CAM button reruns the page, not the detector)."""
    cache = st.session_state.setdefault("analysed", {})
    key = _upload_key(upload, detector)
    if key not in cache:
        cache[key] = core.analyse_upload(upload.name, data, predictor(), detector)
    return cache[key]


def _grad_cam(number: int, result: core.UploadResult) -> None:
    with st.expander("Why? (Grad-CAM)"):
        face = st.selectbox("Face", [r["face"] for r in result.rows], key=f"face-{number}")
        head = st.radio("Estimate", EXPLAIN_HEADS, horizontal=True, key=f"head-{number}")
        if st.button("Explain", key=f"explain-{number}"):
            from agebatch.scanning.explain import explain_photo

            with st.spinner("Computing Grad-CAM (loads Keras the first time)…"):
                explanation = explain_photo(result.photo, predictor().model, head, face)
            st.image(explanation.picture)


def browse_results() -> None:
    st.header("Browse results")
    startup = os.environ.get(RESULTS_ENV)
    if startup:
        st.text(f"Results file: {startup}")
        try:
            frame = startup_results(startup, Path(startup).stat().st_mtime)
        except (OSError, core.ResultsFileError) as exc:
            st.error(f"The results file cannot be read any more: {core.plain(exc)}")
            return
        thumbnails = core.Thumbnails(frame["path"], Path(startup).parent)
    else:
        upload = st.file_uploader(
            "Results file (CSV or JSON Lines from agebatch scan)", type=["csv", "jsonl", "ndjson"]
        )
        if upload is None:
            st.info("Start the server with --results FILE, or drop a results file here.")
            return
        try:
            frame = core.read_results(upload.getvalue())
        except core.ResultsFileError as exc:
            st.error(core.plain(exc))
            return
        thumbnails = None  # an uploaded file may list any path: no images are read for it
    filtered = core.apply_filters(frame, _filters(frame))
    faces = filtered[filtered["status"] == "ok"]
    st.text(f"rows: {len(filtered)} of {len(frame)} (faces: {len(faces)})")
    st.download_button("Download the filtered rows as CSV", core.as_csv(filtered), "filtered.csv", "text/csv")
    if len(faces):
        _charts(filtered)
    st.dataframe(filtered.drop(columns="folder").head(TABLE_ROWS), hide_index=True, placeholder="")  # no "None"
    if thumbnails is None:
        st.caption("Face thumbnails are shown for the results file the server was started with (--results).")
    else:
        _thumbnail_grid(faces, thumbnails)


def _filters(frame) -> core.Filters:
    with st.sidebar:
        st.subheader("Filters")
        statuses = st.multiselect("Status", core.STATUSES, key="statuses")
        age = st.slider("Age", 0, 100, (0, 100), key="age")
        genders = st.multiselect("Gender", ("female", "male"), key="genders")
        confidence = st.slider("Gender confidence at least", 0.5, 1.0, 0.5, 0.05, key="confidence")
        folders = st.multiselect("Folder", sorted(frame["folder"].unique())[:500], key="folders")
    return core.Filters(
        age=None if age == (0, 100) else (float(age[0]), float(age[1]) + 0.999),
        genders=tuple(genders),
        min_gender_prob=0.0 if confidence <= 0.5 else float(confidence),
        folders=tuple(folders),
        statuses=tuple(statuses),
    )


def _charts(filtered) -> None:
    from agebatch.reporting.charts import age_figure, pyramid_figure

    summary = core.report_data(filtered)["overall"]
    left, right = st.columns(2)
    left.plotly_chart(pyramid_figure(summary, title="Age group and gender"), width="stretch")  # half width
    right.plotly_chart(age_figure(summary["age_histogram_by_gender"], "Estimated age by gender", 5), width="stretch")


def _thumbnail_grid(faces, thumbnails: core.Thumbnails) -> None:
    limit = int(os.environ.get(THUMBNAILS_ENV, ServeOptions().thumbnails))
    st.subheader("Faces")
    if len(faces) > limit:
        st.caption(f"the first {limit} of {len(faces)} faces (serve --thumbnails N shows more)")
    columns = st.columns(6)
    shown = 0
    for row in faces.head(limit).to_dict("records"):
        picture = thumbnails.face(row)
        cell = columns[shown % len(columns)]
        if picture is None:
            cell.text(f"(image not found)\n{Path(row['path']).name}")
        else:
            cell.image(picture)
            cell.text(f"{Path(row['path']).name}\n{row['age']:.0f} y, {row['gender']}")
        shown += 1


def main() -> None:
    st.set_page_config(page_title="agebatch", layout="wide")
    page = st.sidebar.radio("Page", PAGES, key="page")
    if page == PAGES[0]:
        try_photos()
    else:
        browse_results()
    st.caption(core.plain(core.caveat()))  # under the numbers on both pages; card text is never markup


main()
