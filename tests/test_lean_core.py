"""The core install has no TensorFlow: scan (BlazeFace, LiteRT), merge, report and predict work without
it, and whatever needs it says in one line which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagegen import FACE_PHOTO

REPO = Path(__file__).resolve().parent.parent
WITHOUT_TENSORFLOW = "import sys\nfor name in ('tensorflow', 'keras', 'mtcnn'):\n    sys.modules[name] = None\n"
HINT = "needs TensorFlow: pip install 'agebatch[train]' (from a clone: pip install '.[train]')"


def _agebatch_without_tensorflow(*args, cwd: Path) -> subprocess.CompletedProcess:
    """``agebatch ARGS`` in a Python where importing TensorFlow, Keras or MTCNN fails, as without the extra."""
    code = (
        WITHOUT_TENSORFLOW
        + f"sys.argv = ['agebatch', *{[str(a) for a in args]!r}]\nfrom agebatch.cli import main\nmain()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("AGEBATCH_MODEL", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_scan_report_and_predict_run_without_tensorflow(tmp_path):
    photos = REPO / "examples" / "photos"
    scanned = _agebatch_without_tensorflow("scan", photos, "--out", "r.csv", "-q", cwd=tmp_path)
    assert scanned.returncode == 0, scanned.stderr
    assert (tmp_path / "r.csv").read_text().count(",ok,") >= 10
    reported = _agebatch_without_tensorflow("report", "r.csv", "--out", "r.html", "-q", cwd=tmp_path)
    assert reported.returncode == 0 and (tmp_path / "r.html").stat().st_size > 10_000, reported.stderr
    predicted = _agebatch_without_tensorflow("predict", FACE_PHOTO, "--json", cwd=tmp_path)
    assert predicted.returncode == 0 and '"age"' in predicted.stdout, predicted.stderr


def test_a_scan_from_the_command_line_never_loads_pandas(tmp_path):
    """pandas (and the refit behind ``adapt``) cost a small scan half its start-up: a scan does without."""
    code = (
        "import sys\nsys.modules['pandas'] = None\n"
        f"sys.argv = ['agebatch', 'scan', {str(FACE_PHOTO)!r}, '--out', 'r.csv', '-q']\n"
        "from agebatch.cli import main\nmain()\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("AGEBATCH_MODEL", None)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.csv").read_text().count(",ok,") == 1


@pytest.mark.parametrize(
    "args, what",
    [
        (["scan", FACE_PHOTO, "--detector", "mtcnn", "--out", "r.csv"], "--detector mtcnn"),
        (["scan", FACE_PHOTO, "--engine", "keras", "--out", "r.csv"], "with Keras"),
        (["explain", FACE_PHOTO, "--out", "e.png"], "agebatch explain"),
        (["train", "."], "agebatch train"),
        (["evaluate", "."], "agebatch evaluate"),
        (["adapt", "labels.csv"], "agebatch adapt"),
    ],
)
def test_what_needs_tensorflow_names_the_extra_in_one_line(tmp_path, args, what):
    done = _agebatch_without_tensorflow(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{what} {HINT}" in done.stderr or (what in done.stderr and HINT in done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
