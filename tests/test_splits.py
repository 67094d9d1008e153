import pandas as pd
import pytest

from agebatch.training import splits


def _frame(n=1000):
    rows = [(f"{i % 90}_{i % 2}_{i % 5}_2017{i:010d}.jpg", i % 90, i % 2, i % 5) for i in range(n)]
    frame = pd.DataFrame(rows, columns=["file", "age", "gender", "race"])
    return frame.assign(source="utk", age_low=frame["age"], age_high=frame["age"])


def test_split_is_deterministic_and_seed_dependent():
    frame = _frame()
    a = splits.stratified_split(frame, 0.2, seed=1)
    b = splits.stratified_split(frame.sample(frac=1, random_state=3).sort_index(), 0.2, seed=1)
    c = splits.stratified_split(frame, 0.2, seed=2)
    assert (a == b).all()
    assert (a != c).any()


def test_split_is_stratified_by_age_band_and_gender():
    frame = _frame(2000)
    part = splits.stratified_split(frame, 0.2, seed=0)
    assert abs((part == "test").mean() - 0.2) < 0.01
    keys = splits.strata(frame)
    for key in keys.unique():
        share = (part[keys == key] == "test").mean()
        assert abs(share - 0.2) < 0.05, key


def test_add_split_makes_validation_out_of_train_only():
    frame, _ = splits.add_split(_frame(), 0.2, 0.1, seed=0)
    counts = frame["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"}
    assert counts["test"] == pytest.approx(200, abs=10)
    assert counts["val"] == pytest.approx(80, abs=10)


def test_a_file_that_is_not_a_split_is_refused():
    frame = _frame(5)
    with pytest.raises(ValueError, match="not a split file"):
        splits.saved_parts(frame, pd.DataFrame({"file": ["a.jpg"], "split": ["holdout"]}))
