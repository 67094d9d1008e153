"""One image's way through a scan: decode -> detect -> crop, and the rows it becomes.

``scanner`` runs this in a thread pool on one machine; ``distributed`` runs the same steps in Ray
actors. Both write rows through ``results``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from agebatch import results
from agebatch.common import urls
from agebatch.common.text import one_line
from agebatch.scanning import detectors, discovery, faces, images, videos, videoscan
from agebatch.scanning.options import ScanOptions
from agebatch.scanning.predictor import Estimates, Predictor
from agebatch.scanning.rows import face_columns


@dataclass
class Work:
    """One image on its way through the pipeline."""

    path: str
    key: results.FileKey | None
    faces: list[faces.Face] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    error: str | None = None
    taken_at: str | None = None
    video: videoscan.VideoResult | None = None  # what a video became (its people), instead of faces


class Pipeline:
    """Decode, detect and crop one image at a time (thread-safe: one detector per thread). A video is
    scanned whole here, its people estimated with ``predictor`` as their tracks end."""

    def __init__(self, options: ScanOptions, image_size: int, predictor: Predictor | None = None) -> None:
        self.options = options
        self.image_size = image_size
        self.predictor = predictor
        self.decode_side = detectors.decode_side(options.detector, image_size)
        self.stopping = threading.Event()  # set when the scan is interrupted: a long video stops early
        self._local = threading.local()

    def detector(self) -> faces.Detector:
        if not hasattr(self._local, "detector"):  # one per thread: MTCNN keeps per-call state
            self._local.detector = detectors.make_detector(
                self.options.detector, self.options.min_face, self.options.min_score
            )
        return self._local.detector

    def process(self, work: Work) -> Work:
        if work.error:
            return work
        if self.predictor is not None and videoscan.is_video(work.path):
            return self._process_video(work)
        try:
            decoded = images.decode(work.path, max_side=self.decode_side)
        except images.ImageError as exc:
            work.error = str(exc)
            return work
        work.taken_at = decoded.taken_at
        try:
            found, work.crops = faces.find_faces(decoded.image, self.detector(), self.image_size, decoded.scale)
            work.faces = [face.scaled(decoded.scale) for face in found]
        except Exception as exc:  # a detector failure on one odd image must not end the run
            work.faces, work.crops = [], []
            work.error = f"face detection failed: {one_line(exc)}"
        return work

    def _process_video(self, work: Work) -> Work:
        """A video scanned whole: its people (or faces per frame), or the reason it cannot be read."""
        options = self.options
        try:
            work.video = videoscan.scan_video(
                work.path,
                self.detector(),
                self.predictor,
                options.video_fps,
                options.video_rows,
                self.decode_side,
                self.stopping,
            )
        except videos.VideoError as exc:
            work.error = str(exc)
        except Exception as exc:  # a detector or decoder failure on one odd video must not end the run
            work.error = f"video failed: {one_line(exc)}"
        else:
            work.taken_at = work.video.taken_at
        return work


def rows_of(work: Work, estimates: Estimates | None) -> list[dict]:
    """The image's rows: one per face, or one saying why it has none (no face, or the error); a
    video's: one per person seen (or per face per sampled frame)."""
    base = {"path": results.display_path(work.path), "file_size": None, "file_mtime": None, "taken_at": work.taken_at}
    if work.key is not None:
        base.update(file_size=work.key.size, file_mtime=work.key.mtime)
    if work.error:
        return [dict(base, face=None, status="error", error=work.error, faces=0)]
    if work.video is not None:
        return _video_rows(work.video, base)
    if not work.faces:
        return [dict(base, face=None, status="no_face", error=None, faces=0)]
    return [
        dict(
            base,
            **face_columns(index, face, estimates.prediction(index)),
            status="ok",
            error=None,
            faces=len(work.faces),
        )
        for index, face in enumerate(work.faces)
    ]


def _video_rows(video: videoscan.VideoResult, base: dict) -> list[dict]:
    """A video's rows: each person (or face per frame: ``frames`` empty) with when it was seen,
    numbered 0..n-1 like a photo's faces (resume and merge read them alike); a note (the video was
    cut short) rides in the error column of every row, which keeps its ``ok`` status."""
    if not video.seen:
        return [dict(base, face=None, status="no_face", error=video.note, faces=0)]
    return [
        dict(
            base,
            **face_columns(seen.track, seen.face, seen.prediction),
            status="ok",
            error=video.note,
            faces=len(video.seen),
            t_first=seen.t_first,
            t_last=seen.t_last,
            frames=None if video.per_frame else seen.frames,
        )
        for seen in video.seen
    ]


def _key_of(candidate: discovery.Candidate) -> results.FileKey | None:
    """The file's identity for ``--resume``: from the object store's listing, else looked up."""
    if candidate.size is not None:
        return results.FileKey(candidate.path, candidate.size, candidate.mtime or 0.0)
    if urls.is_url(candidate.path):
        from agebatch.scanning import remote

        info = remote.object_info(candidate.path)
        return None if info is None else results.FileKey(candidate.path, *info)
    return results.file_key(candidate.path)


def pending_work(
    paths: Iterable[str | os.PathLike],
    options: ScanOptions,
    skip: Callable[[results.FileKey | None], bool] | None = None,
    on_skip: Callable[[], None] | None = None,
) -> Iterator[Work]:
    """The images this scan is to process, in discovery order: this shard's, less those ``skip``
    says are done (``--resume``), each with its file identity or the reason it cannot be read."""
    for candidate in discovery.discover(paths, options.recursive, options.exclude, options.follow_symlinks):
        if options.shard is not None and not options.shard.holds(candidate.path):
            continue  # another shard's image
        key = _key_of(candidate) if candidate.error is None else None
        if skip is not None and key is not None and skip(key):
            if on_skip:
                on_skip()
            continue
        yield Work(
            candidate.path, key, error=candidate.error or (None if key else "file vanished before it could be read")
        )
