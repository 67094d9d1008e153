import pandas as pd
import pytest

from agebatch.evaluate import confusion, score


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


def test_confusion_counts():
    assert confusion([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]) == [[1, 1], [1, 2]]
