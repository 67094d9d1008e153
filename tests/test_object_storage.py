"""Photos and results in object storage, against a real S3 API served on 127.0.0.1 (moto's server)
through the real clients (s3fs, botocore): listing, reading, an object gone mid-scan, a dataset
written and resumed, the report over it."""

from __future__ import annotations

import logging

import pytest

from agebatch.common import urls
from agebatch.reporting.aggregate import build_report
from agebatch.scanning.options import OutputOptions, ScanOptions
from agebatch.scanning.pipeline import Pipeline, pending_work
from agebatch.scanning.scanner import scan_to_file
from tests.imagegen import jpeg_bytes, noise_image

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
OPTIONS = ScanOptions(detector="none", batch_size=8)
BUCKET = "photos"


@pytest.fixture(scope="module")
def s3():
    """A local S3 server for the module; the clients find it through the standard AWS_* variables."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }.items():
        patch.setenv(name, value)
    patch.delenv("AWS_PROFILE", raising=False)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs, _ = urls.filesystem(f"s3://{BUCKET}")
    fs.mkdir(BUCKET)
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    patch.undo()
    server.stop()


@pytest.fixture()
def prefix(s3, request):
    """A fresh prefix of seven photos (one nested, one broken) and a note that is not a photo."""
    root = f"{BUCKET}/{request.node.name[:40]}"
    for i in range(5):
        s3.pipe_file(f"{root}/in/f{i}.jpg", jpeg_bytes(noise_image((64, 64), seed=i)))
    s3.pipe_file(f"{root}/in/deeper/f5.jpg", jpeg_bytes(noise_image((64, 64), seed=5)))
    s3.pipe_file(f"{root}/in/broken.jpg", b"\xff\xd8\xff not really")
    s3.pipe_file(f"{root}/in/notes.txt", b"not a photo")
    return f"s3://{root}"


def test_a_bucket_prefix_scans_into_a_dataset_there_and_resumes(s3, prefix, tiny_predictor):
    out = f"{prefix}/results/"
    summary = scan_to_file([f"{prefix}/in"], OutputOptions(out), tiny_predictor, OPTIONS)
    assert summary.images == 7 and summary.errors == 1 and summary.faces == 6
    parts = [p for p in s3.ls(out.removeprefix("s3://"), detail=False) if p.endswith(".parquet")]
    assert len(parts) == 1 and s3.exists(f"{prefix.removeprefix('s3://')}/results.meta.json")

    report = build_report([out])["overall"]
    assert report["images"] == 7 and report["faces"] == 6 and report["errors"] == 1

    s3.pipe_file(f"{prefix.removeprefix('s3://')}/in/new.jpg", jpeg_bytes(noise_image((64, 64), seed=9)))
    resumed = scan_to_file([f"{prefix}/in"], OutputOptions(out, resume=True), tiny_predictor, OPTIONS)
    assert resumed.images == 1 and resumed.skipped == 7
    assert build_report([out])["overall"]["images"] == 8


def test_rows_name_the_objects_by_url_and_match_a_local_scan(s3, prefix, tiny_predictor, tmp_path):
    local = tmp_path / "in"
    s3.get(f"{prefix.removeprefix('s3://')}/in/", str(local), recursive=True)
    scan_to_file([local], tmp_path / "local.csv", tiny_predictor, OPTIONS)
    scan_to_file([f"{prefix}/in"], tmp_path / "remote.csv", tiny_predictor, OPTIONS)
    import csv

    def rows(path, root):
        with open(path, newline="") as handle:
            found = {r["path"].removeprefix(root): r for r in csv.DictReader(handle)}
        return found

    remote, here = rows(tmp_path / "remote.csv", f"{prefix}/in"), rows(tmp_path / "local.csv", str(local))
    assert sorted(remote) == sorted(here) and "/deeper/f5.jpg" in remote
    for name, row in remote.items():
        assert (row["status"], row["age"], row["error"]) == (
            here[name]["status"],
            here[name]["age"],
            here[name]["error"],
        )
        assert row["file_size"] == here[name]["file_size"] and float(row["file_mtime"]) > 0


def test_an_object_deleted_after_listing_is_an_error_row(s3, prefix, tiny_predictor):
    works = list(pending_work([f"{prefix}/in"], OPTIONS))
    victim = next(w for w in works if w.path.endswith("/f3.jpg"))
    s3.rm(victim.path.removeprefix("s3://"))
    pipeline = Pipeline(OPTIONS, tiny_predictor.image_size)
    assert pipeline.process(victim).error == "file vanished before it could be read"
    assert pipeline.process(next(w for w in works if w.path.endswith("/f2.jpg"))).error is None


def test_excludes_and_no_recursion_hold_for_prefixes(s3, prefix):
    options = ScanOptions(detector="none", exclude=("broken*",), recursive=False)
    names = [w.path.rsplit("/", 1)[-1] for w in pending_work([f"{prefix}/in"], options)]
    assert names == ["f0.jpg", "f1.jpg", "f2.jpg", "f3.jpg", "f4.jpg"]


def test_a_prefix_that_names_nothing_stops_the_run_before_any_work(s3, run_cli, tmp_path):
    code, _, err = run_cli("scan", f"s3://{BUCKET}/no/such/prefix", "--out", tmp_path / "r.csv", "--detector", "none")
    assert code == 2 and "s3://photos/no/such/prefix" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_results_go_to_object_storage_only_as_a_dataset(s3, prefix, run_cli):
    code, _, err = run_cli("scan", f"{prefix}/in", "--out", f"{prefix}/r.csv", "--detector", "none")
    assert code == 2 and "end --out with /" in err


def test_a_mistyped_bucket_is_refused_not_made(s3, prefix, tiny_predictor):
    from agebatch import results

    with pytest.raises(results.OutputError, match="no such bucket: typo-bucket"):
        scan_to_file([f"{prefix}/in"], OutputOptions("s3://typo-bucket/results/"), tiny_predictor, OPTIONS)
    assert not s3.exists("typo-bucket")


def test_an_empty_object_is_an_empty_file(s3, prefix, tiny_predictor):
    s3.pipe_file(f"{prefix.removeprefix('s3://')}/empty/zero.jpg", b"")
    works = list(pending_work([f"{prefix}/empty"], OPTIONS))
    assert Pipeline(OPTIONS, tiny_predictor.image_size).process(works[0]).error == "empty file"


def test_an_unknown_kind_of_url_is_a_one_line_error():
    with pytest.raises(urls.StorageUnavailable, match="nosuch://"):
        urls.filesystem("nosuch://bucket/x")
