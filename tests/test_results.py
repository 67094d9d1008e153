import csv
import io
import json
import os

import pytest

from agebatch import results


def rows_for(path, faces=1, status="ok"):
    if status != "ok":
        return [{"path": path, "status": status, "faces": 0, "file_size": 1, "file_mtime": 1.0}]
    return [
        {
            "path": path,
            "face": i,
            "age": 30.0 + i,
            "gender": "male",
            "gender_prob": 0.9,
            "status": "ok",
            "faces": faces,
            "file_size": 10,
            "file_mtime": 2.5,
        }
        for i in range(faces)
    ]


def test_columns_in_required_order():
    assert results.COLUMNS == (
        "path",
        "face",
        "x",
        "y",
        "width",
        "height",
        "face_score",
        "age",
        "gender",
        "gender_prob",
        "status",
        "error",
    )
    assert results.header("csv").startswith(",".join(results.COLUMNS))


def test_excel_safe():
    assert results.excel_safe("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert results.excel_safe("+1") == "'+1"
    assert results.excel_safe("@x") == "'@x"
    assert results.excel_safe("-2") == "'-2"
    assert results.excel_safe("photo.jpg") == "photo.jpg"


def test_encode_rows_quotes_hostile_names():
    name = 'a,b "c"\nd.jpg'
    text = results.encode_rows(rows_for(name), "csv")
    (parsed,) = list(csv.reader(io.StringIO(text)))
    assert parsed[0] == name
    (record,) = [json.loads(line) for line in results.encode_rows(rows_for(name), "jsonl").splitlines()]
    assert record["path"] == name


def test_non_utf8_names_are_escaped():
    raw = os.fsdecode(b"caf\xe9.jpg")
    assert results.display_path(raw) == "caf\\xe9.jpg"


def _write_file(path, groups, fmt="csv"):
    with open(path, "w", newline="") as handle:
        handle.write(results.header(fmt))
        for group in groups:
            handle.write(results.encode_rows(group, fmt))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_repair_tail_cuts_a_torn_record(tmp_path, fmt):
    path = tmp_path / f"r.{fmt}"
    _write_file(path, [rows_for("one.jpg"), rows_for('two,"x".jpg', faces=2)], fmt)
    good = path.read_bytes()
    path.write_bytes(good + results.encode_rows(rows_for("three.jpg"), fmt).encode()[:25])
    assert results.repair_tail(path, fmt) == 25
    assert path.read_bytes() == good


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_repair_tail_drops_an_image_with_missing_face_rows(tmp_path, fmt):
    path = tmp_path / f"r.{fmt}"
    _write_file(path, [rows_for("one.jpg")], fmt)
    good = path.read_bytes()
    torn = results.encode_rows(rows_for("three.jpg", faces=3)[:2], fmt)  # 2 of 3 faces written
    path.write_bytes(good + torn.encode())
    results.repair_tail(path, fmt)
    assert path.read_bytes() == good


def test_writer_replaces_only_on_commit(tmp_path):
    out = tmp_path / "r.csv"
    _write_file(out, [rows_for("previous.jpg")])
    previous = out.read_bytes()
    with results.ResultsWriter(out) as writer:
        writer.write_image(rows_for("a.jpg"))
        assert out.read_bytes() == previous
    assert out.read_bytes() == previous  # no commit: old file untouched
    with results.ResultsWriter(out) as writer:
        writer.write_image(rows_for("a.jpg"))
        writer.commit()
    assert [r["path"] for r in results.read_rows(out, "csv")] == ["a.jpg"]
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_writer_keeps_partial_rows_when_there_was_no_earlier_file(tmp_path):
    out = tmp_path / "r.csv"
    with results.ResultsWriter(out) as writer:
        writer.write_image(rows_for("a.jpg"))
    assert [r["path"] for r in results.read_rows(out, "csv")] == ["a.jpg"]


def test_resume_appends_and_knows_done_images(tmp_path):
    out = tmp_path / "r.csv"
    _write_file(out, [rows_for("a.jpg")])
    with results.ResultsWriter(out, resume=True) as writer:
        assert writer.is_done(results.FileKey("a.jpg", 10, 2.5))
        assert writer.changed == 0
        assert writer.is_done(results.FileKey("a.jpg", 11, 2.5))  # changed since: still listed once
        assert writer.changed == 1
        assert not writer.is_done(results.FileKey("b.jpg", 10, 2.5))
        writer.write_image(rows_for("b.jpg"))
        writer.commit()
    assert [r["path"] for r in results.read_rows(out, "csv")] == ["a.jpg", "b.jpg"]


def test_resume_refuses_a_foreign_file(tmp_path):
    out = tmp_path / "r.csv"
    out.write_text("name,value\nx,1\n")
    with pytest.raises(results.OutputError, match="not an agebatch results file"):
        with results.ResultsWriter(out, resume=True):
            pass
    assert out.read_text() == "name,value\nx,1\n"


def test_second_writer_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    with results.ResultsWriter(out):
        with pytest.raises(results.OutputError, match="another agebatch scan or merge is writing"):
            with results.ResultsWriter(out):
                pass


def test_unwritable_folder_is_an_output_error(tmp_path):
    with pytest.raises(results.OutputError, match="does not exist"):
        with results.ResultsWriter(tmp_path / "missing" / "r.csv"):
            pass
    with pytest.raises(results.OutputError, match="is a folder"):
        with results.ResultsWriter(tmp_path):
            pass


def test_failed_write_is_undone(tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    _write_file(out, [rows_for("a.jpg")])
    before = out.read_bytes()
    real_write = os.write

    def disk_fills_up(fd, data):
        real_write(fd, bytes(data[:7]))  # part of the image reaches the disk, then ENOSPC
        raise OSError(28, "No space left on device")

    with results.ResultsWriter(out, resume=True) as writer:
        monkeypatch.setattr(results.writer.os, "write", disk_fills_up)
        with pytest.raises(results.OutputError, match="No space left"):
            writer.write_image(rows_for("b.jpg"))
        monkeypatch.setattr(results.writer.os, "write", real_write)
    assert out.read_bytes() == before


def test_commit_keeps_permissions_of_the_old_file(tmp_path):
    out = tmp_path / "r.csv"
    _write_file(out, [rows_for("a.jpg")])
    out.chmod(0o640)
    with results.ResultsWriter(out) as writer:
        writer.commit()
    assert (out.stat().st_mode & 0o777) == 0o640
