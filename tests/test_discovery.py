import os

import pytest

from agebatch.scanning.discovery import discover
from tests.imagegen import jpeg_bytes


def _tree(root):
    (root / "b").mkdir(parents=True)
    (root / "a" / "deep").mkdir(parents=True)
    for rel in ("z.jpg", "b/2.png", "a/1.jpg", "a/deep/0.JPEG"):
        (root / rel).write_bytes(jpeg_bytes())
    (root / "a" / "no_extension").write_bytes(jpeg_bytes())  # recognised by content
    (root / "a" / "notes.txt").write_text("hello")  # neither extension nor content
    (root / "a" / "fake.txt").write_bytes(jpeg_bytes())  # image content behind a wrong extension
    return root


def paths(root, *args, **kwargs):
    return [os.path.relpath(c.path, root) for c in discover([root], *args, **kwargs)]


def test_sorted_recursive_and_sniffed(tmp_path):
    found = paths(_tree(tmp_path))
    assert found == ["a/1.jpg", "a/deep/0.JPEG", "a/fake.txt", "a/no_extension", "b/2.png", "z.jpg"]


def test_discovery_is_deterministic(tmp_path):
    _tree(tmp_path)
    assert paths(tmp_path) == paths(tmp_path)


def test_no_recursive(tmp_path):
    assert paths(_tree(tmp_path), recursive=False) == ["z.jpg"]


def test_exclude_by_name_and_path(tmp_path):
    _tree(tmp_path)
    assert "a/deep/0.JPEG" not in paths(tmp_path, exclude=["deep"])
    assert paths(tmp_path, exclude=["*.jpg", "*.JPEG", "a"]) == ["b/2.png"]


def test_path_is_as_reached_from_the_argument(tmp_path):
    _tree(tmp_path)
    first = next(iter(discover([str(tmp_path) + "/"])))
    assert first.path == str(tmp_path) + "/a/1.jpg"


def test_symlinked_folder_not_followed_by_default_and_loops_end(tmp_path):
    _tree(tmp_path)
    os.symlink(tmp_path / "a", tmp_path / "link_to_a")
    os.symlink(tmp_path, tmp_path / "a" / "loop")
    default = paths(tmp_path)
    assert not any(p.startswith("link_to_a") or "loop" in p for p in default)
    followed = paths(tmp_path, follow_symlinks=True)
    assert len(followed) == len(set(followed))
    assert len(followed) < 50  # the loop ended


def test_broken_symlink_is_an_error_candidate(tmp_path):
    os.symlink(tmp_path / "missing.jpg", tmp_path / "broken.jpg")
    (candidate,) = discover([tmp_path])
    assert candidate.error == "broken symbolic link"


def test_file_argument_is_always_a_candidate(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (candidate,) = discover([tmp_path / "notes.txt"])
    assert candidate.error is None


def test_a_missing_argument_is_refused_up_front_and_an_error_row_once_walking(tmp_path):
    from agebatch.scanning.discovery import check_paths

    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        check_paths([tmp_path / "nope"])
    (candidate,) = discover([tmp_path / "nope"])  # vanished after the check, or listed on stdin
    assert candidate.error == "no such file or folder"


def test_folder_named_like_an_image_and_empty_folder(tmp_path):
    (tmp_path / "album.jpg").mkdir()
    (tmp_path / "album.jpg" / "x.jpg").write_bytes(jpeg_bytes())
    (tmp_path / "empty").mkdir()
    assert paths(tmp_path) == ["album.jpg/x.jpg"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_unreadable_folder_is_an_error_candidate(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        (candidate,) = discover([tmp_path])
        assert candidate.error.startswith("cannot read folder")
    finally:
        locked.chmod(0o755)


def test_fifo_is_ignored(tmp_path):
    os.mkfifo(tmp_path / "pipe.jpg")
    assert paths(tmp_path) == []


def test_an_image_reached_twice_from_several_arguments_is_listed_once(tmp_path):
    from agebatch.scanning.discovery import discover

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "photos" / "b.jpg").write_bytes(b"\xff\xd8\xff")
    os.link(tmp_path / "photos" / "b.jpg", tmp_path / "b-again.jpg")  # the same file under another name
    given = [tmp_path / "photos", tmp_path / "photos" / "a.jpg", tmp_path / "b-again.jpg"]
    found = [c.path for c in discover(given)]
    assert found == [str(tmp_path / "photos" / "a.jpg"), str(tmp_path / "photos" / "b.jpg")]
