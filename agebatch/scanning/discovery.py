"""Walking the PATH arguments into a deterministic stream of candidate image files.

Order is sorted by name at every level, so two scans of the same tree list files identically
(resume and diffs depend on it). Folders are streamed one at a time, so a million-file tree costs
memory for one folder listing, not for the whole tree.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agebatch.common import urls
from agebatch.common.files import open_regular
from agebatch.scanning import videos

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif"}
)

# Leading bytes of the formats we decode; used for files whose extension says nothing.
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
)


@dataclass(frozen=True)
class Candidate:
    """A file to scan, as reached from the argument (like ``find``), or a path that failed to list."""

    path: str
    error: str | None = None
    size: int | None = None  # known from an object store's listing (local files are looked at later)
    mtime: float | None = None


def file_head(path: str) -> bytes:
    """The first 16 bytes of a regular file (empty when it cannot be read)."""
    try:  # non-blocking, and regular files only: a FIFO must not hang the walk
        with os.fdopen(open_regular(path), "rb") as handle:
            return handle.read(16)
    except (OSError, ValueError):
        return b""


def is_image_head(head: bytes) -> bool:
    """True for the first bytes of an image format we decode."""
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or any(head.startswith(sig) for sig in _SIGNATURES)


def looks_like_image(path: str) -> bool:
    """True when the file starts with the signature of a format we decode (a video's too)."""
    head = file_head(path)
    return is_image_head(head) or videos.looks_like_video(head)


def has_image_extension(path: str) -> bool:
    """An image or a video by its extension (a video's frames are scanned as its images)."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS or videos.has_video_extension(path)


def _excluded(path: str, patterns: tuple[str, ...]) -> bool:
    """A pattern matches the path as given, or the bare name of the file or folder."""
    name = os.path.basename(path.rstrip(os.sep)) or path
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _reason(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else type(exc).__name__


class _Walker:
    def __init__(self, recursive: bool, exclude: tuple[str, ...], follow_symlinks: bool) -> None:
        self.recursive = recursive
        self.exclude = exclude
        self.follow_symlinks = follow_symlinks
        self.visited: set[tuple[int, int]] = set()

    def walk(self, folder: str) -> Iterator[Candidate]:
        try:
            info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in self.visited:  # a symlink loop, or the same folder given twice
                return
            self.visited.add(key)
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            yield Candidate(folder, f"cannot read folder: {_reason(exc)}")
            return
        for entry in entries:
            path = os.path.join(folder, entry.name)
            if _excluded(path, self.exclude):
                continue
            yield from self._entry(entry, path)

    def _entry(self, entry: os.DirEntry, path: str) -> Iterator[Candidate]:
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir(follow_symlinks=True)
        except OSError as exc:
            yield Candidate(path, f"cannot stat: {_reason(exc)}")
            return
        if is_dir:
            if self.recursive and (self.follow_symlinks or not is_link):
                yield from self.walk(path)
            return
        if is_link and not os.path.exists(path):
            if has_image_extension(path):
                yield Candidate(path, "broken symbolic link")
            return
        try:
            regular = entry.is_file(follow_symlinks=True)
        except OSError:
            regular = False
        if not regular:
            return  # sockets, FIFOs, devices: never images, and reading a FIFO would block
        if has_image_extension(path) or looks_like_image(path):
            yield Candidate(path)


def discover(
    paths: Iterable[str | os.PathLike],
    recursive: bool = True,
    exclude: Iterable[str] = (),
    follow_symlinks: bool = False,
) -> Iterator[Candidate]:
    """Yield every candidate image under ``paths`` in sorted order.

    A file named on the command line is always a candidate (if it is not an image, it becomes an
    error row: the user asked for it). Inside folders, a file is a candidate when its extension is an
    image extension or its first bytes are an image signature. Symbolic links to folders are not
    followed unless ``follow_symlinks``; followed or not, no folder is visited twice, so loops end.
    With several PATH arguments, an image reached twice (a folder and a file in it both given, or the
    same file under two names) is listed once, the first time; one folder alone needs no such memory.
    An argument that does not exist is an error row too (it vanished after ``check_paths`` ran, or came
    in a list on stdin, where one missing file must not end the run).
    """
    paths = list(paths)
    walker = _Walker(recursive, tuple(exclude), follow_symlinks)
    seen: set = set()
    for candidate in _candidates(paths, walker):
        if candidate.error is None and len(paths) > 1:
            identity = _identity(candidate.path)
            if identity is not None:
                if identity in seen:
                    continue
                seen.add(identity)
        yield candidate


def _identity(path: str):
    """What makes two names one file: device and inode locally, the URL itself in object storage."""
    if urls.is_url(path):
        return path
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _candidates(paths: Iterable[str | os.PathLike], walker: _Walker) -> Iterator[Candidate]:
    for raw in paths:
        path = os.fspath(raw)
        if urls.is_url(path):
            yield from _remote_candidates(path, walker)
        elif not os.path.lexists(path):
            yield Candidate(path, "no such file or folder")
        elif os.path.isdir(path):
            yield from walker.walk(path)
        elif not os.path.exists(path):
            yield Candidate(path, "broken symbolic link")
        elif stat.S_ISREG(os.stat(path).st_mode):
            yield Candidate(path)
        else:
            yield Candidate(path, "not a regular file")


def _remote_candidates(url: str, walker: _Walker) -> Iterator[Candidate]:
    """An object-storage prefix walked as a folder is (``remote.walk``); objects are images by their
    extension (reading each one's first bytes to sniff it would cost a request per object)."""
    from agebatch.scanning import remote

    excluded = lambda name: _excluded(name, walker.exclude)  # noqa: E731 - discovery's rule, passed down
    for path, info, error in remote.walk(url, walker.recursive, excluded, has_image_extension):
        if info is None:
            yield Candidate(path, error)
        else:
            yield Candidate(path, error, info["size"], info["mtime"])


def check_paths(paths: Iterable[str | os.PathLike]) -> None:
    """Fail early, before any work, when an argument does not exist."""
    for raw in paths:
        if urls.is_url(os.fspath(raw)):
            from agebatch.scanning import remote

            remote.check_url(os.fspath(raw))
        elif not os.path.lexists(os.fspath(raw)):
            raise FileNotFoundError(f"no such file or folder: {os.fspath(raw)}")
