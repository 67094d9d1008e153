"""Attacks on what agebatch writes: files written through planted names, outputs that clobber what the
user has, and clean-up that touches other runs' files. Each test is an attack that once broke agebatch."""

from __future__ import annotations

import os

import pytest

from agebatch import results
from agebatch.common import atomic
from agebatch.reporting.aggregate import ReportError, build_report, write_report
from tests.imagegen import noise_image


def _results_file(path, names=("a.jpg",)):
    rows = [
        {"path": n, "face": 0, "age": 30.0, "gender": "male", "gender_prob": 0.9, "status": "ok", "faces": 1}
        for n in names
    ]
    path.write_text(results.header("csv") + results.encode_rows(rows, "csv"))
    return path


def test_a_report_never_writes_through_a_planted_temporary_name(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    source = _results_file(tmp_path / "r.csv")
    out = tmp_path / "report.html"
    (tmp_path / f".{out.name}.tmp").symlink_to(victim)  # the fixed name the report once used
    write_report(build_report([source]), out)
    assert victim.read_text() == "precious"
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp") and not p.startswith(".report.html.tmp")]


def test_atomic_writes_leave_nothing_behind_and_keep_the_old_file_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_writer(target) as handle:
            handle.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["t.txt"]


def test_the_lock_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "elsewhere" / "created-by-agebatch"
    victim.parent.mkdir()
    out = tmp_path / "r.csv"
    (tmp_path / ".r.csv.lock").symlink_to(victim)
    with pytest.raises(results.OutputError, match="symbolic link"):
        with results.ResultsWriter(out):
            pass
    assert not victim.exists() and not out.exists()


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder", "device"])
def test_an_output_that_is_not_a_regular_file_is_refused(tmp_path, kind):
    out = tmp_path / "r.csv"
    if kind == "symlink":
        target = _results_file(tmp_path / "target.csv")
        out.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(out)
    elif kind == "folder":
        out.mkdir()
    else:
        out = "/dev/null"
    with pytest.raises(results.OutputError):
        with results.ResultsWriter(out):
            pass
    with pytest.raises(atomic.UnsafeOutputError):
        atomic.check_output(out)
    if kind == "symlink":
        assert (tmp_path / "target.csv").read_text().count("\n") == 2


def test_scan_and_report_refuse_an_output_that_is_one_of_their_inputs(run_cli, tmp_path):
    crop = tmp_path / "a.jpg"
    noise_image().save(crop)
    same = _results_file(tmp_path / "same.csv", names=[str(crop)] * 1)
    before = same.read_bytes()
    code, _, err = run_cli("scan", same, "--out", same, "--detector", "none")
    assert code == 2 and "also an input" in err and same.read_bytes() == before
    code, _, err = run_cli("report", same, "--out", same)
    assert code == 2 and "also an input" in err and same.read_bytes() == before
    link = tmp_path / "link.csv"
    link.symlink_to(same)
    code, _, err = run_cli("report", link, "--out", same)  # the same file by another name
    assert code == 2 and same.read_bytes() == before
    other = _results_file(tmp_path / "other.csv")
    kept = other.read_bytes()
    code, _, err = run_cli("report", same, "--out", other)  # a results file is not a report
    assert code == 2 and other.read_bytes() == kept


def test_a_report_refuses_to_replace_a_results_file_from_python_too(tmp_path):
    source = _results_file(tmp_path / "r.csv")
    other = _results_file(tmp_path / "other.csv")
    with pytest.raises(ReportError, match="not an agebatch report"):
        write_report(build_report([source]), other)


def test_stale_temporaries_are_matched_exactly_never_by_a_glob(tmp_path):
    out = tmp_path / "r[ab].csv"
    others = [tmp_path / ".ra.csv.abcd1234.tmp", tmp_path / ".r[ab].csv.x.abcd1234.tmp"]  # other runs' files
    for path in others:
        path.write_text("another scan's rows")
    own = tmp_path / ".r[ab].csv.zz99yy88.tmp"  # a killed earlier run into the same --out
    own.write_text("stale")
    with results.ResultsWriter(out) as writer:
        writer.commit()
    assert all(path.read_text() == "another scan's rows" for path in others)
    assert not own.exists()


def test_a_report_never_replaces_a_file_that_is_not_a_report(tmp_path, run_cli):
    source = _results_file(tmp_path / "r.csv")
    photo = tmp_path / "IMG_0001.jpg"
    noise_image().save(photo)
    kept = photo.read_bytes()
    code, _, err = run_cli("report", source, "--out", photo)
    assert code == 2 and "not an agebatch report" in err and photo.read_bytes() == kept
    report = tmp_path / "report.html"
    assert run_cli("report", source, "--out", report)[0] == 0
    assert run_cli("report", source, "--out", report)[0] == 0  # an earlier report is replaced
    as_json = tmp_path / "report.json"
    assert run_cli("report", source, "--out", as_json, "--format", "json")[0] == 0
    assert run_cli("report", source, "--out", as_json, "--format", "json")[0] == 0


def test_sidecar_files_that_are_fifos_or_huge_are_not_read(tmp_path):
    from agebatch.common.files import read_regular
    from agebatch.modelfile.card import card_for_model

    os.mkfifo(tmp_path / "m.card.json")
    assert card_for_model(tmp_path / "m.keras") is None  # returns at once instead of blocking
    with pytest.raises(ValueError, match="not a regular file"):
        read_regular(tmp_path / "m.card.json", 1000)
    (tmp_path / "big.json").write_bytes(b" " * 5000)
    with pytest.raises(ValueError, match="larger than"):
        read_regular(tmp_path / "big.json", 1000)


def test_no_lock_file_is_left_behind_and_waiters_still_take_turns(tmp_path):
    import threading

    out = tmp_path / "r.csv"
    order = []
    first = results.ResultsWriter(out)
    first.__enter__()

    def second():
        with results.ResultsWriter(out, resume=True, wait=True) as writer:
            order.append("second")
            writer.commit()

    thread = threading.Thread(target=second)
    thread.start()
    import time

    time.sleep(0.3)
    order.append("first")
    first.commit()
    first.__exit__(None, None, None)
    thread.join(timeout=30)
    assert order == ["first", "second"]
    assert sorted(os.listdir(tmp_path)) == ["r.csv"]  # no lock file, no temporary file
