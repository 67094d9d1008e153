"""The 8-bit twin: bound to its model like the float32 one, and run by ``auto`` only where the card's
figures show it as accurate (``modelfile.twin.int8_approved``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from agebatch.modelfile.twin import int8_approved

FLOAT = {
    "utkface": {"age_mae": 4.82, "gender_accuracy": 0.944},
    "fairface": {"age_mae": None, "gender_accuracy": 0.919},
}


def _card(int8: dict) -> dict:
    return {"engines": {"tflite": {"test_metrics": FLOAT}, "int8": {"test_metrics": int8}}}


def test_auto_may_run_the_8_bit_twin_only_within_the_tolerances_on_every_source():
    close = {
        "utkface": {"age_mae": 4.86, "gender_accuracy": 0.942},
        "fairface": {"age_mae": None, "gender_accuracy": 0.917},
    }
    assert int8_approved(_card(close))
    assert not int8_approved(_card({**close, "utkface": {"age_mae": 4.88, "gender_accuracy": 0.944}}))  # 0.06 y
    assert not int8_approved(_card({**close, "fairface": {"age_mae": None, "gender_accuracy": 0.915}}))  # 0.4 pt
    assert not int8_approved(_card({"utkface": close["utkface"]}))  # a source not measured
    for broken in (None, {}, {"engines": "x"}, _card({"utkface": {"age_mae": "x"}}), {"engines": {"tflite": {}}}):
        assert not int8_approved(broken)


@pytest.fixture(scope="module")
def int8_models(tmp_path_factory, tiny_model_path):
    """The tiny model with both twins, each with its record."""
    from agebatch.common import quiet

    quiet.load_tensorflow()
    from agebatch.modelfile.load import load_model
    from agebatch.modelfile.twin import export_tflite, tflite_path_for, write_twin_record

    folder = tmp_path_factory.mktemp("int8")
    keras_path = folder / "m.keras"
    shutil.copy(tiny_model_path, keras_path)
    model, _ = load_model(keras_path)
    faces = np.random.default_rng(0).integers(0, 255, (16, 64, 64, 3), np.uint8)
    for engine, calibration in (("tflite", None), ("int8", faces)):
        path = export_tflite(model, tflite_path_for(keras_path, engine), calibration_faces=calibration)
        write_twin_record(keras_path, path)
    return keras_path


@pytest.mark.slow
def test_the_8_bit_twin_runs_when_asked_or_vouched_for_and_never_unbound(int8_models, tmp_path, caplog):
    from agebatch.modelfile.load import ModelLoadError
    from agebatch.scanning.predictor import Predictor

    for path in int8_models.parent.iterdir():
        shutil.copy(path, tmp_path / path.name)
    model = tmp_path / "m.keras"
    faces = np.random.default_rng(1).integers(0, 255, (20, 64, 64, 3), np.uint8)
    small, plain = Predictor(model, engine="int8"), Predictor(model, engine="tflite")
    assert small.engine == "int8" and plain.engine == "tflite"
    ages, females = small.predict_array(faces)
    reference_ages, reference_females = plain.predict_array(faces)
    assert np.abs(ages - reference_ages).max() < 3 and np.abs(females - reference_females).max() < 0.15
    assert Predictor(model).engine == "tflite"  # no card: auto keeps float32
    card = tmp_path / "m.card.json"
    card.write_text(json.dumps(_card({"utkface": FLOAT["utkface"], "fairface": FLOAT["fairface"]})))
    assert Predictor(model).engine == "int8"  # the card vouches for it
    twin = tmp_path / "m.int8.tflite"
    twin.write_bytes(twin.read_bytes()[:-8] + b"\0" * 8)  # altered after its record was written
    with pytest.raises(ModelLoadError, match="does not match"):
        Predictor(model, engine="int8")
    assert Predictor(model).engine == "tflite" and "ignoring the LiteRT twin" in caplog.text
