"""What a nightly job can tell from ``scan``'s exit code, and paths read from stdin the way ``find`` gives them."""

from __future__ import annotations

import io
import sys

import pytest

from tests.imagegen import noise_image


class _Stdin:
    """Standard input as a pipe from ``find``: bytes, not a terminal."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)

    def isatty(self) -> bool:
        return False


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(2):
        noise_image((64, 64), seed=i).save(root / f"face{i}.jpg")
    return root


def test_an_empty_folder_exits_4_even_quietly(run_cli, tmp_path):
    empty = tmp_path / "unmounted"
    empty.mkdir()
    code, _, err = run_cli("scan", empty, "--detector", "none", "--out", tmp_path / "r.csv", "-q")
    assert code == 4 and "no image found" in err


def test_a_resume_with_nothing_new_is_not_an_empty_scan(run_cli, folder, tmp_path):
    out = tmp_path / "r.csv"
    assert run_cli("scan", folder, "--detector", "none", "--out", out, "-q")[0] == 0
    assert run_cli("scan", folder, "--detector", "none", "--out", out, "--resume", "-q")[0] == 0


def test_every_image_failing_exits_5_and_strict_makes_any_failure_count(run_cli, folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8\xff cut")
    code, _, err = run_cli("scan", broken, "--detector", "none", "--out", tmp_path / "b.csv", "-q")
    assert code == 5 and "1 image of 1 could not be read" in err
    (folder / "bad.jpg").write_bytes(b"not a picture")
    assert run_cli("scan", folder, "--detector", "none", "--out", tmp_path / "m.csv", "-q")[0] == 0
    code, _, err = run_cli("scan", folder, "--detector", "none", "--out", tmp_path / "s.csv", "--strict", "-q")
    assert code == 5 and (tmp_path / "s.csv").read_text().count("\n") == 4  # the rows are written all the same


def test_a_path_that_vanished_before_the_scan_is_an_error_row(run_cli, folder, tmp_path, monkeypatch):
    listed = b"\n".join([str(folder / "face0.jpg").encode(), str(folder / "gone.jpg").encode(), b""])
    monkeypatch.setattr(sys, "stdin", _Stdin(listed))
    out = tmp_path / "r.csv"
    code, _, err = run_cli("scan", "-", "--detector", "none", "--out", out)
    assert code == 0, err
    assert "gone.jpg,,,,,,,,,,error,no such file or folder" in out.read_text()


def test_nul_separated_paths_without_null_get_a_hint(run_cli, folder, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", _Stdin(b"\0".join(str(p).encode() for p in folder.iterdir()) + b"\0"))
    code, _, err = run_cli("scan", "-", "--detector", "none", "--out", tmp_path / "r.csv")
    assert code == 2 and "--null (-0)" in err and len(err) < 200


def test_the_summary_of_rows_on_stdout_says_stdout(run_cli, folder):
    code, out, err = run_cli("scan", folder, "--detector", "none", "--out", "-")
    assert code == 0 and err.startswith("stdout: 2 images") and out.startswith("path,")


def test_a_scan_that_finds_nothing_keeps_the_results_an_earlier_scan_wrote(run_cli, folder, tmp_path):
    from agebatch.results import metadata_path

    out = tmp_path / "r.csv"
    assert run_cli("scan", folder, "--detector", "none", "--out", out, "-q")[0] == 0
    rows, record = out.read_text(), metadata_path(out).read_text()
    empty = tmp_path / "unmounted"
    empty.mkdir()
    assert run_cli("scan", empty, "--detector", "none", "--out", out, "-q")[0] == 4
    assert out.read_text() == rows and metadata_path(out).read_text() == record
