"""Videos in the folder: recognising one, and decoding the frames a scan samples from it (PyAV, the
``video`` extra), upright as the stream's rotation says, one at a time.

Every frame is decoded (a compressed stream cannot be read otherwise) but only the sampled ones are
converted to RGB pictures, which is most of the cost saved; decoding runs on FFmpeg's own threads.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image

from agebatch.common import urls
from agebatch.common.text import one_line

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm"})
VIDEO_HINT = "videos need the video extra: pip install 'agebatch[video]' (from a clone: pip install '.[video]')"
MAX_FRAME_PIXELS = 40_000_000  # larger than 8K video: a stream declaring more is refused, not decoded
MAX_RATE = 240  # frames a second no video exceeds: with a time limit, a cap on frames whose times lie


class VideoError(Exception):
    """A video that cannot be used at all; ``str()`` is the one-line reason for its error row."""


@dataclass
class SampledFrame:
    """One sampled frame: its time in seconds from the start, the upright picture, and ``scale``:
    the video's pixels per pixel of ``image`` (a large frame is converted at reduced size)."""

    seconds: float
    image: Image.Image
    scale: float = 1.0


@dataclass
class VideoInfo:
    """What a video says about itself: when it was recorded, if it does, and its length."""

    taken_at: str | None
    duration: float | None


def has_video_extension(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def looks_like_video(head: bytes) -> bool:
    """True for the first bytes of an MP4/QuickTime (``ftyp``), Matroska/WebM or AVI file."""
    return (
        head[4:8] == b"ftyp" or head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
    )


def _reason(exc: Exception) -> str:
    """FFmpeg's words for what went wrong, without the error number and the file name it adds."""
    return one_line(getattr(exc, "strerror", None) or exc)


def _require_av():
    try:
        import av
    except ImportError as exc:
        raise VideoError(VIDEO_HINT) from exc
    return av


def _rotated(image: Image.Image, rotation: int) -> Image.Image:
    """The frame turned upright: ``rotation`` is the display matrix's angle, counter-clockwise."""
    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return image.transpose(turn[rotation % 360]) if rotation % 360 in turn else image


def _recorded(container) -> str | None:
    text = (container.metadata or {}).get("creation_time")
    try:
        return (
            datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%S") if text else None
        )
    except ValueError:
        return None


class VideoReader:
    """One video opened for sampling; use as a context manager, then iterate ``sampled(fps)``.

    ``cut_short`` is the reason decoding stopped early (a truncated or damaged file) after at least
    one frame came out; a video of which nothing decodes raises ``VideoError`` instead.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.cut_short: str | None = None
        self._container = None

    def __enter__(self) -> VideoReader:
        av = _require_av()
        try:
            self._container = av.open(self._source(), metadata_errors="ignore")
        except FileNotFoundError as exc:
            raise VideoError("file vanished before it could be read") from exc
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise VideoError(f"not a readable video: {_reason(exc)}") from exc
        if not self._container.streams.video:
            self._container.close()
            raise VideoError("no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        width, height = self._stream.codec_context.width or 0, self._stream.codec_context.height or 0
        if width * height > MAX_FRAME_PIXELS:
            self._container.close()
            raise VideoError(f"video frames too large: {width}x{height}")
        return self

    def _source(self):
        """The file to open: its path, or for an object in object storage a file-like reader of it."""
        if urls.is_url(self.path):
            fs, path = urls.filesystem(self.path)
            return fs.open(path, "rb")
        if os.path.getsize(self.path) == 0:
            raise VideoError("empty file")
        return self.path

    def __exit__(self, *exc) -> None:
        if self._container is not None:
            self._container.close()

    @property
    def info(self) -> VideoInfo:
        duration = self._container.duration
        return VideoInfo(_recorded(self._container), None if duration is None else duration / 1_000_000)

    def sampled(self, fps: float, max_side: int | None = None, until: float | None = None) -> Iterator[SampledFrame]:
        """The frames at ``fps`` a second (the first frame at or after each 1/fps step), upright, and
        scaled down (by FFmpeg, while converting) so that the longer side is at most ``max_side``;
        with ``until``, only the first ``until`` seconds (a note says so)."""
        av = _require_av()
        step, next_time, decoded, seconds = 1.0 / fps, 0.0, 0, 0.0
        try:
            for frame in self._container.decode(self._stream):
                decoded += 1
                if frame.width * frame.height > MAX_FRAME_PIXELS:  # a stream may change size mid-way
                    raise ValueError(f"video frames too large: {frame.width}x{frame.height}")
                seconds = (
                    float(frame.time) if frame.time is not None else decoded / float(self._stream.average_rate or 25)
                )
                if until is not None and (seconds > until or decoded > until * MAX_RATE):
                    self.cut_short = f"only the first {until:g} s scanned"
                    return
                if seconds + 1e-6 < next_time:
                    continue
                next_time = (int(seconds / step + 1e-6) + 1) * step
                scale = max(1.0, max(frame.width, frame.height) / max_side) if max_side else 1.0
                size = {"width": round(frame.width / scale), "height": round(frame.height / scale)}
                image = frame.to_image(**size) if scale > 1 else frame.to_image()
                image = _rotated(image, int(getattr(frame, "rotation", 0) or 0))
                yield SampledFrame(max(0.0, seconds), image, scale)
        except (av.FFmpegError, OSError, ValueError, MemoryError) as exc:
            if decoded == 0:
                raise VideoError(f"not a readable video: {_reason(exc)}") from exc
            self.cut_short = f"video cut short after {decoded} frames: {_reason(exc)}"
        if decoded == 0:
            raise VideoError("video without frames")
        duration = self.info.duration
        if self.cut_short is None and duration and seconds < duration - max(1.0, 2 * step):
            self.cut_short = f"video cut short: its frames end at {seconds:.1f} s of the {duration:.1f} s it declares"
