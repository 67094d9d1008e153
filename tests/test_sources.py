"""Labelled sources: the three kinds, age bands and numbers, bad rows, splits and balancing."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
import pytest

from agebatch.training import sources, splits
from tests.imagegen import save_jpeg, utk_folder


@pytest.mark.parametrize(
    "text, expected",
    [
        ("34", (34.0, 34, 34)),
        ("34.5", (34.5, 34, 34)),
        (" 20-29 ", (math.nan, 20, 29)),
        ("70+", (math.nan, 70, 100)),
        ("more than 70", (math.nan, 70, 100)),
        ("0-2", (math.nan, 0, 2)),
        ("110", (110.0, 100, 100)),  # the top year bin holds 100 and over
    ],
)
def test_ages_read_as_numbers_or_bands(text, expected):
    label = sources.parse_age(text)
    assert (label.low, label.high) == expected[1:]
    assert (math.isnan(label.age) and math.isnan(expected[0])) or label.age == expected[0]


@pytest.mark.parametrize("text", ["", "abc", "-3", "29-20", "200", "nan", "1e9"])
def test_unreadable_ages_are_none(text):
    assert sources.parse_age(text) is None


def test_genders_in_the_usual_spellings():
    assert [sources.parse_gender(g) for g in ("Male", "f", " FEMALE ", "0", "1", "x", "")] == [
        0,
        1,
        1,
        0,
        1,
        None,
        None,
    ]


def _csv_source(root, rows, header="file,age,gender,race"):
    root.mkdir(parents=True, exist_ok=True)
    for name in {row.split(",")[0] for row in rows}:
        if name and not name.startswith("missing"):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            save_jpeg(root / name)
    (root / "labels.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_a_labels_csv_with_bands_exact_ages_and_bad_rows(tmp_path, caplog):
    root = _csv_source(
        tmp_path / "ff",
        [
            "train/1.jpg,20-29,Male,East Asian",
            "train/2.jpg,45,female,Latino_Hispanic",
            "train/3.jpg,old,Male,White",  # unreadable age
            "train/4.jpg,30-39,robot,White",  # unreadable gender
            "missing.jpg,30-39,Male,White",  # no such image
        ],
    )
    with caplog.at_level(logging.WARNING):
        frame, skipped = sources.read_source(root)
    assert skipped == 3
    assert "skipped 3 row(s)" in caplog.text and "lines 4, 5, 6" in caplog.text
    assert list(frame["file"]) == ["train/1.jpg", "train/2.jpg"]
    assert list(frame["age_low"]) == [20, 45] and list(frame["age_high"]) == [29, 45]
    assert math.isnan(frame["age"][0]) and frame["age"][1] == 45
    assert list(frame["race"]) == ["east asian", "latino hispanic"]
    assert set(frame["source"]) == {"ff"}
    assert all(p.startswith("/") for p in frame["path"])


def test_a_hand_written_csv_with_path_and_group_columns(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    save_jpeg(folder / "a.jpg")
    save_jpeg(folder / "b.jpg")
    (folder / "people.csv").write_text("path,age,gender,group\na.jpg,7,m,\nb.jpg,60-69,F,x\n")
    frame, skipped = sources.read_source(folder / "people.csv")
    assert skipped == 0 and list(frame["source"]) == ["people", "people"]
    assert list(frame["gender"]) == [0, 1] and list(frame["race"]) == ["", "x"]


def test_a_csv_without_the_needed_columns_is_one_clear_error(tmp_path):
    (tmp_path / "bad.csv").write_text("name,years\na.jpg,3\n")
    with pytest.raises(ValueError, match="needs columns file"):
        sources.read_source(tmp_path / "bad.csv")


def test_several_sources_keep_apart_and_a_saved_split_decides_for_the_sources_it_names(tmp_path):
    utk = utk_folder(tmp_path / "utk", count=30)
    ff = _csv_source(
        tmp_path / "ff",
        [f"train/{i}.jpg,{10 * (i % 6)}-{10 * (i % 6) + 9},{'Male' if i % 2 else 'Female'},White" for i in range(40)],
    )
    frame, _ = sources.read_sources([utk, ff])
    assert frame["source"].value_counts().to_dict() == {"utk": 30, "ff": 40}
    utk_only = frame[frame["source"] == "utk"].assign(split=["test", "train", "val"] * 10)
    saved = utk_only[["file", "split"]].iloc[:-2]  # an old split file (no source column) naming 28 of 30
    out, left_out = splits.add_split(frame, 0.25, 0.3, 3, saved)
    assert left_out == 2
    kept = out[out["source"] == "utk"].set_index("file")["split"]
    assert kept.to_dict() == saved.set_index("file")["split"].to_dict()
    fresh = out[out["source"] == "ff"]
    assert len(fresh) == 40 and set(fresh["split"]) == {"train", "val", "test"}
    again, _ = splits.add_split(frame, 0.25, 0.3, 3, saved)
    pd.testing.assert_frame_equal(out, again)  # reproducible


def test_balance_weights_even_out_strata_and_temper_source_size():
    frame = pd.DataFrame(
        {
            "source": ["big"] * 90 + ["small"] * 10,
            "race": ["a"] * 80 + ["b"] * 10 + ["a"] * 10,
            "age_low": [30] * 100,
            "gender": [0, 1] * 50,
        }
    )
    weights = sources.balance_weights(frame)
    assert weights.mean() == pytest.approx(1.0)
    big, small = weights[:90].sum(), weights[90:].sum()
    assert big / small == pytest.approx(math.sqrt(90 / 10))  # sources in proportion to sqrt(size)
    # inside "big", the 10 faces of group b weigh more than the 80 of group a, by sqrt(80/10)
    assert weights[85] / weights[0] == pytest.approx(math.sqrt(80 / 10))
    assert np.all(weights > 0)


def test_labels_stay_inside_their_folder_and_name_each_image_once(tmp_path, caplog):
    """A labels CSV may not pull files from elsewhere into training (they would land in split.csv and the
    card), and an image listed twice counts once."""
    outside = tmp_path / "elsewhere.jpg"
    save_jpeg(outside)
    root = _csv_source(
        tmp_path / "ff",
        ["train/1.jpg,20-29,Male,White", "train/1.jpg,20-29,Male,White", "../elsewhere.jpg,30,female,White"],
    )
    with (root / "labels.csv").open("a") as handle:
        handle.write(f"{outside},30,female,White\n/etc/passwd,30,male,White\n")
    with caplog.at_level(logging.WARNING):
        frame, skipped = sources.read_source(root)
    assert list(frame["file"]) == ["train/1.jpg"] and skipped == 4
    assert "outside the CSV's folder" in caplog.text and "lines 4, 5, 6" in caplog.text


def test_an_undecodable_image_in_a_dataset_is_left_out_and_counted(tmp_path):
    from agebatch.training import dataset

    folder = utk_folder(tmp_path / "utk", 6)
    broken = sorted(folder.iterdir())[2]
    broken.write_bytes(b"\xff\xd8\xff not a picture")
    frame = pd.DataFrame({"file": sorted(p.name for p in folder.iterdir())})
    kept, faces, unreadable = dataset.readable_faces(frame, "file", folder, 32)
    assert unreadable == 1 and broken.name not in set(kept["file"])
    assert len(kept) == len(faces) == 5 and list(kept.index) == list(range(5))
    cache = tmp_path / "cache"
    again = dataset.readable_faces(frame, "file", folder, 32, cache)
    from_cache = dataset.readable_faces(frame, "file", folder, 32, cache)
    assert again[2] == from_cache[2] == 1 and (np.asarray(from_cache[1]) == faces).all()


def test_odd_rows_of_a_labels_csv_are_skipped_one_by_one(tmp_path, caplog):
    import os

    from agebatch.training.sources import UNKNOWN_GENDER, read_source
    from tests.imagegen import noise_image

    for name in ("a.png", "b.png", "c.png"):
        noise_image((20, 20)).save(tmp_path / name)
    os.symlink("loop", tmp_path / "loop")
    (tmp_path / "labels.csv").write_text(
        "path,age,gender\na.png,30,unknown\nb.png,40,?\nc.png,50,femal\nloop,30,male\n"
        + "n" * 300
        + ".png,30,male\na\x00b.png,30,male\n"
    )
    frame, skipped = read_source(tmp_path / "labels.csv", gender_optional=True)
    assert frame["file"].tolist() == ["a.png", "b.png"] and set(frame["gender"]) == {UNKNOWN_GENDER}
    assert skipped == 4  # the misspelt gender, the link loop, the over-long name, the NUL byte


def test_a_dataset_folder_never_reads_through_a_link_out_of_it(tmp_path):
    import os

    from agebatch.training.dataset import read_labels
    from tests.imagegen import noise_image

    (tmp_path / "data").mkdir()
    (tmp_path / "outside").mkdir()
    noise_image((20, 20)).save(tmp_path / "outside" / "secret.jpg")
    noise_image((20, 20)).save(tmp_path / "data" / "30_0_0_20170101000001.jpg")
    os.symlink(tmp_path / "outside" / "secret.jpg", tmp_path / "data" / "31_0_0_20170101000000.jpg")
    frame, skipped = read_labels(tmp_path / "data")
    assert frame["file"].tolist() == ["30_0_0_20170101000001.jpg"] and skipped == ["31_0_0_20170101000000.jpg"]
