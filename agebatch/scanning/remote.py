"""Images in object storage (``scan s3://bucket/prefix``): listing a prefix like a folder, and reading
an object's bytes, with the same rules as local files (sorted walk, excludes, error rows).

A prefix is walked one level at a time, as a local tree is, so a million-object bucket costs memory for
one listing page of a "folder", not for the whole bucket. Credentials and endpoints are the store's
own (``common.urls``).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from typing import Any

from agebatch.common import urls
from agebatch.common.errors import SetupError
from agebatch.common.text import one_line

MAX_OBJECT_BYTES = 256 << 20  # larger than any photo: such an object is an error row, not a read into memory
READ_ATTEMPTS = 3  # a throttled or dropped read is tried again this many times in all, then an error row
_RETRY_PAUSE = 0.5  # seconds before the second try; doubled before each further one


def _scheme(url: str) -> str:
    return url.split("://", 1)[0]


def _mtime(info: dict) -> float:
    """An object's modification time as seconds since 1970, from whichever field its store fills."""
    for name in ("LastModified", "mtime", "updated", "last_modified", "created"):
        value = info.get(name)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.UTC)
            return round(value.timestamp(), 6)
    return 0.0


def entries(url: str) -> tuple[Any, str, list[dict] | None]:
    """The filesystem, the path within it, and the sorted entries under ``url`` (None when ``url`` is one object)."""
    fs, root = urls.filesystem(url)
    try:
        if fs.isfile(root):
            return fs, root, None
        return fs, root, sorted(fs.ls(root, detail=True), key=lambda e: e["name"])
    except FileNotFoundError:
        return fs, root, []


def check_url(url: str) -> None:
    """Fail before any work when ``url`` names nothing (or its store refuses to list it)."""
    try:
        fs, root = urls.filesystem(url)
        found = fs.exists(root)
    except SetupError:
        raise
    except Exception as exc:  # the store's own errors (credentials, endpoint, network) in one line
        raise SetupError(f"cannot list {url}: {one_line(exc)}") from exc
    if not found:
        raise FileNotFoundError(f"no such object or prefix: {url}")


def object_info(url: str) -> tuple[int, float] | None:
    """(size, modification time) of one object, or None when it cannot be had."""
    try:
        fs, path = urls.filesystem(url)
        info = fs.info(path)
    except Exception:  # gone, refused, unreachable: the read that follows says which, as an error row
        return None
    return int(info.get("size") or 0), _mtime(info)


def read_object(url: str) -> bytes:
    """The bytes of one object, read whole in one ranged request (photos are small; one larger than
    ``MAX_OBJECT_BYTES`` is refused unread); a failed read is tried again a few times. Raises
    ``FileNotFoundError`` when it is gone, ``OSError`` with a one-line reason otherwise."""
    fs, path = urls.filesystem(url)
    pause = _RETRY_PAUSE
    for attempt in range(READ_ATTEMPTS):
        try:
            data = fs.cat_file(path, start=0, end=MAX_OBJECT_BYTES + 1)
            if len(data) > MAX_OBJECT_BYTES:
                raise ValueError(f"object too large: more than {MAX_OBJECT_BYTES >> 20} MB")
            return data
        except ValueError:
            raise
        except (FileNotFoundError, PermissionError):
            raise
        except Exception as exc:  # throttling, a dropped connection: worth another try
            if attempt == 0 and _is_empty(fs, path):
                return b""  # a range of an empty object is refused, not empty
            if attempt == READ_ATTEMPTS - 1:
                raise OSError(f"cannot read object: {one_line(exc)}") from exc
            time.sleep(pause)
            pause *= 2
    raise AssertionError("unreachable")


def _is_empty(fs, path: str) -> bool:
    try:
        return fs.size(path) == 0
    except Exception:
        return False


def walk(url: str, recursive: bool, excluded, is_image) -> Iterator[tuple[str, dict | None, str | None]]:
    """(url, info, error) for each object to consider under ``url``, in sorted order; ``excluded(url)``
    and ``is_image(url)`` are discovery's rules. ``info`` has the object's size and time when listed."""
    scheme = _scheme(url)
    try:
        fs, root, listing = entries(url)
    except SetupError:
        raise
    except Exception as exc:
        yield url, None, f"cannot read folder: {one_line(exc)}"
        return
    if listing is None:
        yield url, None, None
        return
    yield from _walk_listing(fs, scheme, listing, recursive, excluded, is_image)


def _walk_listing(fs, scheme: str, listing: list[dict], recursive: bool, excluded, is_image):
    for entry in listing:
        full = f"{scheme}://{entry['name']}"
        if excluded(full):
            continue
        if entry.get("type") == "directory":
            if recursive:
                try:
                    below = sorted(fs.ls(entry["name"], detail=True), key=lambda e: e["name"])
                except Exception as exc:
                    yield full, None, f"cannot read folder: {one_line(exc)}"
                    continue
                yield from _walk_listing(fs, scheme, below, recursive, excluded, is_image)
        elif is_image(full):
            yield full, {"size": int(entry.get("size") or 0), "mtime": _mtime(entry)}, None
