"""Writing a file so that a reader sees the old one or the whole new one, never half of either.

Every file agebatch creates goes through here: the bytes go to a new temporary file with a random
name in the target's folder (created exclusively, so a name someone planted, such as a symbolic
link, is never written through), are flushed to disk, and the temporary file is then renamed over the
target in one step. On any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from agebatch.common.errors import SetupError
from agebatch.common.files import head_of

TEMP_SUFFIX = ".tmp"


class UnsafeOutputError(SetupError, ValueError):
    """An output path that must not be replaced (not a regular file, or one of the run's inputs)."""


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    replaceable: Callable[[bytes], bool] | None = None,
    kind: str = "",
) -> Path:
    """``out`` if writing it is safe: absent or a regular file, in an existing folder, and not an input.

    A symbolic link, a folder, a FIFO or a device is refused, as is a path that is (or, through links,
    points at) one of ``inputs``: replacing it would lose what the user has. With ``replaceable``, an
    existing non-empty file is replaced only when its first bytes pass it (a file of ``kind``, such
    as an earlier report), so a slip of the name never loses a photo, a results file or a document.
    """
    out = Path(out)
    if not out.parent.is_dir():
        raise UnsafeOutputError(f"output folder does not exist: {out.parent}")
    try:
        info = os.lstat(out)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        kind_found = (
            "a symbolic link"
            if stat.S_ISLNK(info.st_mode)
            else "a folder"
            if stat.S_ISDIR(info.st_mode)
            else "not a regular file"
        )
        raise UnsafeOutputError(f"refusing to write {out}: it is {kind_found}")
    for given in inputs:
        if same_file(out, given):
            raise UnsafeOutputError(f"refusing to write {out}: it is also an input of this run")
    if replaceable is not None and info is not None and info.st_size:
        head = head_of(out)
        if head is None or not replaceable(head):
            raise UnsafeOutputError(f"refusing to replace {out}: it exists and is not {kind}")
    return out


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file (through links or other spellings), or the same path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def new_temp_fd(target: str | os.PathLike) -> tuple[int, Path]:
    """A new, exclusively created temporary file beside ``target``, named ``.<name>.<8 random>.tmp``
    (see ``temp_name_pattern``), as a descriptor open for writing."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    return fd, Path(name)


def temp_name_pattern(target: str | os.PathLike) -> re.Pattern:
    """Matches exactly the names ``new_temp_fd`` gives for ``target`` (never another file's)."""
    return re.compile(rf"\.{re.escape(Path(target).name)}\.[A-Za-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}")


def copy_mode(target: str | os.PathLike, new: str | os.PathLike) -> None:
    """Give ``new`` the permissions of ``target`` when it exists, else the umask's default (mkstemp
    creates 0600, which would lock other users out of a file that replaces theirs)."""
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mode = 0o666 & ~UMASK
    os.chmod(new, mode)


def new_temp(target: str | os.PathLike, binary: bool = True) -> tuple[IO, Path]:
    """A new, exclusively created temporary file beside ``target`` (random name), open for writing."""
    fd, name = new_temp_fd(target)
    return os.fdopen(
        fd, "wb" if binary else "w", encoding=None if binary else "utf-8", newline=None if binary else ""
    ), name


@contextlib.contextmanager
def _durable_temporary(target: Path, binary: bool) -> Iterator[tuple[IO, Path]]:
    """A new temporary file beside ``target`` to write in the block; flushed to disk with ``target``'s
    permissions when the block completes, removed when it fails."""
    handle, tmp = new_temp(target, binary)
    try:
        with handle:
            yield handle, tmp
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(OSError):
            copy_mode(target, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_writer(target: str | os.PathLike, binary: bool = False) -> Iterator[IO]:
    """Write ``target`` through a temporary file that replaces it only when the block completes."""
    target = Path(target)
    with _durable_temporary(target, binary) as (handle, tmp):
        yield handle
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once at import: os.umask is process-wide, not safe to call from threads


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A path to write ``target`` through, for writers that want a file name rather than a handle
    (Keras' ``save``): it lies in a new private folder beside ``target`` and replaces it when the
    block completes."""
    target = Path(target)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    try:
        path = folder / target.name
        yield path
        os.chmod(path, 0o666 & ~UMASK)
        os.replace(path, target)
    finally:
        for leftover in folder.iterdir():
            leftover.unlink(missing_ok=True)
        folder.rmdir()


def write_temporary(target: str | os.PathLike, text: str) -> Path:
    """``text`` in a new temporary file beside ``target``, flushed to disk, for the caller to rename
    over ``target`` when the moment comes (``ResultsWriter.commit`` moves two files in order)."""
    with _durable_temporary(Path(target), False) as (handle, tmp):
        handle.write(text)
    return tmp


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically replace ``target`` with ``text`` (UTF-8)."""
    with atomic_writer(target) as handle:
        handle.write(text)
    return Path(target)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Atomically replace ``target`` with ``data``."""
    with atomic_writer(target, binary=True) as handle:
        handle.write(data)
    return Path(target)


def write_image(image, target: str | os.PathLike) -> Path:
    """Atomically write a Pillow ``image``; the format follows ``target``'s extension."""
    from PIL import Image

    target = Path(target)
    fmt = Image.registered_extensions().get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell an image format from the name {target.name!r} (use .png or .jpg)")
    with atomic_writer(target, binary=True) as handle:
        image.save(handle, format=fmt)
    return target
