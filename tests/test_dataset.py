import pytest

from agebatch import contract
from agebatch.training import dataset
from tests.imagegen import utk_folder


@pytest.mark.parametrize(
    "name, expected",
    [
        ("25_0_2_20170116174525125.jpg.chip.jpg", dataset.Label(25, 0, 2)),
        ("1_1_4_20161221193016140.jpg.chip.jpg", dataset.Label(1, 1, 4)),
        ("116_1_0_20170120134921760.jpg", dataset.Label(116, 1, 0)),
        ("28_1_2_201701161846515488.jpg.chip.jpg", dataset.Label(28, 1, 2)),  # long datetime, unambiguous
    ],
)
def test_parse_name_valid(name, expected):
    assert dataset.parse_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "39_1_20170116174525125.jpg.chip.jpg",  # missing field
        "61_1_20170109142408075.jpg.chip.jpg",
        "24_0_1_20170116220224657 .jpg.chip.jpg",  # stray space
        "55_0_0_20170116232725357jpg.chip.jpg",  # missing dot
        "25_2_0_20170116174525125.jpg.chip.jpg",  # gender 2
        "25_0_7_20170116174525125.jpg.chip.jpg",  # race 7
        "x_0_0_20170116174525125.jpg",
        "",
        "\n",
        "999_0_0_20170116174525125.jpg",
    ],
)
def test_parse_name_malformed_is_none(name):
    assert dataset.parse_name(name) is None


def test_read_labels_skips_and_counts_malformed(tmp_path, caplog):
    utk_folder(tmp_path, count=6)
    (tmp_path / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    frame, skipped = dataset.read_labels(tmp_path)
    assert len(frame) == 6
    assert skipped == ["39_1_20170116174525125.jpg.chip.jpg"]
    assert "skipped 1 file" in caplog.text
    assert list(frame["file"]) == sorted(frame["file"])


def test_age_band_edges():
    assert contract.age_band(0) == "0-12"
    assert contract.age_band(12.4) == "0-12"
    assert contract.age_band(13) == "13-17"
    assert contract.age_band(64.9) == "55-64"
    assert contract.age_band(65) == "65+"
    assert contract.age_band(116) == "65+"
