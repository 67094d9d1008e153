"""Results as Parquet: one file or a dataset of parts, with the CSV writer's promises (each image once,
nothing lost to a refused or interrupted run), and the report reading them as it reads CSV."""

from __future__ import annotations

import csv
import json

import pytest

from agebatch import results
from agebatch.reporting.aggregate import build_report
from agebatch.scanning.options import OutputOptions, ScanOptions
from agebatch.scanning.scanner import scan_to_file
from agebatch.scanning.sharding import Shard
from tests.imagegen import crops_folder, noise_image

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
OPTIONS = ScanOptions(detector="none", batch_size=8)


@pytest.fixture()
def folder(tmp_path):
    return crops_folder(tmp_path / "crops", 6)


def _csv_rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: (r["path"], r["face"]))


def _parquet_rows(location) -> list[dict]:
    import pyarrow.dataset as ds

    table = ds.dataset(str(location), format="parquet").to_table()
    return sorted(table.to_pylist(), key=lambda r: (r["path"], "" if r["face"] is None else str(r["face"])))


def _as_csv_cell(value) -> str:
    return "" if value is None else str(value)


def test_a_parquet_file_holds_the_csv_rows_with_numbers_as_numbers(folder, tmp_path, tiny_predictor):
    scan_to_file([folder], tmp_path / "r.csv", tiny_predictor, OPTIONS)
    summary = scan_to_file([folder], tmp_path / "r.parquet", tiny_predictor, OPTIONS)
    assert summary.images == 7 and summary.errors == 1
    schema = pq.read_schema(tmp_path / "r.parquet")
    assert schema.names == list(results.ALL_COLUMNS)
    assert schema.field("age").type == pa.float64() and schema.field("face").type == pa.int32()
    assert schema.field("file_size").type == pa.int64() and schema.field("path").type == pa.string()
    expected, got = _csv_rows(tmp_path / "r.csv"), _parquet_rows(tmp_path / "r.parquet")
    assert len(got) == len(expected) == 7
    for mine, theirs in zip(got, expected):
        for column in ("path", "face", "status", "error", "gender", "faces", "file_size"):
            assert _as_csv_cell(mine[column]) == theirs[column], column
        if theirs["age"]:
            assert mine["age"] == pytest.approx(float(theirs["age"]))
    assert json.loads(results.metadata_path(tmp_path / "r.parquet").read_text())["results"] == "r.parquet"


def test_resume_on_a_parquet_file_keeps_its_rows_and_adds_only_new_images(folder, tmp_path, tiny_predictor):
    out = tmp_path / "r.parquet"
    scan_to_file([folder], out, tiny_predictor, OPTIONS)
    noise_image((64, 64), seed=9).save(folder / "new.jpg")
    summary = scan_to_file([folder], OutputOptions(str(out), resume=True), tiny_predictor, OPTIONS)
    assert summary.images == 1 and summary.skipped == 7
    paths = [r["path"] for r in _parquet_rows(out)]
    assert len(paths) == len(set(paths)) == 8


def test_an_interrupted_run_never_replaces_an_earlier_parquet_file(tmp_path):
    out = tmp_path / "r.parquet"
    with results.open_writer(out, "parquet") as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        writer.commit()
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt), results.open_writer(out, "parquet") as writer:
        writer.write_image([{"path": "b.jpg", "status": "no_face", "faces": 0}])
        raise KeyboardInterrupt
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.parquet"]  # no temporary file left


def test_an_interrupted_first_run_keeps_its_rows_for_resume(tmp_path):
    out = tmp_path / "r.parquet"
    with pytest.raises(KeyboardInterrupt), results.open_writer(out, "parquet") as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        raise KeyboardInterrupt
    assert [r["path"] for r in pq.read_table(out).to_pylist()] == ["a.jpg"]


def test_a_file_named_parquet_that_is_not_ours_is_kept(tmp_path):
    out = tmp_path / "r.parquet"
    out.write_text("my notes")
    with pytest.raises(results.OutputError, match="not a Parquet results file"):
        with results.open_writer(out, "parquet"):
            pass
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(results.OutputError, match="without agebatch's columns"):
        with results.open_writer(tmp_path / "other.parquet", "parquet", resume=True):
            pass
    assert out.read_text() == "my notes"


def test_a_folder_is_a_dataset_of_parts_that_resume_adds_to(folder, tmp_path, tiny_predictor):
    out = tmp_path / "ds"
    summary = scan_to_file([folder], OutputOptions(f"{out}/"), tiny_predictor, OPTIONS)
    assert summary.images == 7
    parts = sorted(p.name for p in out.iterdir())
    assert len(parts) == 1 and parts[0].startswith("part-") and (tmp_path / "ds.meta.json").is_file()
    with pytest.raises(results.OutputError, match="already holds"):
        scan_to_file([folder], OutputOptions(f"{out}/"), tiny_predictor, OPTIONS)
    noise_image((64, 64), seed=9).save(folder / "new.jpg")
    resumed = scan_to_file([folder], OutputOptions(str(out), resume=True), tiny_predictor, OPTIONS)
    assert resumed.images == 1 and resumed.skipped == 7 and len(list(out.iterdir())) == 2
    paths = [r["path"] for r in _parquet_rows(out)]
    assert len(paths) == len(set(paths)) == 8


def test_a_folder_holding_other_files_is_not_made_a_dataset(folder, tmp_path, tiny_predictor):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(results.OutputError, match="holds other files"):
        scan_to_file([folder], OutputOptions(f"{notes}/"), tiny_predictor, OPTIONS)
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]
    with pytest.raises(results.OutputError, match="folder"):
        results.format_for(f"{tmp_path}/ds/", "csv")


def test_a_killed_writers_temporary_part_is_never_read_and_is_removed(folder, tmp_path, tiny_predictor):
    out = tmp_path / "ds"
    scan_to_file([folder], OutputOptions(f"{out}/"), tiny_predictor, OPTIONS)
    half = out / ".part-20260101T000000Z-abcdef-00001.parquet.x1y2z3w4.tmp"
    half.write_bytes(b"PAR1 half a part")
    report = build_report([f"{out}/"])
    assert report["overall"]["images"] == 7  # the half part is not counted, nor does it break the read
    scan_to_file([folder], OutputOptions(str(out), resume=True), tiny_predictor, OPTIONS)
    assert not half.exists()


def test_an_interrupted_dataset_run_keeps_its_buffered_images_as_a_part(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt), results.open_writer(f"{out}/", "parquet") as writer:
        writer.write_image([{"path": "a.jpg", "status": "no_face", "faces": 0}])
        raise KeyboardInterrupt
    with results.open_writer(f"{out}/", "parquet", resume=True) as writer:
        assert writer.is_done(results.FileKey("a.jpg", -1, 0.0))


def test_shards_write_their_parts_into_one_dataset(folder, tmp_path, tiny_predictor):
    out = f"{tmp_path / 'ds'}/"
    for index in range(3):
        options = ScanOptions(detector="none", batch_size=8, shard=Shard(index, 3))
        scan_to_file([folder], OutputOptions(out), tiny_predictor, options)
    paths = [r["path"] for r in _parquet_rows(out)]
    assert len(paths) == len(set(paths)) == 7
    records = sorted(p.name for p in tmp_path.glob("ds.*.meta.json"))
    assert records == [f"ds.shard{i}of3.meta.json" for i in range(3)]
    with pytest.raises(results.OutputError, match="shard1of3"):  # a shard run again without --resume
        scan_to_file([folder], OutputOptions(out), tiny_predictor, ScanOptions(detector="none", shard=Shard(1, 3)))
    with pytest.raises(results.OutputError, match="another scan's parts"):  # a split of another size beside them
        scan_to_file([folder], OutputOptions(out), tiny_predictor, ScanOptions(detector="none", shard=Shard(0, 2)))
    whole = f"{tmp_path / 'whole'}/"
    scan_to_file([folder], OutputOptions(whole), tiny_predictor, OPTIONS)
    with pytest.raises(results.OutputError, match="another scan's parts"):  # a shard over a whole scan
        scan_to_file([folder], OutputOptions(whole), tiny_predictor, ScanOptions(detector="none", shard=Shard(0, 3)))
    assert len(_parquet_rows(whole)) == 7


def test_the_report_reads_parquet_as_it_reads_csv(folder, tmp_path, tiny_predictor):
    scan_to_file([folder], tmp_path / "r.csv", tiny_predictor, OPTIONS)
    scan_to_file([folder], tmp_path / "r.parquet", tiny_predictor, OPTIONS)
    scan_to_file([folder], OutputOptions(f"{tmp_path / 'ds'}/"), tiny_predictor, OPTIONS)
    reports = [build_report([tmp_path / name])["overall"] for name in ("r.csv", "r.parquet", "ds")]
    for report in reports:
        report.pop("name", None)
    assert reports[0]["images"] == 7 and reports[0]["errors"] == 1
    assert reports[1] == reports[0] and reports[2] == reports[0]


def test_parquet_cannot_go_to_stdout(run_cli, folder):
    code, _, err = run_cli("scan", folder, "--out", "-", "--format", "parquet", "--detector", "none")
    assert code == 2 and "Parquet" in err


def test_merge_puts_parquet_shards_together_and_refuses_overlaps(folder, tmp_path, tiny_predictor):
    for index in range(2):
        options = ScanOptions(detector="none", batch_size=8, shard=Shard(index, 2))
        scan_to_file([folder], tmp_path / f"s{index}.parquet", tiny_predictor, options)
    scan_to_file([folder], OutputOptions(f"{tmp_path / 'ds'}/"), tiny_predictor, OPTIONS)
    summary = results.merge([tmp_path / "s0.parquet", tmp_path / "s1.parquet"], tmp_path / "all.parquet")
    assert summary.images == 7 and summary.bytes == 7  # seven rows: six faces and one error
    merged = sorted(r["path"] for r in pq.read_table(tmp_path / "all.parquet").to_pylist())
    assert merged == sorted(r["path"] for r in _parquet_rows(tmp_path / "ds"))
    assert "merged_from" in json.loads(results.metadata_path(tmp_path / "all.parquet").read_text())
    with pytest.raises(results.OutputError, match="overlap"):
        results.merge([tmp_path / "s0.parquet", f"{tmp_path / 'ds'}/"], tmp_path / "again.parquet")
    scan_to_file([folder], tmp_path / "r.csv", tiny_predictor, OPTIONS)
    with pytest.raises(results.OutputError, match="mix Parquet"):
        results.merge([tmp_path / "s0.parquet", tmp_path / "r.csv"], tmp_path / "again.parquet")
    with pytest.raises(results.OutputError, match=".parquet file"):
        results.merge([tmp_path / "s0.parquet"], tmp_path / "again.csv")
    with pytest.raises(results.OutputError, match="inside a dataset being merged"):
        results.merge([f"{tmp_path / 'ds'}/"], tmp_path / "ds" / "part-all.parquet")
    assert not (tmp_path / "again.parquet").exists() and not (tmp_path / "again.csv").exists()
    assert not (tmp_path / "ds" / "part-all.parquet").exists()


def test_damaged_parquet_parts_are_one_line_refusals(folder, tmp_path, tiny_predictor, capfd):
    scan_to_file([folder], OutputOptions(f"{tmp_path / 'ds'}/"), tiny_predictor, OPTIONS)
    part = next((tmp_path / "ds").glob("part-*.parquet"))
    (tmp_path / "ds" / "part-cut-00000.parquet").write_bytes(part.read_bytes()[:300])
    with pytest.raises(results.OutputError, match="cannot read"):
        results.merge([f"{tmp_path / 'ds'}/"], tmp_path / "all.parquet")
    typed = tmp_path / "typed.parquet"  # our column names, but an age in words
    columns = {c: pa.array([None], results.parquet.arrow_type(c)) for c in results.ALL_COLUMNS}
    pq.write_table(pa.table({**columns, "age": pa.array(["old"])}), typed)
    with pytest.raises(results.OutputError, match="other columns"):
        scan_to_file([folder], OutputOptions(str(typed), resume=True), tiny_predictor, OPTIONS)
    import gc

    gc.collect()
    assert "Traceback" not in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_a_shard_leaves_the_other_shards_temporary_parts_alone(folder, tmp_path, tiny_predictor):
    out = tmp_path / "ds"
    options = ScanOptions(detector="none", batch_size=8, shard=Shard(1, 2))
    scan_to_file([folder], OutputOptions(f"{out}/"), tiny_predictor, options)
    theirs = out / ".part-shard0of2-20260101T000000Z-abcdef-00000.parquet.Ab3dEf9h.tmp"
    mine = out / ".part-shard1of2-20260101T000000Z-abcdef-00000.parquet.Zz3dEf9h.tmp"
    theirs.write_bytes(b"being written")
    mine.write_bytes(b"left by a killed run")
    scan_to_file([folder], OutputOptions(f"{out}/", resume=True), tiny_predictor, options)
    assert theirs.exists() and not mine.exists()


def test_the_report_reads_parquet_that_pandas_wrote(tmp_path):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "path": ["a/x.jpg", "a/x.jpg", "b/y.jpg"],
            "face": pd.array([0, 1, None], dtype="Int32"),
            "age": [30.5, 41.0, None],
            "gender": ["male", "female", None],
            "gender_prob": [0.9, 0.8, None],
            "status": ["ok", "ok", "no_face"],
            "error": [None, None, None],
        }
    )
    frame.to_parquet(tmp_path / "filtered.parquet", index=False)
    report = build_report([tmp_path / "filtered.parquet"])["overall"]
    assert (report["images"], report["faces"], report["images_without_face"]) == (2, 2, 1)
