import numpy as np
import pytest

from agebatch import quiet

quiet.load_tensorflow()


@pytest.fixture(scope="module")
def twin_models(tmp_path_factory, tiny_model_path):
    """The tiny Keras model and its .tflite twin side by side."""
    import shutil

    from agebatch.engines import export_tflite
    from agebatch.predictor import load_model

    folder = tmp_path_factory.mktemp("twins")
    keras_path = folder / "agebatch.keras"
    shutil.copy(tiny_model_path, keras_path)
    model, _ = load_model(keras_path)
    export_tflite(model, folder / "agebatch.tflite")
    return keras_path


def test_tflite_twin_is_used_and_matches_keras(twin_models):
    from agebatch.predictor import Predictor

    fast = Predictor(twin_models)
    reference = Predictor(twin_models, engine="keras")
    assert fast.engine == "tflite" and reference.engine == "keras"
    faces = np.random.default_rng(0).integers(0, 255, (70, 64, 64, 3), np.uint8)  # two batch sizes
    a_fast, f_fast = fast.predict_array(faces)
    a_ref, f_ref = reference.predict_array(faces)
    np.testing.assert_allclose(a_fast, a_ref, atol=1e-3)
    np.testing.assert_allclose(f_fast, f_ref, atol=1e-4)


def test_engine_tflite_without_twin_is_a_load_error(tiny_model_path):
    from agebatch.predictor import ModelLoadError, Predictor

    with pytest.raises(ModelLoadError, match="needs"):
        Predictor(tiny_model_path, engine="tflite")
    assert Predictor(tiny_model_path).engine == "keras"


def test_broken_tflite_twin_falls_back_to_keras(tmp_path, tiny_model_path):
    import shutil

    from agebatch.predictor import ModelLoadError, Predictor

    shutil.copy(tiny_model_path, tmp_path / "m.keras")
    (tmp_path / "m.tflite").write_bytes(b"not a flatbuffer")
    assert Predictor(tmp_path / "m.keras").engine == "keras"
    with pytest.raises(ModelLoadError):
        Predictor(tmp_path / "m.keras", engine="tflite")


def test_scan_cli_engine_option(run_cli, twin_models, tmp_path):
    from tests.imagegen import noise_image

    noise_image((100, 100)).save(tmp_path / "x.jpg")
    code, out, err = run_cli(
        "scan",
        tmp_path / "x.jpg",
        "--out",
        tmp_path / "r.csv",
        "--detector",
        "none",
        "--model",
        twin_models,
        "--engine",
        "tflite",
    )
    assert code == 0, err
    assert out == "" and err == ""
