"""Videos in a scan: generated clips (bundled portraits gliding over a noisy background, a few seconds
each) scanned with the default detector: one row per person, tracked across the sampled frames."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from agebatch.scanning import tracking, videos
from agebatch.scanning.facebox import Face
from agebatch.scanning.options import OutputOptions, ScanOptions
from agebatch.scanning.scanner import scan_to_file
from tests.imagegen import noise_image, portrait, write_video

pytest.importorskip("av")
OPTIONS = ScanOptions(batch_size=8)


def _rows(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _scan(tmp_path, tiny_predictor, video, options=OPTIONS) -> list[dict]:
    out = tmp_path / f"{video.stem}.csv"
    scan_to_file([video], out, tiny_predictor, options)
    return _rows(out)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The module's videos, made once."""
    root = tmp_path_factory.mktemp("clips")
    a, b, c = portrait("10130"), portrait("11052"), portrait("16520")
    return {
        # a on screen all along, b from 1 s, apart from each other
        "two": write_video(
            root / "two.mp4", [(a, 0, 3, (10, 60), (150, 60), 120), (b, 1, 3, (300, 40), (330, 60), 110)]
        ),
        # a leaves at 1 s; 2 s later c appears where a was
        "swap": write_video(
            root / "swap.mp4", [(a, 0, 1, (150, 70), (160, 70), 120), (c, 3, 4, (150, 70), (160, 70), 120)], seconds=4
        ),
        # a and b cross: a left to right above, b right to left below, their boxes overlapping midway
        "cross": write_video(
            root / "cross.mp4", [(a, 0, 3, (0, 20), (360, 40), 110), (b, 0, 3, (360, 110), (0, 130), 110)]
        ),
        # stored on its side, displayed upright (as a phone held upright records)
        "rotated": write_video(
            root / "rotated.mp4", [(a, 0, 2, (60, 100), (70, 120), 140)], size=(270, 480), seconds=2, rotation=90
        ),
        "matroska": write_video(root / "long.mkv", [(a, 0, 6, (40, 60), (300, 60), 120)], seconds=6, codec="mpeg4"),
    }


def test_two_people_are_two_rows_with_the_times_they_were_seen(clips, tmp_path, tiny_predictor):
    rows = _scan(tmp_path, tiny_predictor, clips["two"])
    assert [r["face"] for r in rows] == ["0", "1"] and {r["faces"] for r in rows} == {"2"}
    first, second = rows
    assert float(first["t_first"]) == 0.0 and float(first["t_last"]) >= 2.5
    assert 1.0 <= float(second["t_first"]) <= 1.5 and float(second["t_last"]) >= 2.5
    assert int(first["frames"]) >= 5 and int(second["frames"]) >= 3
    assert float(second["x"]) > 250  # each row's box is its own person's
    assert all(r["status"] == "ok" and r["age"] and r["gender"] for r in rows)


def test_a_face_that_leaves_and_a_new_one_in_its_place_later_are_two_people(clips, tmp_path, tiny_predictor):
    rows = _scan(tmp_path, tiny_predictor, clips["swap"])
    assert len(rows) == 2
    assert float(rows[0]["t_last"]) < 1.0 and float(rows[1]["t_first"]) >= 3.0


def test_two_faces_that_cross_stay_two_people(clips, tmp_path, tiny_predictor):
    rows = _scan(tmp_path, tiny_predictor, clips["cross"])
    assert len(rows) == 2
    for row in rows:  # each followed through the crossing, from start to end
        assert float(row["t_first"]) <= 0.5 and float(row["t_last"]) >= 2.5


def test_frames_rows_give_each_face_of_each_sampled_frame_and_read_back_as_faces(clips, tmp_path, tiny_predictor):
    from agebatch import results
    from agebatch.reporting.aggregate import build_report

    options = ScanOptions(batch_size=8, video_rows="frames")
    rows = _scan(tmp_path, tiny_predictor, clips["two"], options)
    assert len(rows) >= 8 and all(r["t_first"] == r["t_last"] and r["frames"] == "" for r in rows)
    assert [r["face"] for r in rows] == [str(i) for i in range(len(rows))]  # numbered like a photo's faces
    assert {r["faces"] for r in rows} == {str(len(rows))}
    times = sorted({float(r["t_first"]) for r in rows})
    assert times[:3] == [0.0, 0.5, 1.0]  # two sampled frames a second
    overall = build_report([tmp_path / "two.csv"])["overall"]
    assert (overall["images"], overall["faces"], overall["people_in_videos"]) == (1, len(rows), 0)
    results.merge([tmp_path / "two.csv"], tmp_path / "merged.csv")  # one image, not "listed twice"
    resumed = scan_to_file(
        [clips["two"]], OutputOptions(str(tmp_path / "two.csv"), resume=True), tiny_predictor, options
    )
    assert resumed.skipped == 1 and len(_rows(tmp_path / "two.csv")) == len(rows)


def test_a_photo_named_like_a_video_is_scanned_as_the_photo_it_is(tmp_path, tiny_predictor):
    fake = tmp_path / "holiday.mp4"
    portrait("10130").save(fake, format="JPEG")
    rows = _scan(tmp_path, tiny_predictor, fake)
    assert len(rows) == 1 and rows[0]["status"] == "ok" and rows[0]["t_first"] == ""


def test_a_rotated_stream_is_scanned_upright(clips, tmp_path, tiny_predictor):
    with videos.VideoReader(str(clips["rotated"])) as reader:
        frame = next(reader.sampled(2.0))
    assert frame.image.size == (270, 480)  # stored 480x270, displayed upright a quarter turn later
    rows = _scan(tmp_path, tiny_predictor, clips["rotated"])
    assert len(rows) == 1 and rows[0]["status"] == "ok"


def test_a_truncated_video_keeps_what_decoded_and_says_so(clips, tmp_path, tiny_predictor):
    data = clips["matroska"].read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 4 // 5])  # the first frame (noise, a keyframe) is most of the file
    rows = _scan(tmp_path, tiny_predictor, cut)
    assert len(rows) == 1 and rows[0]["status"] == "ok"
    assert float(rows[0]["t_last"]) < 5.0 and "cut short" in rows[0]["error"]  # what decoded, and a note
    whole = _scan(tmp_path, tiny_predictor, clips["matroska"])
    assert float(whole[0]["t_last"]) >= 5.0 and whole[0]["error"] == ""


def test_videos_that_cannot_be_used_are_error_rows_and_the_scan_goes_on(clips, tmp_path, tiny_predictor):
    import av

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mov").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x07" * 500)
    head = clips["two"].read_bytes()
    (folder / "headless.mp4").write_bytes(head[: len(head) // 3])  # the index (moov) is at the end: nothing
    with av.open(str(folder / "sound.mkv"), "w") as container:  # sound only
        stream = container.add_stream("mp2", rate=44100, layout="mono")
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.int16), format="s16", layout="mono")
        silence.sample_rate = 44100
        for packet in [*stream.encode(silence), *stream.encode(None)]:
            container.mux(packet)
    noise_image((64, 64)).save(folder / "photo.jpg")
    out = tmp_path / "mixed.csv"
    summary = scan_to_file([folder], out, tiny_predictor, OPTIONS)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in _rows(out)}
    assert summary.images == 5 and set(by_name) == {
        "empty.mp4",
        "garbage.mov",
        "headless.mp4",
        "sound.mkv",
        "photo.jpg",
    }
    for name in ("empty.mp4", "garbage.mov", "headless.mp4", "sound.mkv"):
        assert by_name[name]["status"] == "error" and by_name[name]["error"], name
        assert "mixed" not in by_name[name]["error"] and "Errno" not in by_name[name]["error"]  # FFmpeg's words only
    assert by_name["empty.mp4"]["error"] == "empty file" and by_name["sound.mkv"]["error"] == "no video stream"
    assert by_name["photo.jpg"]["status"] in ("ok", "no_face")


def test_a_video_interrupted_mid_way_is_scanned_again_by_resume(clips, tmp_path, tiny_predictor):
    folder = tmp_path / "folder"
    folder.mkdir()
    noise_image((64, 64)).save(folder / "a_photo.jpg")
    (folder / "b_video.mkv").write_bytes(clips["matroska"].read_bytes())
    out = tmp_path / "r.csv"

    def interrupt_after_the_photo(summary):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_to_file([folder], OutputOptions(str(out)), tiny_predictor, OPTIONS, progress=interrupt_after_the_photo)
    assert [r["path"].rsplit("/", 1)[-1] for r in _rows(out)] == ["a_photo.jpg"]
    resumed = scan_to_file([folder], OutputOptions(str(out), resume=True), tiny_predictor, OPTIONS)
    assert resumed.images == 1 and resumed.skipped == 1
    assert [r["path"].rsplit("/", 1)[-1] for r in _rows(out)] == ["a_photo.jpg", "b_video.mkv"]


def test_the_tracker_follows_a_mover_and_lets_a_one_frame_doubt_go():
    tracker = tracking.Tracker(max_gap=1.5)
    crop = noise_image((8, 8))
    for step in range(4):
        tracker.update(step * 0.5, [Face(10 + 60 * step, 10, 50, 50, 0.9)], [crop])  # fast: no overlap
    tracker.update(2.0, [Face(400, 300, 50, 50, 0.65)], [crop])  # a doubtful face, once
    ended = tracker.finish()
    assert [t.frames for t in ended] == [4, 1]
    assert [t.kept for t in ended] == [True, False]


def test_without_pyav_a_video_is_an_error_row_naming_the_extra(clips, tmp_path, tiny_predictor, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    rows = _scan(tmp_path, tiny_predictor, clips["two"])
    assert rows[0]["status"] == "error" and "pip install 'agebatch[video]'" in rows[0]["error"]


def test_the_report_counts_the_people_seen_in_videos(clips, tmp_path, tiny_predictor):
    from agebatch.reporting.aggregate import build_report, write_report

    out = tmp_path / "two.csv"
    scan_to_file([clips["two"], clips["swap"]], out, tiny_predictor, OPTIONS)
    overall = build_report([out])["overall"]
    assert (overall["videos"], overall["people_in_videos"], overall["faces"]) == (2, 4, 4)
    assert 1.0 < overall["seconds_seen_per_person"] < 3.0
    page = write_report(build_report([out]), tmp_path / "report.html").read_text()
    assert "people seen in 2 video(s)" in page and "faces found in photos" in page


def test_a_face_back_after_a_long_gap_is_a_new_track_whatever_the_frame_times():
    crop = noise_image((8, 8))
    face = Face(100, 100, 60, 60, 0.9)
    tracker = tracking.Tracker(max_gap=1.5)
    ended = []
    for seconds in (0.0, 0.5, 2.5, 3.0, 5e6):  # unseen for three sampled frames, then a jump in time
        ended += tracker.update(seconds, [face], [crop])
    ended += tracker.finish()
    assert [(t.t_first, t.t_last, t.frames) for t in ended] == [(0.0, 0.5, 2), (2.5, 3.0, 2), (5e6, 5e6, 1)]


def test_only_the_first_seconds_are_read_when_asked(clips):
    with videos.VideoReader(str(clips["two"])) as reader:
        times = [frame.seconds for frame in reader.sampled(2.0, until=1.0)]
        assert times == [0.0, 0.5, 1.0] and reader.cut_short == "only the first 1 s scanned"
