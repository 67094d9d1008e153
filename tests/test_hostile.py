"""Hostile inputs, interrupted runs (SIGINT, SIGKILL), concurrent runs, full disks and bad models."""

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agebatch import results
from tests import hostile
from tests.imagegen import noise_image

REPO = Path(__file__).resolve().parent.parent
N_IMAGES = 400


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def hostile_scan(tmp_path_factory, tiny_model_path):
    from agebatch.scanning.predictor import Predictor
    from agebatch.scanning.scanner import ScanOptions, scan_to_file

    root = tmp_path_factory.mktemp("hostile") / "inbox"
    kinds = hostile.build(root)
    out = root.parent / "results.csv"
    summary = scan_to_file([root], out, Predictor(tiny_model_path), ScanOptions(detector="none", batch_size=8))
    return root, kinds, read_csv(out), summary


@pytest.mark.slow
def test_at_least_25_kinds(hostile_scan):
    _, kinds, _, _ = hostile_scan
    assert len(kinds) >= 25


def test_each_kind_gives_its_documented_row(hostile_scan):
    root, kinds, rows, _ = hostile_scan
    by_path = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    for kind, (rel, status) in kinds.items():
        if rel is None:
            continue
        path = results.display_path(os.path.join(str(root), rel))
        if status is None:
            assert path not in by_path, kind
            continue
        assert path in by_path, kind
        (row,) = by_path[path]
        assert row["status"] == status, (kind, row["error"])
        if status == "error":
            assert row["error"] and "\n" not in row["error"] and len(row["error"]) <= 200, kind
    # Nothing from the loop, the FIFO, or outside the tree.
    assert all(not r["path"].startswith(str(root / "loop")) for r in rows)
    assert len(rows) == len({r["path"] for r in rows})


def test_summary_counts_errors_by_reason(hostile_scan):
    _, kinds, rows, summary = hostile_scan
    assert summary.errors == sum(r["status"] == "error" for r in rows)
    assert summary.images == len(rows)
    assert summary.error_reasons["not a recognised image"] >= 2 and summary.error_reasons["empty file"] == 1
    assert summary.error_reasons["truncated image"] >= 1
    assert summary.error_reasons["image too large (decompression bomb guard)"] == 1
    assert "errors:" in summary.line()


def test_file_deleted_between_discovery_and_reading(tmp_path, tiny_predictor, monkeypatch):
    from agebatch.scanning import scanner
    from agebatch.scanning.discovery import Candidate

    victim = tmp_path / "vanishing.jpg"
    noise_image().save(victim)
    survivor = tmp_path / "stays.jpg"
    noise_image().save(survivor)

    def discover_then_delete(paths, *args):
        yield Candidate(str(survivor))
        victim.unlink()
        yield Candidate(str(victim))

    monkeypatch.setattr(scanner.discovery, "discover", discover_then_delete)
    frame = scanner.scan(tmp_path, model=tiny_predictor, detector="none")
    assert list(frame["status"]) == ["ok", "error"]
    assert "vanished" in frame["error"].iloc[1]


# -- subprocesses: real signals, real stderr ---------------------------------------------------
@pytest.mark.slow
def test_quiet_scan_of_the_hostile_folder_prints_nothing_but_its_summary(hostile_scan, tmp_path, tiny_model_path):
    """Cron mails whatever lands on stderr: no library warnings (corrupt EXIF, ...), no tracebacks."""
    root, _, _, _ = hostile_scan
    result = _run_scan(root, tmp_path / "quiet.csv", tiny_model_path, "--quiet")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 1, result.stderr


def _env(model):
    env = dict(os.environ, AGEBATCH_MODEL=str(model), PYTHONPATH=str(REPO))
    env.pop("AGEBATCH_DEBUG", None)
    return env


def _scan_command(folder, out, *extra):
    return [
        sys.executable,
        "-m",
        "agebatch",
        "scan",
        str(folder),
        "--out",
        str(out),
        "--detector",
        "none",
        "--batch-size",
        "2",
        "--jobs",
        "1",
        *extra,
    ]


def _run_scan(folder, out, model, *extra):
    """A real ``agebatch scan`` subprocess to completion (stdout/stderr captured as text)."""
    return subprocess.run(
        _scan_command(folder, out, *extra), env=_env(model), capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(N_IMAGES):
        noise_image((256, 256), seed=i).save(folder / f"img_{i:04d}.jpg", quality=90)
    return folder


def _rows_written(out):
    """Newlines in the output, or in the temporary file a fresh run writes before renaming it."""
    candidates = [out, *out.parent.glob(f".{out.name}.*.tmp")]
    counts = [p.read_bytes().count(b"\n") for p in candidates if p.exists()]
    return max(counts, default=0)


def _wait_for_rows(out, minimum, process, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if _rows_written(out) > minimum:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_sigkill_during_resume_runs_loses_and_duplicates_nothing(tmp_path, many_images, tiny_model_path):
    out = tmp_path / "results.csv"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        process = subprocess.Popen(
            _scan_command(many_images, out, "--resume"),
            env=_env(tiny_model_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rows_before = _rows_written(out)
        if _wait_for_rows(out, rows_before + 3, process):
            time.sleep(rng.uniform(0.0, 0.1))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
        process.wait()
    final = _run_scan(many_images, out, tiny_model_path, "--resume")
    assert final.returncode == 0, final.stderr
    rows = read_csv(out)
    paths = [r["path"] for r in rows]
    assert kills >= 2
    assert len(paths) == len(set(paths)) == N_IMAGES  # every image exactly once
    assert all(r["status"] == "ok" for r in rows)
    print(f"kill/resume: {kills} kills, {len(paths)} images, 0 duplicates, 0 losses")


@pytest.mark.slow
def test_sigint_stops_promptly_keeps_rows_and_exits_130(tmp_path, many_images, tiny_model_path):
    out = tmp_path / "results.csv"
    # A shell without job control starts background jobs with SIGINT ignored, and Python then keeps it
    # ignored; give the child the default disposition a terminal user's process has.
    process = subprocess.Popen(
        _scan_command(many_images, out),
        env=_env(tiny_model_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert _wait_for_rows(out, 5, process)
    process.send_signal(signal.SIGINT)
    started = time.time()
    _, stderr = process.communicate(timeout=60)
    assert time.time() - started < 15
    assert process.returncode == 130
    assert "--resume" in stderr and "Traceback" not in stderr
    rows = read_csv(out)
    assert 0 < len(rows) < N_IMAGES
    resumed = _run_scan(many_images, out, tiny_model_path, "--resume")
    assert resumed.returncode == 0
    assert len({r["path"] for r in read_csv(out)}) == len(read_csv(out)) == N_IMAGES


@pytest.mark.slow
def test_second_scan_on_the_same_output_is_refused_or_waits(tmp_path, many_images, tiny_model_path, run_cli):
    out = tmp_path / "results.csv"
    with results.ResultsWriter(out):
        code, _, err = run_cli("scan", many_images / "img_0000.jpg", "--out", out, "--detector", "none")
        assert code == 2 and "another agebatch scan or merge is writing" in err
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from agebatch.results import ResultsWriter\n"
            f"w = ResultsWriter({str(out)!r}, resume=True); w.__enter__(); print('locked', flush=True); time.sleep(2); w.__exit__(None, None, None)",
        ],
        env=_env(tiny_model_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.time()
    code, _, err = run_cli("scan", many_images / "img_0001.jpg", "--out", out, "--detector", "none", "--wait")
    holder.wait()
    assert code == 0, err
    assert time.time() - started >= 1.0
    assert [os.path.basename(r["path"]) for r in read_csv(out)] == ["img_0001.jpg"]


@pytest.mark.slow
def test_disk_full_keeps_earlier_results(tmp_path, many_images, run_cli, monkeypatch):
    out = tmp_path / "results.csv"
    assert run_cli("scan", many_images / "img_0000.jpg", "--out", out, "--detector", "none")[0] == 0
    before = out.read_bytes()
    real_write = os.write
    calls = {"n": 0}

    def fill_up(fd, data):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(results.writer.os, "write", fill_up)
    code, _, err = run_cli("scan", many_images, "--out", out, "--detector", "none")
    assert code == 2 and "No space left on device" in err
    assert out.read_bytes() == before  # a fresh run never replaced the earlier file
    calls["n"] = 0
    code, _, err = run_cli("scan", many_images, "--out", out, "--detector", "none", "--resume")
    assert code == 2 and "No space left on device" in err
    assert out.read_bytes().startswith(before)  # earlier rows untouched; whole new images may follow
    rows = read_csv(out)
    assert len(rows) == len({r["path"] for r in rows}) and all(r["status"] == "ok" for r in rows)
    assert out.read_bytes().endswith(b"\n")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_text_and_truncated_models_are_one_line_errors(tmp_path, tiny_model_path, run_cli):
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(tiny_model_path.read_bytes()[:5000])
    text = tmp_path / "model.keras"
    text.write_text("this is not a model")
    wrong_suffix = tmp_path / "model.h5"
    wrong_suffix.write_bytes(tiny_model_path.read_bytes())
    for model in (truncated, text, wrong_suffix, tmp_path):
        code, _, err = run_cli("scan", tmp_path, "--out", tmp_path / "r.csv", "--model", model)
        assert code == 2, model
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
