"""End-to-end scans through the CLI (in-process) on generated folders, with the tiny model."""

import csv
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from agebatch import results
from tests.imagegen import FACE_PHOTO, NO_FACE_PHOTOS, bomb_png, exif_rotated_jpeg, jpeg_bytes, noise_image


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def crops(tmp_path):
    """A folder of ten 'face crops' (for --detector none) in nested folders with awkward names."""
    root = tmp_path / "crops"
    names = [
        "a.jpg",
        "b c.jpg",
        "comma,name.jpg",
        'quote"name.jpg',
        "new\nline.jpg",
        "ünïcødé.jpg",
        "sub/deeper/x.png",
        "sub/y.webp",
        "sub/z.bmp",
        "sub/t.tif",
    ]
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        noise_image((200, 200), seed=i).save(path)
    return root


@pytest.mark.slow
def test_detector_none_gives_one_ok_row_per_image(run_cli, crops, tmp_path):
    out = tmp_path / "r.csv"
    code, stdout, stderr = run_cli("scan", crops, "--out", out, "--detector", "none", "--batch-size", "4")
    assert code == 0, stderr
    rows = read_csv(out)
    assert len(rows) == 10
    assert all(r["status"] == "ok" for r in rows)
    assert list(rows[0])[:12] == list(results.COLUMNS)
    assert {r["gender"] for r in rows} <= {"male", "female"}
    for r in rows:
        assert 0 <= float(r["age"]) < 200
        assert 0.5 <= float(r["gender_prob"]) <= 1
        assert (r["x"], r["y"], r["width"], r["height"], r["face"]) == ("0", "0", "200", "200", "0")
    paths = [r["path"] for r in rows]
    assert str(crops / "new\nline.jpg") in paths and str(crops / 'quote"name.jpg') in paths
    assert paths == sorted(paths, key=lambda p: p.split(os.sep))  # sorted, deterministic
    assert stdout == ""  # no progress bar off a terminal; the one-line summary on stderr still says what happened
    assert stderr.count("\n") == 1 and "10 images, 10 faces" in stderr and "0 errors" in stderr
    code, stdout, stderr = run_cli("scan", crops, "--out", tmp_path / "q.csv", "--detector", "none", "--quiet")
    assert code == 0 and stdout == "" and stderr == ""  # --quiet: nothing (cron mail stays clean)
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no photos here")
    code, _, stderr = run_cli("scan", empty, "--out", tmp_path / "none.csv", "--detector", "none")
    assert code == 4 and "no images found" in stderr  # documented: a nightly job on an empty share is noticed


def test_the_output_name_decides_the_format(run_cli, crops, tmp_path):
    code, _, err = run_cli("scan", crops, "--out", tmp_path / "r.json", "--detector", "none")
    assert code == 2 and ".jsonl" in err
    code, _, err = run_cli("scan", crops, "--out", tmp_path / "r.csv", "--format", "jsonl", "--detector", "none")
    assert code == 2 and "disagrees" in err
    code, _, err = run_cli("scan", crops, "--out", tmp_path / "r.ndjson", "--detector", "none")
    assert code == 0 and (tmp_path / "r.ndjson").read_text().startswith("{")
    renamed = tmp_path / "rows.txt"  # report reads by content, whatever the name
    renamed.write_bytes((tmp_path / "r.ndjson").read_bytes())
    code, _, err = run_cli("report", renamed, "--out", tmp_path / "report.html")
    assert code == 0, err
    code, _, err = run_cli("report", crops, "--out", tmp_path / "report2.html")
    assert code == 2 and "is a folder" in err


def test_mixed_folder_statuses(run_cli, tmp_path):
    root = tmp_path / "photos"
    (root / "nested").mkdir(parents=True)
    shutil.copy(FACE_PHOTO, root / "face.jpg")
    shutil.copy(NO_FACE_PHOTOS[0], root / "nested" / "coffee.jpg")
    (root / "zero.jpg").write_bytes(b"")
    (root / "cut.jpg").write_bytes(jpeg_bytes(noise_image((300, 300)))[:500])
    (root / "html.png").write_text("<html></html>")
    (root / "bomb.png").write_bytes(bomb_png())
    (root / "rotated.jpg").write_bytes(exif_rotated_jpeg(6))
    noise_image((80, 80)).convert("CMYK").save(root / "cmyk.jpg")
    out = tmp_path / "r.csv"
    code, _, stderr = run_cli("scan", root, "--out", out)
    assert code == 0, stderr
    by_name = {os.path.basename(r["path"]): r for r in read_csv(out)}
    assert by_name["face.jpg"]["status"] == "ok"
    assert 150 < int(by_name["face.jpg"]["x"]) + int(by_name["face.jpg"]["width"]) / 2 < 290
    assert by_name["coffee.jpg"]["status"] == "no_face"
    assert by_name["coffee.jpg"]["face"] == ""
    for bad in ("zero.jpg", "cut.jpg", "html.png", "bomb.png"):
        assert by_name[bad]["status"] == "error", bad
        assert by_name[bad]["error"] and "\n" not in by_name[bad]["error"]
    assert "decompression bomb" in by_name["bomb.png"]["error"]
    assert by_name["rotated.jpg"]["status"] == "no_face"
    assert by_name["cmyk.jpg"]["status"] == "no_face"


def test_jsonl_format(run_cli, crops, tmp_path):
    out = tmp_path / "r.jsonl"
    code, _, _ = run_cli("scan", crops, "--out", out, "--detector", "none")
    assert code == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 10
    assert list(records[0])[:12] == list(results.COLUMNS)
    assert isinstance(records[0]["age"], float)


@pytest.mark.slow
def test_resume_scans_only_new_images(run_cli, crops, tmp_path):
    out = tmp_path / "r.csv"
    assert run_cli("scan", crops, "--out", out, "--detector", "none")[0] == 0
    first = read_csv(out)
    noise_image((200, 200), seed=99).save(crops / "new.jpg")
    code, _, _ = run_cli("scan", crops, "--out", out, "--detector", "none", "--resume")
    assert code == 0
    second = read_csv(out)
    assert second[: len(first)] == first
    assert [os.path.basename(r["path"]) for r in second[len(first) :]] == ["new.jpg"]
    # Nothing new: nothing appended.
    assert run_cli("scan", crops, "--out", out, "--detector", "none", "--resume")[0] == 0
    assert len(read_csv(out)) == 11


def test_resume_keeps_a_changed_file_once_and_says_so(run_cli, crops, tmp_path):
    out = tmp_path / "r.csv"
    run_cli("scan", crops, "--out", out, "--detector", "none")
    before = out.read_bytes()
    noise_image((200, 200), seed=5).save(crops / "a.jpg", quality=50)
    os.utime(crops / "a.jpg", (1, 1))
    from agebatch.results import ResultsWriter

    with ResultsWriter(out, resume=True) as writer:
        from agebatch.results import file_key

        assert writer.is_done(file_key(str(crops / "a.jpg"))) and writer.changed == 1
    run_cli("scan", crops, "--out", out, "--detector", "none", "--resume")
    assert out.read_bytes() == before  # each image once: the changed photo is not appended again


@pytest.mark.slow
def test_fresh_run_replaces_earlier_results_but_nothing_else(run_cli, crops, tmp_path):
    out = tmp_path / "r.csv"
    assert run_cli("scan", crops, "--out", out, "--detector", "none")[0] == 0
    assert len(read_csv(out)) == 10
    assert run_cli("scan", crops / "a.jpg", "--out", out, "--detector", "none")[0] == 0
    assert len(read_csv(out)) == 1
    photo = tmp_path / "keep.jpg"
    noise_image().save(photo)
    kept = photo.read_bytes()
    code, _, err = run_cli("scan", crops / "a.jpg", "--out", photo, "--detector", "none")  # an --out *.jpg slip
    assert code == 2 and "not an agebatch results file" in err
    assert photo.read_bytes() == kept


@pytest.mark.slow
def test_excel_safe_option(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    noise_image().save("=cmd.jpg")
    run_cli("scan", "=cmd.jpg", "--out", "plain.csv", "--detector", "none")
    run_cli("scan", "=cmd.jpg", "--out", "safe.csv", "--detector", "none", "--excel-safe")
    assert read_csv("plain.csv")[0]["path"] == "=cmd.jpg"
    assert read_csv("safe.csv")[0]["path"] == "'=cmd.jpg"


@pytest.mark.parametrize(
    "args, message",
    [
        (["scan", "does-not-exist", "--out", "r.csv"], "no such file or folder"),
        (["scan", ".", "--out", "missing-dir/r.csv"], "output folder does not exist"),
        (["scan", ".", "--out", "r.csv", "--model", "nope.keras"], "model file not found"),
        (["scan", ".", "--out", "r.csv", "--batch-size", "0"], "batch-size"),
        (["scan", "."], "--out"),
    ],
)
def test_usage_and_setup_errors_exit_2(run_cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(*args)
    assert code == 2
    assert message in stderr


@pytest.mark.parametrize("content", [b"just text", b"PK\x03\x04truncated zip", b""])
def test_bad_model_file_is_a_one_line_error(run_cli, tmp_path, content):
    model = tmp_path / "bad.keras"
    model.write_bytes(content)
    code, _, stderr = run_cli("scan", tmp_path, "--out", tmp_path / "r.csv", "--model", model)
    assert code == 2
    assert stderr.count("\n") == 1 and "Traceback" not in stderr


def test_model_with_another_interface_is_refused(run_cli, tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    other = keras.Model(inputs, keras.layers.Dense(3, name="classes")(keras.layers.Flatten()(inputs)))
    other.save(tmp_path / "other.keras")
    code, _, stderr = run_cli("scan", tmp_path, "--out", tmp_path / "r.csv", "--model", tmp_path / "other.keras")
    assert code == 2 and "not an agebatch model" in stderr


def test_python_api_scan_returns_dataframe(tiny_predictor, crops):
    from agebatch import scan

    frame = scan(crops, model=tiny_predictor, detector="none")
    assert len(frame) == 10
    assert list(frame.columns[:12]) == list(results.COLUMNS)
    assert (frame["status"] == "ok").all()


def test_predictor_accepts_pil_and_arrays(tiny_predictor):
    image = noise_image((200, 160))
    array = tiny_predictor.as_array([image])[0]
    from_pil, from_array = tiny_predictor.predict([image, array])
    assert from_pil == from_array
    assert from_pil.gender in ("male", "female")
    assert tiny_predictor.predict([]) == []


def test_rgba_and_palette_crops(run_cli, tmp_path):
    root = tmp_path / "modes"
    root.mkdir()
    noise_image((64, 64)).convert("RGBA").save(root / "rgba.png")
    noise_image((64, 64)).convert("P").save(root / "palette.gif")
    Image.fromarray(np.asarray(noise_image((64, 64)).convert("L"), dtype=np.uint16) * 256).save(root / "g16.png")
    out = tmp_path / "r.csv"
    assert run_cli("scan", root, "--out", out, "--detector", "none")[0] == 0
    assert [r["status"] for r in read_csv(out)] == ["ok", "ok", "ok"]


@pytest.mark.slow
def test_a_model_with_an_age_distribution_gives_an_interval_that_holds_the_estimate(run_cli, crops, tmp_path):
    from agebatch.training.network import build_model

    model = tmp_path / "dist.keras"
    build_model(64, None, alpha=0.35, augment=False, age_head="distribution").save(model)
    out = tmp_path / "r.csv"
    code, _, err = run_cli("scan", crops, "--out", out, "--detector", "none", "--model", model)
    assert code == 0, err
    rows = read_csv(out)
    assert len(rows) == 10
    for row in rows:
        low, age, high = float(row["age_low"]), float(row["age"]), float(row["age_high"])
        assert low <= age <= high and high - low > 1
    plain = tmp_path / "plain.csv"  # a model without a distribution leaves the interval empty
    assert run_cli("scan", crops, "--out", plain, "--detector", "none")[0] == 0
    assert {r["age_low"] for r in read_csv(plain)} == {""}


@pytest.mark.slow
def test_paths_from_stdin_rows_to_stdout_and_a_summary_for_scripts(run_cli, crops, tmp_path, monkeypatch):
    import io
    import json

    names = sorted(p for p in crops.rglob("*.jpg"))[:3]
    for null in (False, True):
        data = (b"\0" if null else b"\n").join(os.fsencode(p) for p in names) + (b"\0" if null else b"\n")
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
        args = ["scan", "-", "--out", "-", "--detector", "none", "--summary-json", tmp_path / "summary.json"]
        code, out, err = run_cli(*args, *(["--null"] if null else []))
        assert code == 0, err
        rows = list(csv.DictReader(io.StringIO(out)))
        assert sorted(r["path"] for r in rows) == sorted(str(p) for p in names)
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["images"] == 3 and summary["errors"] == 0 and summary["out"] == "-"
    assert not list(tmp_path.glob("*.lock")) and not (tmp_path / "-").exists()


def test_a_results_file_records_what_made_it(run_cli, crops, tmp_path, tiny_model_path):
    import json

    from agebatch.modelfile.twin import file_sha256

    out = tmp_path / "r.csv"
    assert run_cli("scan", crops, "--out", out, "--detector", "none")[0] == 0
    meta = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert meta["results"] == "r.csv" and meta["model_sha256"] == file_sha256(tiny_model_path)
    assert meta["agebatch"] and meta["options"]["detector"] == "none"
    assert read_csv(out)[0]["path"]  # the CSV itself stays plain
    code, text, _ = run_cli("models", "--model", tiny_model_path, "--json")
    assert code == 0 and json.loads(text)["sha256"] == meta["model_sha256"]
    code, _, err = run_cli("report", out, "--out", "-", "--format", "json")
    assert code == 0


def test_a_reader_that_goes_away_ends_a_streamed_scan_quietly_with_141(tmp_path):
    import subprocess
    import sys

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):  # enough rows that writing outlasts the reader
        (folder / f"{i:03d}.png").write_bytes(FACE_PHOTO.read_bytes())
    process = subprocess.Popen(
        [sys.executable, "-m", "agebatch", "scan", str(folder), "--out", "-", "--detector", "none"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline().startswith(b"path,face,")
    process.stdout.close()  # like `| head -1`
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141, err
    assert b"Error" not in err and b"unexpected" not in err
