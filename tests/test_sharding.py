"""--shard I/N and merge: shards partition the images stably, and merged shards equal one full scan."""

from __future__ import annotations

import csv
import shutil

import pytest

from agebatch import results
from agebatch.scanning.options import ScanOptions
from agebatch.scanning.scanner import scan_to_file
from agebatch.scanning.sharding import Shard, parse_shard, shard_of
from tests.imagegen import noise_image


def test_each_path_is_in_exactly_one_shard_and_stays_there():
    paths = [f"photos/{i // 100}/IMG_{i:05d}.jpg" for i in range(2000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[shard.holds(p) for shard in shards] for p in paths]
    assert all(row.count(True) == 1 for row in owners)
    sizes = [sum(row[i] for row in owners) for i in range(4)]
    assert min(sizes) > 400  # about 500 each
    before = {p: shard_of(p, 4) for p in paths}
    grown = [f"photos/new/{i}.jpg" for i in range(500)] + paths  # files added, listed first
    assert all(shard_of(p, 4) == before[p] for p in grown if p in before)


def test_shard_arguments_and_scheduler_variables():
    assert parse_shard("1/4") == Shard(1, 4)
    assert parse_shard("auto/8", {"JOB_COMPLETION_INDEX": "3"}) == Shard(3, 8)
    assert parse_shard("auto/8", {"SLURM_ARRAY_TASK_ID": " 7 "}) == Shard(7, 8)
    for text, environ, message in [
        ("4/4", {}, "from 0 to 3"),
        ("x/2", {}, "I/N or auto/N"),
        ("auto/2", {}, "JOB_COMPLETION_INDEX"),
        ("auto/2", {"SLURM_ARRAY_TASK_ID": "1-3"}, "not a whole number"),
        ("0/0", {}, "at least 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_shard(text, environ)


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "crops"
    (root / "sub").mkdir(parents=True)
    for i in range(14):
        noise_image((64, 64), seed=i).save(root / ("sub" if i % 3 else ".") / f"f{i:02d}.jpg")
    (root / "broken.jpg").write_bytes(b"not an image")
    return root


def _rows(path):
    with open(path, newline="") as handle:
        return sorted(csv.DictReader(handle), key=lambda r: (r["path"], r["face"]))


def test_merged_shards_equal_a_full_scan_row_for_row(folder, tmp_path, tiny_predictor):
    options = {"detector": "none", "batch_size": 4}
    scan_to_file([folder], tmp_path / "full.csv", tiny_predictor, ScanOptions(**options))
    parts = [tmp_path / f"part{i}.csv" for i in range(3)]
    for i, part in enumerate(parts):
        scan_to_file([folder], part, tiny_predictor, ScanOptions(**options, shard=Shard(i, 3)))
    summary = results.merge(parts, tmp_path / "merged.csv")
    assert summary.images == 15 and summary.parts == 3
    assert _rows(tmp_path / "merged.csv") == _rows(tmp_path / "full.csv")
    in_parts = [{r["path"] for r in _rows(part)} for part in parts]
    assert sum(len(p) for p in in_parts) == 15 and len(set().union(*in_parts)) == 15


def test_merge_refuses_overlaps_other_columns_torn_parts_and_its_own_inputs(folder, tmp_path, tiny_predictor):
    part = tmp_path / "part.csv"
    scan_to_file([folder], part, tiny_predictor, ScanOptions(detector="none"))
    twin = tmp_path / "twin.csv"
    shutil.copy(part, twin)
    out = tmp_path / "out.csv"
    with pytest.raises(results.OutputError, match="overlap"):
        results.merge([part, twin], out)
    jsonl = tmp_path / "part.jsonl"
    scan_to_file([folder / "sub"], jsonl, tiny_predictor, ScanOptions(detector="none"))  # .jsonl: JSON Lines
    with pytest.raises(results.OutputError, match="other columns or another format"):
        results.merge([part, jsonl], out)
    torn = tmp_path / "torn.csv"
    torn.write_bytes(part.read_bytes()[:-7])
    with pytest.raises(results.OutputError, match="torn write"):
        results.merge([torn], out)
    with pytest.raises(results.OutputError, match="also an input"):
        results.merge([part], part)
    assert not out.exists()


@pytest.mark.slow
def test_shard_and_merge_on_the_command_line(run_cli, folder, tmp_path, monkeypatch):
    parts = []
    for index in range(2):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        part = tmp_path / f"part{index}.csv"
        code, _, err = run_cli("scan", folder, "--out", part, "--detector", "none", "--shard", "auto/2")
        assert code == 0, err
        parts.append(part)
    code, _, err = run_cli("merge", *parts, "--out", tmp_path / "all.csv")
    assert code == 0, err
    assert len({r["path"] for r in _rows(tmp_path / "all.csv")}) == 15
    code, _, err = run_cli("merge", parts[0], parts[0], "--out", tmp_path / "twice.csv")
    assert code == 2 and "overlap" in err
    code, _, err = run_cli("scan", folder, "--out", tmp_path / "x.csv", "--shard", "2/2")
    assert code == 2 and "from 0 to 1" in err
