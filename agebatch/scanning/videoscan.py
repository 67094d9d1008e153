"""One video's way through a scan: sampled frames -> faces -> tracks -> one estimate per person.

A track's age, interval and gender come from its best few faces together (``KEEP_CROPS`` by detector
score x size): the mean of their ages and interval bounds, and the mean of their gender log-odds,
which steadies a read-out that one frame (a blink, a turned head) can throw. With ``--video-rows
frames`` every face of every sampled frame is a row of its own instead, numbered in order as a photo's
faces are (no tracking: ``frames`` is empty, and the report counts them as faces, not people).
Tracks are estimated as they end, so memory holds the open tracks only, however long the video.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np

from agebatch.common import urls
from agebatch.scanning import discovery, faces, tracking, videos
from agebatch.scanning.facebox import Face
from agebatch.scanning.predictor import Prediction, Predictor, to_prediction

TRACK_GAP_FRAMES = 3  # a track unseen for this many sampled frames has ended


@dataclass
class Seen:
    """A person (a track), or with ``--video-rows frames`` one face in one sampled frame."""

    face: Face
    prediction: Prediction
    t_first: float
    t_last: float
    frames: int
    track: int = 0


@dataclass
class VideoResult:
    """What a video became: who was seen, and a note when decoding stopped early."""

    seen: list[Seen] = field(default_factory=list)
    note: str | None = None
    taken_at: str | None = None
    per_frame: bool = False  # ``seen`` are faces in frames (``--video-rows frames``), not people


def is_video(path: str) -> bool:
    """A video by its extension or, for a local file without a telling one, by its first bytes. A
    photo's extension is believed (no second open for every photo); a file named like a video that
    starts like a photo is one (FFmpeg would read it as a one-frame video)."""
    extension = os.path.splitext(path)[1].lower()
    if urls.is_url(path):
        return extension in videos.VIDEO_EXTENSIONS
    if extension in discovery.IMAGE_EXTENSIONS:
        return False
    head = discovery.file_head(path)
    if extension in videos.VIDEO_EXTENSIONS:
        return not discovery.is_image_head(head)
    return videos.looks_like_video(head)


def pooled(predictor: Predictor, crops: list[np.ndarray]) -> Prediction:
    """One estimate from several crops of one face: mean age and bounds, mean gender log-odds."""
    estimates = predictor.estimate(np.stack(crops))
    females = np.clip(estimates.females.astype(np.float64), 1e-6, 1 - 1e-6)
    female = 1 / (1 + np.exp(-np.mean(np.log(females / (1 - females)))))

    def mean(values):
        return None if values is None else float(np.mean(values))

    return to_prediction(float(np.mean(estimates.ages)), female, mean(estimates.age_low), mean(estimates.age_high))


def scan_video(
    path: str,
    detector,
    predictor: Predictor,
    fps: float,
    rows: str,
    max_side: int,
    stop: threading.Event | None = None,
    until: float | None = None,
) -> VideoResult:
    """Sample, detect, track and estimate one video (``videos.VideoError`` if nothing decodes); a set
    ``stop`` (the scan is being interrupted) ends it at the next sampled frame; ``until`` scans only
    its first seconds (the web page's uploads)."""
    result = VideoResult(per_frame=rows == "frames")
    tracker = tracking.Tracker(max_gap=TRACK_GAP_FRAMES / fps)
    ended: list[tracking.Track] = []
    with videos.VideoReader(path) as reader:
        result.taken_at = reader.info.taken_at
        for frame in reader.sampled(fps, max_side, until):
            if stop is not None and stop.is_set():
                raise videos.VideoError("interrupted")
            found, crops = faces.find_faces(frame.image, detector, predictor.image_size, frame.scale)
            boxes = [face.scaled(frame.scale) for face in found]
            if result.per_frame:
                _add_frame(result, frame.seconds, boxes, predictor.estimate(np.stack(crops)) if crops else None)
            else:
                ended += _estimated(tracker.update(frame.seconds, boxes, crops), predictor)
        ended += _estimated(tracker.finish(), predictor)
        result.note = reader.cut_short
    if not result.per_frame:
        result.seen = _people(ended)
    return result


def _estimated(tracks: list[tracking.Track], predictor: Predictor) -> list[tracking.Track]:
    """Ended tracks worth keeping, each with its pooled estimate, its crops let go."""
    kept = [track for track in tracks if track.kept]
    for track in kept:
        track.prediction = pooled(predictor, [crop for _, crop in track.crops])
        track.crops = []
    return kept


def _people(tracks: list[tracking.Track]) -> list[Seen]:
    """The kept tracks in the order people first appeared, numbered from 0 like a photo's faces."""
    ordered = sorted(tracks, key=lambda t: (t.t_first, t.number))
    return [
        Seen(track.best, track.prediction, round(track.t_first, 3), round(track.t_last, 3), track.frames, number)
        for number, track in enumerate(ordered)
    ]


def _add_frame(result: VideoResult, seconds: float, boxes: list[Face], estimates) -> None:
    """A sampled frame's faces, each a row of its own, numbered on from the frames before."""
    t = round(seconds, 3)
    for index, face in enumerate(boxes):
        result.seen.append(Seen(face, estimates.prediction(index), t, t, 1, len(result.seen)))
