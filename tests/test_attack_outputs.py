"""Attacks on the files around the results: the summary, closed standard streams, merge outputs and
what a kill leaves behind. Each test is an attack that once broke agebatch."""

from __future__ import annotations

import importlib
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


@pytest.fixture(scope="module")
def part(crops, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("part") / "part.csv"
    done = _agebatch("scan", crops, "--detector", "none", "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    return out


def test_merge_writes_only_what_its_out_names(part, tmp_path):
    from agebatch import results

    with pytest.raises(results.OutputError, match="another format"):
        results.merge([part], tmp_path / "m.jsonl")
    target = tmp_path / "kept.csv"
    target.write_text("someone's file\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with pytest.raises(results.OutputError, match="symbolic link"):
        results.merge([part], link)
    assert link.is_symlink() and target.read_text() == "someone's file\n"
    assert not (tmp_path / "m.jsonl").exists()


def test_merge_to_stdout_writes_no_file_named_dash(part, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "agebatch", "merge", str(part), "--out", "-"],
        capture_output=True,
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == part.read_bytes()
    assert not (tmp_path / "-").exists()


def test_merge_refuses_a_part_listing_an_image_twice(part, tmp_path):
    from agebatch import results

    lines = part.read_bytes().splitlines(keepends=True)
    doubled = tmp_path / "doubled.csv"
    doubled.write_bytes(b"".join([*lines, lines[1]]))
    with pytest.raises(results.OutputError, match="listed twice"):
        results.merge([doubled], tmp_path / "out.csv")


def test_merge_on_a_full_disk_is_a_one_line_usage_error(part, tmp_path, monkeypatch, run_cli):
    merging = importlib.import_module("agebatch.results.merge")

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(merging, "_copy", full)
    code, _, err = run_cli("merge", part, "--out", tmp_path / "out.csv")
    assert code == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.slow
def test_resume_keeps_a_photo_whose_name_starts_with_a_quote(tmp_path, run_cli):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("'-x.jpg", "'=y.jpg", "plain.jpg"):
        noise_image((64, 64)).save(folder / name)
    out = tmp_path / "r.csv"
    for _ in range(3):
        code, _, err = run_cli("scan", folder, "--detector", "none", "--out", out, "--resume", "-q")
        assert code == 0, err
    assert sorted(line.split(",")[0] for line in _rows(out)) == sorted(
        f"{folder}/{name}" for name in ("'-x.jpg", "'=y.jpg", "plain.jpg")
    )


def test_a_kill_while_the_results_move_into_place_leaves_no_record_of_another_run(tmp_path, monkeypatch):
    """The rows and their ``.meta.json`` are two renames: a kill between them must not leave the previous
    run's record beside new rows, and its temporary files are gone after the next run."""
    from agebatch.results import ResultsWriter, metadata_path, write_metadata

    out = tmp_path / "r.csv"
    with ResultsWriter(out) as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        writer.commit({"run": "first"})
    assert json.loads(metadata_path(out).read_text())["run"] == "first"
    real_replace = os.replace

    def killed_after_the_rows(source, target):
        real_replace(source, target)
        if Path(target) == out:
            raise KeyboardInterrupt  # SIGKILL-like: nothing after the rows' rename runs

    monkeypatch.setattr(os, "replace", killed_after_the_rows)
    with pytest.raises(KeyboardInterrupt), ResultsWriter(out) as writer:
        writer.write_image([{"path": "b.jpg", "status": "no_face", "faces": 0}])
        writer.commit({"run": "second"})
    monkeypatch.setattr(os, "replace", real_replace)
    assert "b.jpg" in out.read_text()
    assert not metadata_path(out).exists() or json.loads(metadata_path(out).read_text())["run"] == "second"
    with ResultsWriter(out, resume=True) as writer:
        writer.commit({"run": "third"})
    assert json.loads(metadata_path(out).read_text())["run"] == "third"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.csv.meta.json"]
    assert write_metadata  # the record can still be written alone (merge and the API use it)


def test_report_cells_that_are_not_numbers_are_left_out_not_fatal(tmp_path, run_cli):
    """Hand-edited or damaged cells (inf, nan, -5, 1e300, text) in faces, age and gender_prob: the
    report counts what it can, prints no numpy warning, and exits 0."""
    from tests.test_report import face, write_results

    rows = [
        face("root/a/1.jpg", 0, 30.0, "male"),
        dict(face("root/a/2.jpg", 0, "inf", "female"), faces="inf"),
        dict(face("root/a/3.jpg", 0, 41.0, "female", prob="inf"), faces="-5"),
        dict(face("root/a/4.jpg", 0, "1e300", "male", prob="nan"), faces="1e300"),
        dict(face("root/a/5.jpg", 0, "-3", "male", prob="-1"), faces="many"),
    ]
    source = write_results(tmp_path / "r.csv", rows)
    code, _, err = run_cli("report", source, "--out", tmp_path / "r.json", "--format", "json", "-q")
    assert code == 0 and err == "", err
    overall = json.loads((tmp_path / "r.json").read_text())["overall"]
    assert overall["faces"] == 2 and sum(overall["age_histogram"]) == 2
    assert sum(overall["gender_prob_histogram"]["counts"]) == 2


def test_the_summary_never_replaces_the_record_beside_the_results(crops, tmp_path):
    out = tmp_path / "r.csv"
    for summary in (tmp_path / "r.csv.meta.json", tmp_path / ".r.csv.lock", "-"):
        done = _agebatch("scan", crops, "--detector", "none", "--out", out, "--summary-json", summary, "-q")
        assert done.returncode == 2 and b"--summary-json" in done.stderr, (summary, done.stderr)
    assert not out.exists()


def test_reopened_standard_streams_reach_child_processes(tmp_path):
    code = (
        "import os, subprocess\n"
        "from agebatch.common import stdio\n"
        "stdio.reopen_closed_streams()\n"
        f"subprocess.call(['sh', '-c', 'ls /proc/$$/fd > {tmp_path}/fds'])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(["bash", "-c", f"'{sys.executable}' -c \"$CODE\" <&- >&- 2>&-"], env=dict(env, CODE=code))
    assert {"0", "1", "2"} <= set((tmp_path / "fds").read_text().split())


def test_images_at_the_top_of_a_relative_scan_are_the_top_level(tmp_path, monkeypatch):
    from agebatch.reporting import tally as tallying
    from agebatch.reporting.aggregate import build_report
    from agebatch.reporting.options import ReportOptions
    from tests.test_report import face, write_results

    paths = ["img.jpg", "a/x1/i.jpg", "a/x2/i.jpg", "a/x3/i.jpg", "a/x1/d/e/i.jpg", "a/x4/k/i.jpg"]
    source = write_results(tmp_path / "r.csv", [face(p, 0, 30.0, "male") for p in paths])
    unfolded = {d: build_report([source], ReportOptions(depth=d))["overall"]["folders"] for d in (1, 2)}
    assert [(f["folder"], f["images"]) for f in unfolded[1]] == [("(top level)", 1), ("a", 5)]
    monkeypatch.setattr(tallying, "FOLDER_LIMIT", 1)
    monkeypatch.setattr(tallying, "CHUNK_ROWS", 2)
    for depth in (1, 2):
        assert build_report([source], ReportOptions(depth=depth))["overall"]["folders"] == unfolded[depth]


def test_resume_with_excel_safe_keeps_every_quoted_name_once(tmp_path, run_cli):
    folder = tmp_path / "q"
    folder.mkdir()
    names = ("'-x.jpg", "'=y.jpg", "=z.jpg", "-w.jpg", "''=t.jpg", "'a.jpg", "normal.jpg")
    for name in names:
        noise_image((64, 64)).save(folder / name)
    out = tmp_path / "r.csv"
    for _ in range(3):
        code, _, err = run_cli("scan", folder, "--detector", "none", "--out", out, "--resume", "--excel-safe", "-q")
        assert code == 0, err
    assert len(_rows(out)) == len(names)


def test_no_record_of_an_earlier_run_stays_beside_other_rows(part, tmp_path):
    from agebatch import results

    out = tmp_path / "r.csv"
    with results.ResultsWriter(out) as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        writer.commit({"run": "first"})
    out.unlink()
    with pytest.raises(KeyboardInterrupt), results.ResultsWriter(out) as writer:
        writer.write_image([{"path": "b.jpg", "status": "no_face", "faces": 0}])
        raise KeyboardInterrupt  # stopped before commit: the partial rows stay for --resume
    assert "b.jpg" in out.read_text() and not results.metadata_path(out).exists()
    merged = tmp_path / "m.csv"
    results.merge([part], merged)
    results.write_metadata(merged, {"run": "scan"})
    results.merge([part], merged)
    record = json.loads(results.metadata_path(merged).read_text())  # what made the merged rows, not the scan
    assert "run" not in record and record["merged_from"] == [str(part)]


def test_a_setup_failure_leaves_no_temporary_file(tmp_path, monkeypatch):
    from agebatch.results import writer as writing

    def full(self, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing.ResultsWriter, "_write_all", full)
    with pytest.raises(writing.OutputError, match="No space left"), writing.ResultsWriter(tmp_path / "r.csv"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_rows_to_a_full_stdout_are_a_one_line_usage_error(crops):
    done = _agebatch("scan", crops, "--detector", "none", "--out", "-", shell_redirect="> /dev/full")
    assert done.returncode == 2 and b"cannot write standard output" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_merge_refuses_a_part_repeating_its_last_image(part, tmp_path):
    from agebatch import results

    lines = part.read_bytes().splitlines(keepends=True)
    doubled = tmp_path / "doubled.csv"
    doubled.write_bytes(b"".join([*lines, lines[-1]]))
    with pytest.raises(results.OutputError, match="listed twice"):
        results.merge([doubled], tmp_path / "out.csv")


def test_predict_and_models_refuse_a_closed_stdout_and_models_a_photo(crops):
    for args in (["predict", crops / "face0.jpg", "--detector", "none"], ["models"]):
        done = _agebatch(*args, shell_redirect=">&-")
        assert done.returncode == 2 and b"standard output is closed" in done.stderr, args
    done = _agebatch("models", "--model", crops / "face0.jpg")
    assert done.returncode == 2 and b"not a Keras model file" in done.stderr


def test_a_stopped_fresh_run_keeps_the_earlier_results_with_their_record(tmp_path):
    from agebatch import results

    out = tmp_path / "r.csv"
    with results.ResultsWriter(out) as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        writer.commit({"run": "first"})
    with pytest.raises(KeyboardInterrupt), results.ResultsWriter(out) as writer:
        writer.write_image([{"path": "b.jpg", "status": "no_face", "faces": 0}])
        raise KeyboardInterrupt
    assert "b.jpg" not in out.read_text()
    assert json.loads(results.metadata_path(out).read_text())["run"] == "first"
