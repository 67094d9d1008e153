"""Attacks on the files around the results: the summary, closed standard streams, merge outputs and
what a kill leaves behind. Each test is an attack that once broke agebatch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagegen import noise_image

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crops")
    for i in range(3):
        noise_image((64, 64), seed=i).save(folder / f"face{i}.jpg")
    return folder


def _agebatch(*args, shell_redirect: str = "", stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """A real ``agebatch`` process with the shipped model (its LiteRT twin: no TensorFlow to load);
    ``shell_redirect`` closes standard streams the way a shell does (``2>&-``)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for name in ("AGEBATCH_MODEL", "AGEBATCH_DEBUG"):
        env.pop(name, None)
    command = " ".join(f"'{a}'" for a in (sys.executable, "-m", "agebatch", *map(str, args)))
    return subprocess.run(
        ["bash", "-c", f"{command} {shell_redirect}"], input=stdin, capture_output=True, env=env, timeout=120
    )


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()[1:]


def test_the_summary_never_replaces_the_results_or_an_input(crops, tmp_path):
    out = tmp_path / "r.csv"
    done = _agebatch("scan", crops, "--detector", "none", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    results = out.read_bytes()
    same = _agebatch("scan", crops, "--detector", "none", "--out", out, "--summary-json", out, "--resume", "-q")
    assert same.returncode == 2 and b"--summary-json" in same.stderr
    assert out.read_bytes() == results
    photo = crops / "face0.jpg"
    picture = photo.read_bytes()
    from_stdin = _agebatch("scan", "-", "--detector", "none", "--out", "-", "--summary-json", photo, stdin=bytes(photo))
    assert from_stdin.returncode == 2 and b"input" in from_stdin.stderr
    assert photo.read_bytes() == picture


def test_the_summary_replaces_an_earlier_summary_but_no_other_file(crops, tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "notes"}')
    refused = _agebatch("scan", crops, "--detector", "none", "--out", tmp_path / "a.csv", "--summary-json", notes)
    assert refused.returncode == 2 and b"not an agebatch summary" in refused.stderr
    assert notes.read_text() == '{"my": "notes"}'
    summary = tmp_path / "summary.json"
    for name in ("b.csv", "c.csv"):
        done = _agebatch("scan", crops, "--detector", "none", "--out", tmp_path / name, "--summary-json", summary)
        assert done.returncode == 0, done.stderr
        assert json.loads(summary.read_text())["out"] == str(tmp_path / name)


@pytest.mark.parametrize("redirect", ["2>&-", ">&-", "<&- 2>&-", ">&- 2>&-"])
def test_closed_standard_streams_lose_no_results(crops, tmp_path, redirect):
    out = tmp_path / "r.csv"
    done = _agebatch("scan", crops, "--detector", "none", "--out", out, shell_redirect=redirect)
    assert done.returncode == 0, done.stderr
    assert len(_rows(out)) == 3
    assert b"Traceback" not in done.stderr


def test_rows_for_a_closed_stdout_are_refused_not_lost(crops):
    done = _agebatch("scan", crops, "--detector", "none", "--out", "-", shell_redirect=">&-")
    assert done.returncode == 2 and b"standard output is closed" in done.stderr
