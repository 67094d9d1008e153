"""One builder for a face's columns: results rows, ``predict --json`` and the web page agree."""

from agebatch import results
from agebatch.scanning.facebox import Face
from agebatch.scanning.predictor import Prediction
from agebatch.scanning.rows import RESULTS_ONLY, face_columns, face_record, shown_columns

FACE = Face(10.4, 20.6, 30.2, 40.0, 0.912345)
PREDICTION = Prediction(31.4, "female", 0.9, 0.9, 25.0, 38.0)
IMAGE_COLUMNS = {"path", "status", "error", "faces", "file_size", "file_mtime", "taken_at"}
VIDEO_COLUMNS = {"t_first", "t_last", "frames"}  # a video's rows add when each person was seen


def test_the_face_columns_are_the_schemas_per_face_columns():
    columns = face_columns(2, FACE, PREDICTION)
    assert set(columns) | IMAGE_COLUMNS | VIDEO_COLUMNS == set(results.ALL_COLUMNS)
    assert (columns["face"], columns["x"], columns["y"], columns["face_score"]) == (2, 10, 21, 0.9123)
    assert (columns["age_low"], columns["age_high"], columns["female_prob"]) == (25.0, 38.0, 0.9)


def test_predict_and_the_web_page_show_the_same_columns_less_the_results_only_ones():
    columns = face_columns(2, FACE, PREDICTION)
    shown = shown_columns(2, FACE, PREDICTION)
    assert set(shown) == set(columns) - set(RESULTS_ONLY)
    record = face_record("a.jpg", 2, FACE, PREDICTION)
    assert list(record)[:3] == ["path", "face", "box"] and record["box"] == [10, 21, 30, 40]
    assert set(record) == {"path", "box", "age_interval"} | set(shown) - {"x", "y", "width", "height"}
    assert record["age_interval"] == 0.8  # says what age_low..age_high is meant to hold
