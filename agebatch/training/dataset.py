"""UTKFace-style folders: labels from file names, and faces decoded into arrays.

UTKFace encodes the labels in the file name (``[age]_[gender]_[race]_[datetime].jpg...``), so
reading a dataset is mostly parsing names. The real release contains a handful of malformed names;
they are reported and skipped rather than guessed at, because a wrong label is worse than a missing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common import atomic

log = logging.getLogger(__name__)

RACES = ("white", "black", "asian", "indian", "others")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

# age_gender_race_datetime then an image suffix (".jpg", ".jpg.chip.jpg", ".png", ...).
_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d{6,20})\.(?:jpe?g|png)(?:\.chip\.jpe?g)?$", re.I)


@dataclass(frozen=True)
class Label:
    """The labels one UTKFace file name carries."""

    age: int
    gender: int  # 0 male, 1 female
    race: int  # 0 white, 1 black, 2 asian, 3 indian, 4 others


def parse_name(name: str) -> Label | None:
    """Labels from a UTKFace file name, or None when the name is not exactly in that form."""
    match = _NAME.match(name)
    if match is None:
        return None
    age, gender, race = (int(g) for g in match.groups()[:3])
    if not 0 <= age <= 120:
        return None
    return Label(age, gender, race)


def read_labels(data_dir: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """Parse every image name in ``data_dir``.

    Returns a frame with columns ``file, age, gender, race`` sorted by file name (so the order, and
    with it the split, never depends on the file system) and the list of names that were skipped.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    rows, skipped = [], []
    inside = root.resolve()
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if not entry.is_file() or not entry.name.lower().endswith(IMAGE_SUFFIXES):
            continue
        if entry.is_symlink() and not _links_inside(entry.path, inside):
            skipped.append(entry.name)  # a dataset folder's images are its own, never a link out of it
            continue
        label = parse_name(entry.name)
        if label is None:
            skipped.append(entry.name)
        else:
            rows.append((entry.name, label.age, label.gender, label.race))
    frame = pd.DataFrame(rows, columns=["file", "age", "gender", "race"])
    if skipped:
        log.warning(
            "skipped %d file(s) whose names are not age_gender_race_datetime: %s",
            len(skipped),
            ", ".join(repr(s) for s in skipped[:5]) + (" ..." if len(skipped) > 5 else ""),
        )
    return frame, skipped


def _links_inside(path: str, root: Path) -> bool:
    try:
        return Path(path).resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # a broken link or a loop
        return False


def load_images(
    data_dir: str | os.PathLike, files: Sequence[str], image_size: int, workers: int | None = None
) -> tuple[np.ndarray, list[int]]:
    """Decode and resize ``files`` into one uint8 array of shape (n, size, size, 3), and the positions
    of the files that could not be decoded (their faces are left black; ``readable_faces`` drops them).

    UTKFace is small enough (21k x 128x128x3 = 1 GB) to hold in memory, which makes every epoch after
    the first free of JPEG decoding: on a 2-core machine that is the difference between training and
    waiting. Decoding runs in threads because Pillow releases the GIL while it decodes.
    """
    from agebatch.scanning.images import ImageError, load_face_array  # local: dataset imports without Pillow

    _check_memory(len(files), image_size)
    root = Path(data_dir)
    out = np.zeros((len(files), image_size, image_size, 3), dtype=np.uint8)
    unreadable: list[int] = []

    def work(i: int) -> None:
        try:
            out[i] = load_face_array(root / files[i], image_size)
        except ImageError as exc:
            log.warning("%s: %s; left out", files[i], exc)
            unreadable.append(i)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        list(pool.map(work, range(len(files))))
    return out, sorted(unreadable)


def _check_memory(count: int, image_size: int) -> None:
    """A one-line ``ValueError`` instead of a ``MemoryError`` when the faces cannot be held in memory."""
    need = count * image_size * image_size * 3
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    if need > physical:
        raise ValueError(
            f"{count:,} faces of {image_size}x{image_size} need {need / 2**30:.1f} GiB in memory and this machine "
            f"has {physical / 2**30:.1f} GiB: train on fewer faces or a smaller --image-size"
        )


def cached_images(
    data_dir: str | os.PathLike, files: Sequence[str], image_size: int, cache_dir: str | os.PathLike | None
) -> tuple[np.ndarray, list[int]]:
    """``load_images`` with an optional on-disk cache keyed by the folder, file list and size."""
    if cache_dir is None:
        return load_images(data_dir, files, image_size)
    key = hashlib.sha1(json.dumps([str(Path(data_dir).resolve()), list(files), image_size]).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"faces-{image_size}-{key}.npy"
    record = path.with_suffix(".unreadable.json")  # written first: a cache without one predates it (all read)
    if path.exists():
        unreadable = json.loads(record.read_text()) if record.exists() else []
        return np.load(path, mmap_mode="r"), unreadable
    arrays, unreadable = load_images(data_dir, files, image_size)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    atomic.write_text(record, json.dumps(unreadable))
    with atomic.atomic_writer(path, binary=True) as handle:
        np.save(handle, arrays)
    return arrays, unreadable


def readable_faces(
    frame: pd.DataFrame, column: str, data_dir: str | os.PathLike, image_size: int, cache_dir=None
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """The faces of ``frame``'s images (``column`` names them under ``data_dir``) and the frame without
    the rows whose image could not be decoded, renumbered to match, and how many those were: a damaged
    file in a dataset is a row left out and counted, not the end of a run."""
    images, unreadable = cached_images(data_dir, list(frame[column]), image_size, cache_dir)
    if not unreadable:
        return frame, images, 0
    keep = np.setdiff1d(np.arange(len(frame)), unreadable)
    log.warning("left out %d labelled image(s) that could not be decoded", len(unreadable))
    return frame.iloc[keep].reset_index(drop=True), np.asarray(images)[keep], len(unreadable)
