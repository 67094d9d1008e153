"""Attacks on resuming: decisions taken before the lock is held, and resume that silently dropped or
duplicated rows. Each test is an attack that once broke agebatch."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agebatch import results


def _row(path, face=0, faces=1, **extra):
    return {
        "path": path,
        "face": face,
        "age": 30.0,
        "gender": "male",
        "gender_prob": 0.9,
        "status": "ok",
        "faces": faces,
        "file_size": 10,
        "file_mtime": 2.5,
        **extra,
    }


def _write(path, groups, fmt="csv"):
    text = results.header(fmt) + "".join(results.encode_rows(group, fmt) for group in groups)
    path.write_text(text)
    return path


def _resume(path, fmt="csv"):
    with results.ResultsWriter(path, fmt, resume=True) as writer:
        writer.commit()
        return writer


def test_a_stray_quote_inside_a_cell_loses_no_row(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row(f"{i}.jpg")] for i in range(5)])
    text = path.read_text().replace("2.jpg", 'tw"o.jpg', 1)  # a hand edit or another tool's output
    path.write_text(text)
    writer = _resume(path)
    assert path.read_text() == text and len(writer.done) == 5


def test_damage_it_cannot_prove_is_refused_not_truncated(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row(f"{i}.jpg")] for i in range(5)])
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = '"unterminated,' + lines[2]  # a quote opening a cell in the middle of the file
    damaged = "".join(lines)
    path.write_text(damaged)
    with pytest.raises(results.OutputError, match="damaged"):
        _resume(path)
    assert path.read_text() == damaged


def test_a_middle_jsonl_line_that_is_not_an_object_is_refused(tmp_path):
    path = _write(tmp_path / "r.jsonl", [[_row(f"{i}.jpg")] for i in range(3)], "jsonl")
    lines = path.read_text().splitlines(keepends=True)
    damaged = "".join([lines[0], "[1, 2]\n", *lines[1:]])
    path.write_text(damaged)
    with pytest.raises(results.OutputError, match="line 2"):
        _resume(path, "jsonl")
    assert path.read_text() == damaged


def test_a_torn_last_jsonl_line_is_cut_and_said(tmp_path, caplog):
    path = _write(tmp_path / "r.jsonl", [[_row(f"{i}.jpg")] for i in range(3)], "jsonl")
    good = path.read_text()
    path.write_text(good + json.dumps(_row("3.jpg"))[:20])
    writer = _resume(path, "jsonl")
    assert path.read_text() == good and len(writer.done) == 3
    assert "torn write" in caplog.text


def test_a_cell_over_128_kb_is_read(tmp_path):
    long_error = "x" * 200_000
    path = _write(tmp_path / "r.csv", [[_row("a.jpg", status="error", error=long_error)], [_row("b.jpg")]])
    writer = _resume(path)
    assert set(writer.done) == {"a.jpg", "b.jpg"}


def test_an_image_with_many_faces_at_the_end_is_kept(tmp_path):
    crowd = [_row("crowd.jpg", face=i, faces=100) for i in range(100)]
    path = _write(tmp_path / "r.csv", [[_row("a.jpg")], crowd])
    before = path.read_bytes()
    for _ in range(3):
        _resume(path)
    assert path.read_bytes() == before


def test_a_torn_group_of_a_many_face_image_is_cut_to_its_start(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row("a.jpg")]])
    good = path.read_bytes()
    with open(path, "a") as handle:
        handle.write(results.encode_rows([_row("crowd.jpg", face=i, faces=100) for i in range(70)], "csv"))
    writer = _resume(path)
    assert path.read_bytes() == good and "crowd.jpg" not in writer.done


def test_whole_second_mtimes_from_a_spreadsheet_do_not_duplicate(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row("a.jpg", file_mtime=1700000000)]])
    with results.ResultsWriter(path, resume=True) as writer:
        assert writer.is_done(results.FileKey("a.jpg", 10, 1700000000.734512))
        assert writer.changed == 0


def test_a_waiting_fresh_run_decides_about_the_earlier_file_under_the_lock(tmp_path):
    out = tmp_path / "r.csv"
    first = results.ResultsWriter(out)
    first.__enter__()
    first.write_image([_row("first.jpg")])
    outcome = {}

    def second_run():
        try:
            with results.ResultsWriter(out, wait=True) as writer:  # created while out does not exist yet
                writer.write_image([_row("partial.jpg")])
                raise KeyboardInterrupt  # interrupted before it completes
        except KeyboardInterrupt:
            outcome["interrupted"] = True

    thread = threading.Thread(target=second_run)
    thread.start()
    time.sleep(0.3)
    first.commit()
    first.__exit__(None, None, None)
    thread.join(timeout=30)
    assert outcome == {"interrupted": True}
    assert [r["path"] for r in results.read_rows(out, "csv")] == ["first.jpg"]  # the finished file survives


def test_resuming_a_file_from_before_the_age_interval_keeps_its_columns(tmp_path):
    old_columns = results.ALL_COLUMNS[:-2]
    path = tmp_path / "r.csv"
    path.write_text(",".join(old_columns) + "\n" + results.encode_rows([_row("a.jpg")], "csv", columns=old_columns))
    with results.ResultsWriter(path, resume=True) as writer:
        writer.write_image([_row("b.jpg", age_low=25.0, age_high=35.0)])
        writer.commit()
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and all(line.count(",") == len(old_columns) - 1 for line in lines)
    assert set(_resume(path).done) == {"a.jpg", "b.jpg"}


def test_a_header_changed_by_a_spreadsheet_is_refused_not_appended_out_of_line(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row("a.jpg")]])
    lines = path.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace("age_low,age_high", "age_high,age_low")
    changed = "".join(lines)
    path.write_text(changed)
    with pytest.raises(results.OutputError, match="columns differ"):
        _resume(path)
    assert path.read_text() == changed


def test_excel_safe_paths_are_recognised_on_resume(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(results.header("csv") + results.encode_rows([_row("@crops/0.jpg")], "csv", excel=True))
    assert "'@crops/0.jpg" in path.read_text()
    with results.ResultsWriter(path, resume=True, excel=True) as writer:
        assert writer.is_done(results.FileKey("@crops/0.jpg", 10, 2.5))


def test_a_complete_last_row_is_never_taken_for_a_torn_write(tmp_path):
    path = _write(tmp_path / "r.csv", [[_row(f"{i}.jpg")] for i in range(3)])
    damaged = path.read_text() + "not,a,complete,row\n"  # newline-terminated: damage, not a torn write
    path.write_text(damaged)
    with pytest.raises(results.OutputError, match="damaged"):
        _resume(path)
    assert path.read_text() == damaged
