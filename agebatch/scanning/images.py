"""Safe image decoding: whatever a folder holds becomes an upright RGB picture or a one-line reason.

Everything that touches untrusted bytes lives here, so the rest of the program only ever sees
``PIL.Image`` objects in RGB mode, already rotated the way the camera meant them (EXIF orientation).
"""

from __future__ import annotations

import datetime
import io
import os
import re
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from agebatch.common import urls
from agebatch.common.files import open_regular
from agebatch.common.text import one_line

# The largest image we decode. Pillow raises by itself only above twice its MAX_IMAGE_PIXELS and
# merely warns between; we check the size ourselves (below) because turning that warning into an
# error with ``warnings.catch_warnings`` is not thread-safe, and scan decodes in a thread pool.
# So a 12 000 x 12 000 "photo" is an error row, not a 430 MB allocation.
MAX_PIXELS = 120_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow warns (rather than fails) about oddities it recovers from, such as corrupt EXIF tags; a scan
# of thousands of files must not print them to stderr (cron mails it). Bad files still fail loudly.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

TOO_LARGE = "image too large (decompression bomb guard)"
# Memory is bounded by bytes, not pixels alone: a 300 KB 16-bit PNG can declare 120 MP. Peak bytes per
# decoded pixel of each mode on its way to 8-bit RGB (the mode itself, the conversion's intermediates
# and the RGB result); a decode whose estimate passes MAX_DECODE_BYTES is an error row.
MAX_DECODE_BYTES = 1 << 30  # for one decode, and for all the decodes a process runs at once
_COEFFICIENT_BYTES = 2
_PEAK_BYTES_PER_PIXEL = {"1": 4, "L": 4, "P": 8, "RGB": 3, "YCbCr": 6, "LAB": 6, "HSV": 6, "CMYK": 7}
_PEAK_BYTES_PER_PIXEL.update(dict.fromkeys(("LA", "La", "PA", "RGBA", "RGBa"), 11))
_PEAK_BYTES_PER_PIXEL.update(dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), 11))
_PEAK_BYTES_PER_PIXEL.update(dict.fromkeys(("I", "F"), 13))
_DEFAULT_PEAK_BYTES = 16  # any mode not listed

SUPPORTED_FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"}


class ImageError(Exception):
    """An image that cannot be used; ``str()`` is a one-line reason meant for the CSV's error column."""


@dataclass
class DecodedImage:
    """An upright RGB image plus what the caller needs to map boxes back to the original file.

    ``scale`` is original-pixels per decoded-pixel (>1 when a large JPEG was decoded in draft mode);
    ``size`` is the EXIF-rotated size of the full-resolution image.
    """

    image: Image.Image
    size: tuple[int, int]
    scale: float
    taken_at: str | None = None  # EXIF DateTimeOriginal as ISO 8601 ("2024-06-01T14:03:22"), if readable


_EXIF_IFD = 0x8769
_DATE_TIME_ORIGINAL = 0x9003
_EXIF_DATE = re.compile(r"^\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def capture_time(opened: Image.Image) -> str | None:
    """When the photo was taken (EXIF DateTimeOriginal) as ISO 8601, or None when it is absent or
    malformed: a bad date is no reason to lose the image."""
    try:
        value = opened.getexif().get_ifd(_EXIF_IFD).get(_DATE_TIME_ORIGINAL)
    except Exception:  # noqa: BLE001 - EXIF parsing of hostile files fails in many ways; the date is optional
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    match = _EXIF_DATE.match(value) if isinstance(value, str) else None
    if match is None:
        return None
    try:
        moment = datetime.datetime(*(int(g) for g in match.groups()))
    except ValueError:  # 2023:02:30, 0000:00:00 ...
        return None
    return moment.isoformat()


def _decode_bytes(opened: Image.Image, full_size: tuple[int, int]) -> int:
    """The peak memory of decoding ``opened`` (see ``_PEAK_BYTES_PER_PIXEL``); ``ImageError`` when it
    alone would pass ``MAX_DECODE_BYTES``. A progressive JPEG also holds every DCT coefficient of the
    full frame while it decodes, whatever the draft scale (2 bytes per coefficient)."""
    width, height = opened.size  # after draft(): the reduced size actually decoded
    peak = width * height * _PEAK_BYTES_PER_PIXEL.get(opened.mode, _DEFAULT_PEAK_BYTES)
    if opened.format == "JPEG" and opened.info.get("progressive"):
        peak += full_size[0] * full_size[1] * len(opened.getbands()) * _COEFFICIENT_BYTES
    if peak > MAX_DECODE_BYTES:
        raise ImageError(
            f"{TOO_LARGE}: {width}x{height} {opened.mode} pixels need about {peak >> 20} MB to decode, "
            f"more than {MAX_DECODE_BYTES >> 20} MB"
        )
    return peak


class _ByteBudget:
    """Bytes that decodes running at once may hold together: each waits until its share is free, so
    ``--jobs`` threads never multiply the one-decode bound (one decode never needs more than all)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = threading.Condition()

    @contextmanager
    def held(self, size: int):
        size = min(size, self.total)
        with self._changed:
            self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            with self._changed:
                self.free += size
                self._changed.notify_all()


_DECODING = _ByteBudget(MAX_DECODE_BYTES)


def _stretch_to_8_bits(image: Image.Image) -> Image.Image:
    """A 16/32-bit or float greyscale image stretched to 8 bits over its actual range, in float32 and
    in place, so the intermediate costs 4 bytes a pixel."""
    array = np.asarray(image, dtype=np.float32)
    if not array.flags.writeable:
        array = array.copy()
    np.nan_to_num(array, copy=False)
    low, high = float(array.min()), float(array.max())
    if high > low:
        array -= low
        array *= 255.0 / (high - low)
    else:
        array[...] = 0
    return Image.fromarray(array.astype(np.uint8), "L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency onto white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _stretch_to_8_bits(image)  # PNG 16-bit grey is common
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparency onto white: paste through the alpha channel (no second RGBA canvas).
        alpha = image.getchannel("A") if "A" in image.getbands() else image.convert("RGBA").getchannel("A")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGB"), mask=alpha)
        return background
    return image.convert("RGB")


def _open_regular(path: str | os.PathLike):
    """``path`` opened for reading without blocking, and only if it is a regular file; an object in
    object storage (``s3://...``) read into memory (``remote.read_object``).

    A FIFO or a device put where a photo was (after discovery listed it) would otherwise block the
    scan forever: opened non-blocking it returns at once and is then refused.
    """
    if urls.is_url(path):
        from agebatch.scanning import remote

        try:
            data = remote.read_object(os.fspath(path))
        except ValueError as exc:  # too large
            raise ImageError(str(exc)) from exc
        if not data:
            raise ImageError("empty file")
        return io.BytesIO(data)
    try:
        return os.fdopen(open_regular(path), "rb")
    except ValueError as exc:  # not a regular file
        raise ImageError(str(exc)) from exc


def decode(path: str | os.PathLike, max_side: int | None = None) -> DecodedImage:
    """Open ``path`` as an upright RGB image.

    With ``max_side`` a large JPEG is decoded at 1/2, 1/4 or 1/8 scale (Pillow's draft mode, which
    skips most of the IDCT work) so that its longer side is still at least ``max_side``: detection on a
    12 MP photo needs ~1 MP, and decoding the full frame would dominate the run.
    Raises ``ImageError`` with a one-line reason for anything unusable.
    """
    try:
        with _open_regular(path) as handle, Image.open(handle) as opened:
            if opened.format not in SUPPORTED_FORMATS:
                raise ImageError(f"unsupported image format {opened.format}")
            full_size = opened.size
            if full_size[0] * full_size[1] > MAX_PIXELS:
                raise ImageError(
                    f"{TOO_LARGE}: {full_size[0]}x{full_size[1]} pixels is more than {MAX_PIXELS // 1_000_000} MP"
                )
            if max_side and opened.format == "JPEG" and max(full_size) > max_side:
                opened.draft("RGB", _draft_target(full_size, max_side))
            peak = _decode_bytes(opened, full_size)
            taken_at = capture_time(opened)
            with _DECODING.held(peak):
                opened.seek(0)  # first frame of animated GIF / multi-page TIFF
                opened.load()
                scale = full_size[0] / opened.size[0]
                # Rotated in place: exif_transpose would otherwise copy every upright image. Leaving the
                # ``with`` only closes the file; the loaded pixels stay valid.
                ImageOps.exif_transpose(opened, in_place=True)
                image = to_rgb(opened)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{TOO_LARGE}: {one_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("empty file" if _is_empty(path) else "not a recognised image") from exc
    except FileNotFoundError as exc:
        raise ImageError("file vanished before it could be read") from exc
    except PermissionError as exc:
        raise ImageError("permission denied") from exc
    except IsADirectoryError as exc:
        raise ImageError("is a directory") from exc
    except OSError as exc:
        if "truncat" in str(exc).lower():
            raise ImageError("truncated image: the file is cut short") from exc
        raise ImageError(f"unreadable image: {one_line(exc)}") from exc
    except (ValueError, SyntaxError, EOFError, MemoryError, TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
        raise ImageError(f"corrupt image: {one_line(exc)}") from exc
    if image.width < 1 or image.height < 1:
        raise ImageError("empty image")
    width, height = image.size
    rotated_full = (round(width * scale), round(height * scale))
    return DecodedImage(image=image, size=rotated_full, scale=scale, taken_at=taken_at)


def _is_empty(path: str | os.PathLike) -> bool:
    try:
        return os.stat(path).st_size == 0
    except OSError:
        return False


def _draft_target(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The draft request that keeps the longer side >= max_side (draft picks the smallest scale >= it)."""
    ratio = max_side / max(size)
    return (max(1, int(size[0] * ratio) + 1), max(1, int(size[1] * ratio) + 1))


def resize_face(image: Image.Image, size: int) -> np.ndarray:
    """Resize a face crop to ``size`` x ``size`` uint8 RGB, the way the training faces were resized."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_face_array(path: str | os.PathLike, size: int) -> np.ndarray:
    """A whole image file as one face array (pre-cropped faces such as UTKFace)."""
    return resize_face(decode(Path(path), max_side=2 * size).image, size)
