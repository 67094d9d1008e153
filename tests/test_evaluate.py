import pandas as pd
import pytest

from agebatch.training.evaluate import confusion, score


def test_score_on_hand_computed_example():
    truth = pd.DataFrame({"age": [10, 30, 50, 70], "gender": [0, 1, 1, 0], "race": [0, 0, 1, 1]})
    predictions = pd.DataFrame({"pred_age": [12, 30, 44, 70], "pred_female": [0.2, 0.9, 0.4, 0.1]})
    result = score(truth, predictions)
    overall = result["overall"]
    assert overall["n"] == 4
    assert overall["age_mae"] == pytest.approx((2 + 0 + 6 + 0) / 4)
    assert overall["age_rmse"] == pytest.approx(((4 + 36) / 4) ** 0.5)
    assert overall["age_within_5"] == pytest.approx(0.75)
    assert overall["gender_accuracy"] == pytest.approx(0.75)
    assert result["confusion"] == [[2, 0], [1, 1]]
    assert result["by_race"]["white"]["gender_accuracy"] == 1.0
    assert result["by_race"]["black"]["gender_accuracy"] == 0.5
    assert result["race_gender_gap"] == {"best": "white", "worst": "black", "gap": 0.5}
    assert result["by_age_band"]["65+"]["age_mae"] == 0
    assert result["by_gender"]["female"]["n"] == 2
    counts = result["age_band_confusion"]["counts"]  # true band x estimated band, for the report's correction
    bands = result["age_band_confusion"]["bands"]
    assert counts[bands.index("0-12")][bands.index("0-12")] == 1  # 10 read as 12
    assert counts[bands.index("45-54")][bands.index("35-44")] == 1  # 50 read as 44
    assert sum(map(sum, counts)) == 4


def test_confusion_counts():
    assert confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]) == [[1, 1], [1, 2]]


def test_band_labelled_faces_score_band_accuracy_and_sources_score_apart():
    nan = float("nan")
    truth = pd.DataFrame(
        {
            "source": ["utk", "utk", "ff", "ff", "ff"],
            "age": [10, 30, nan, nan, nan],
            "age_low": [10, 30, 20, 20, 70],
            "age_high": [10, 30, 29, 29, 100],
            "gender": [0, 1, 1, 0, 0],
            "race": ["white", "black", "east asian", "east asian", "indian"],
        }
    )
    predictions = pd.DataFrame({"pred_age": [12, 30, 29.9, 30.0, 75], "pred_female": [0.2, 0.9, 0.6, 0.7, 0.1]})
    result = score(truth, predictions)
    assert result["overall"]["n"] == 5 and result["overall"]["n_exact_age"] == 2
    assert result["overall"]["age_mae"] == pytest.approx(1.0)  # only faces with an exact age
    # 29.9 lies in 20-29 (its whole years are 29), 30.0 does not, 75 lies in 70+
    assert result["overall"]["age_band_accuracy"] == pytest.approx(2 / 3)
    assert list(result["by_label_band"]) == ["20-29", "70-100"]
    ff = result["by_source"]["ff"]
    assert "age_mae" not in ff["overall"] and ff["overall"]["gender_accuracy"] == pytest.approx(2 / 3)
    assert ff["race_gender_gap"]["gap"] == pytest.approx(0.5)
    assert result["by_source"]["utk"]["overall"]["age_mae"] == pytest.approx(1.0)


def test_calibration_error_on_a_hand_computed_case():
    from agebatch.training.evaluate import calibration_error

    # two faces called female at 0.9 (one right), two called male at 0.7 (both right)
    error = calibration_error([0.9, 0.9, 0.3, 0.3], [1, 0, 0, 0], bins=10)
    assert error == pytest.approx((2 * abs(0.9 - 0.5) + 2 * abs(0.7 - 1.0)) / 4)
    assert calibration_error([1.0, 0.0], [1, 0]) == pytest.approx(0.0)


def test_an_undecodable_image_is_counted_not_fatal(tmp_path, tiny_model_path):
    from agebatch.training.evaluate import evaluate_folder
    from tests.imagegen import utk_folder

    folder = utk_folder(tmp_path / "utk", 6)
    sorted(folder.iterdir())[0].write_bytes(b"\xff\xd8\xff truncated")
    result = evaluate_folder(tiny_model_path, folder)
    assert result["unreadable"] == 1 and result["overall"]["n"] == 5
