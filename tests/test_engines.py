import numpy as np
import pytest

from agebatch import quiet

quiet.load_tensorflow()


@pytest.fixture(scope="module")
def twin_models(tmp_path_factory, tiny_model_path):
    """The tiny Keras model and its .tflite twin side by side."""
    import shutil

    from agebatch.engines import export_tflite, write_twin_record
    from agebatch.predictor import load_model

    folder = tmp_path_factory.mktemp("twins")
    keras_path = folder / "agebatch.keras"
    shutil.copy(tiny_model_path, keras_path)
    model, _ = load_model(keras_path)
    write_twin_record(keras_path, export_tflite(model, folder / "agebatch.tflite"))
    return keras_path


def test_a_recorded_twin_runs_without_loading_keras_or_tensorflow(twin_models):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    code = (
        "import sys, numpy as np\n"
        "from agebatch.predictor import Predictor\n"
        f"p = Predictor({str(twin_models)!r})\n"
        "ages, females = p.predict_array(np.zeros((3, p.image_size, p.image_size, 3), np.uint8))\n"
        "print(p.engine, len(ages), 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tflite", "3", "False", "False"]


def test_a_twin_whose_record_does_not_match_is_checked_against_keras(tmp_path, twin_models):
    import shutil

    from agebatch.predictor import Predictor

    for name in ("agebatch.keras", "agebatch.tflite", "agebatch.tflite.json"):
        shutil.copy(twin_models.parent / name, tmp_path / name)
    assert Predictor(tmp_path / "agebatch.keras")._model is None  # record matches: Keras not loaded
    (tmp_path / "agebatch.tflite.json").write_text('{"keras_sha256": "another model"}')
    predictor = Predictor(tmp_path / "agebatch.keras")
    assert predictor._model is not None and predictor.engine == "tflite"  # loaded, sizes checked, same size
    assert predictor.model is predictor._model


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
