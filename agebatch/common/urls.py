"""Object-storage URLs (``s3://``, ``gs://``, any fsspec protocol): telling one from a local path, and
opening its filesystem through the ``cloud`` extra with each store's own credential chain."""

from __future__ import annotations

import os
import re
from typing import Any

from agebatch.common.errors import SetupError

CLOUD_HINT = "needs the cloud extra: pip install 'agebatch[cloud]' (from a clone: pip install '.[cloud]')"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class StorageUnavailable(SetupError):
    """An object store cannot be used here: its client library is missing or the URL names no store."""


def is_url(location: str | os.PathLike) -> bool:
    """True for ``scheme://...`` (other than ``file://``): a place only fsspec can reach."""
    match = _SCHEME.match(os.fspath(location)) if isinstance(location, str) else None
    return bool(match) and match.group(1).lower() != "file"


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem serving ``url`` and the path within it (``bucket/prefix``).

    Credentials and endpoints come from the store's standard chain (for S3: ``AWS_*`` variables
    including ``AWS_ENDPOINT_URL``, profiles, instance roles), never from agebatch's own settings.
    """
    try:
        import fsspec
    except ImportError as exc:
        raise StorageUnavailable(f"{url} {CLOUD_HINT}") from exc
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as exc:  # the store's client (s3fs, gcsfs) is missing
        raise StorageUnavailable(f"{url} {CLOUD_HINT}") from exc
    except ValueError as exc:  # a protocol fsspec does not know
        raise StorageUnavailable(f"{url}: no object store serves this kind of URL ({exc})") from exc
    return fs, path.rstrip("/")


def join(url: str, name: str) -> str:
    """``name`` inside the folder-like ``url`` (one slash between them)."""
    return url.rstrip("/") + "/" + name
