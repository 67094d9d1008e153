"""Following faces across a video's sampled frames, so that one person seen for ten seconds is one
person, not twenty faces.

A small tracker in the spirit of SORT: each track predicts where its face will be (constant velocity
from its last two boxes), and the sampled frame's faces are matched to the predictions greedily by
overlap (IoU), best pair first, with a looser gate on size and centre distance for fast movers. A face
matched to no track starts one; a track unmatched for longer than ``max_gap`` seconds ends. No face
embeddings: a track never leaves its video, and one who leaves and comes back is a new track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from agebatch.scanning.facebox import Face

MIN_IOU = 0.2  # a predicted box and a face overlapping less are not the same face...
MAX_CENTRE_SHIFT = 1.5  # ...unless their centres are within this many face sides and their sizes agree
# (half as many once the track has moved: its velocity then predicts where the face will be)
MAX_SIZE_RATIO = 1.6
KEEP_CROPS = 5  # a track's best faces (score x side) kept for its estimate
ONE_FRAME_MIN_SCORE = 0.85  # a track seen in one sampled frame only is kept when the detector was this sure


@dataclass
class Track:
    """One face followed through the video: its best crops, first and last time, frames seen."""

    number: int
    t_first: float
    t_last: float
    boxes: list[tuple[float, Face]] = field(default_factory=list)  # the last two (time, box): the motion
    frames: int = 0
    best: Face | None = None  # the box of the best-scored frame (score x side)
    crops: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (quality, crop), best first
    prediction: object = None  # the estimate from its crops, once it ended (``videoscan``)

    def add(self, seconds: float, face: Face, crop: np.ndarray) -> None:
        self.t_last, self.frames = seconds, self.frames + 1
        self.boxes = [*self.boxes[-1:], (seconds, face)]
        quality = face.score * face.side
        if self.best is None or quality > self.best.score * self.best.side:
            self.best = face
        self.crops = sorted([*self.crops, (quality, crop)], key=lambda pair: -pair[0])[:KEEP_CROPS]

    def predicted(self, seconds: float) -> Face:
        """Where the face should be at ``seconds``: the last box moved on at its last velocity."""
        t_last, last = self.boxes[-1]
        t_before, before = self.boxes[0]
        if t_last <= t_before:
            return last
        ratio = (seconds - t_last) / (t_last - t_before)
        moved_x, moved_y = (last.x - before.x) * ratio, (last.y - before.y) * ratio
        return Face(last.x + moved_x, last.y + moved_y, last.width, last.height, last.score)

    @property
    def kept(self) -> bool:
        """Whether the track counts as a person: seen twice, or once with a sure detection."""
        return self.frames >= 2 or (self.best is not None and self.best.score >= ONE_FRAME_MIN_SCORE)


def iou(a: Face, b: Face) -> float:
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


def _affinity(predicted: Face, face: Face, moving: bool) -> float:
    """How well ``face`` continues a track predicted at ``predicted``: its IoU, or, for a fast mover
    that overlaps little, a smaller score from the centres' distance (within a tighter gate once the
    track's motion is known: ``moving``); 0 when it cannot be the same."""
    overlap = iou(predicted, face)
    if overlap >= MIN_IOU:
        return overlap
    ratio = face.side / max(predicted.side, 1e-6)
    if not 1 / MAX_SIZE_RATIO <= ratio <= MAX_SIZE_RATIO:
        return 0.0
    dx = (face.x + face.width / 2) - (predicted.x + predicted.width / 2)
    dy = (face.y + face.height / 2) - (predicted.y + predicted.height / 2)
    shift = math.hypot(dx, dy) / max(predicted.side, 1e-6)
    gate = MAX_CENTRE_SHIFT / 2 if moving else MAX_CENTRE_SHIFT
    return MIN_IOU * (1 - shift / gate) if shift < gate else 0.0


class Tracker:
    """Tracks over one video's sampled frames; ``update`` per frame returns the tracks that ended."""

    def __init__(self, max_gap: float) -> None:
        self.max_gap = max_gap
        self.active: list[Track] = []
        self.count = 0

    def update(self, seconds: float, faces: list[Face], crops: list[np.ndarray]) -> list[Track]:
        """Add one sampled frame's faces; returns the tracks that ended before it (unseen for longer
        than ``max_gap``: they are closed before matching, so a face after a long gap starts anew)."""
        ended = [t for t in self.active if seconds - t.t_last > self.max_gap]
        self.active = [t for t in self.active if seconds - t.t_last <= self.max_gap]
        pairs = sorted(
            (
                (_affinity(track.predicted(seconds), face, len(track.boxes) > 1), t, f)
                for t, track in enumerate(self.active)
                for f, face in enumerate(faces)
            ),
            key=lambda item: -item[0],
        )
        track_of: dict[int, Track] = {}
        taken: set[int] = set()
        for score, t, f in pairs:
            if score > 0 and f not in track_of and t not in taken:
                track_of[f] = self.active[t]
                taken.add(t)
        for f, face in enumerate(faces):
            if f not in track_of:
                track_of[f] = Track(self.count, seconds, seconds)
                self.count += 1
                self.active.append(track_of[f])
            track_of[f].add(seconds, face, crops[f])
        return ended

    def finish(self) -> list[Track]:
        """The tracks still open when the video ends."""
        ended, self.active = self.active, []
        return ended
