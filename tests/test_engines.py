import numpy as np
import pytest

from agebatch.common import quiet

quiet.load_tensorflow()


@pytest.fixture(scope="module")
def twin_models(tmp_path_factory, tiny_model_path):
    """The tiny Keras model and its .tflite twin side by side."""
    import shutil

    from agebatch.modelfile.load import load_model
    from agebatch.modelfile.twin import export_tflite, write_twin_record

    folder = tmp_path_factory.mktemp("twins")
    keras_path = folder / "agebatch.keras"
    shutil.copy(tiny_model_path, keras_path)
    model, _ = load_model(keras_path)
    write_twin_record(keras_path, export_tflite(model, folder / "agebatch.tflite"))
    return keras_path


@pytest.mark.slow
def test_a_recorded_twin_runs_without_loading_keras_or_tensorflow(twin_models):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    code = (
        "import sys, numpy as np\n"
        "from agebatch.scanning.predictor import Predictor\n"
        f"p = Predictor({str(twin_models)!r})\n"
        "ages, females = p.predict_array(np.zeros((3, p.image_size, p.image_size, 3), np.uint8))\n"
        "print(p.engine, len(ages), 'keras' in sys.modules, 'tensorflow' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(repo))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["tflite", "3", "False", "False"]


def test_a_twin_that_its_record_does_not_bind_is_never_run(tmp_path, twin_models, caplog):
    import json
    import logging
    import shutil

    from agebatch.modelfile.load import ModelLoadError
    from agebatch.scanning.predictor import Predictor

    for name in ("agebatch.keras", "agebatch.tflite", "agebatch.tflite.json"):
        shutil.copy(twin_models.parent / name, tmp_path / name)
    assert Predictor(tmp_path / "agebatch.keras")._model is None  # record matches: Keras not loaded
    record = json.loads((tmp_path / "agebatch.tflite.json").read_text())
    good = (tmp_path / "agebatch.tflite").read_bytes()
    impostors = {
        "record names another model": ({**record, "keras_sha256": "0" * 64}, good),
        "twin swapped, record kept": (record, good[:-8] + b"\0" * 8),
        "no record": (None, good),
    }
    for why, (changed, blob) in impostors.items():
        (tmp_path / "agebatch.tflite").write_bytes(blob)
        if changed is None:
            (tmp_path / "agebatch.tflite.json").unlink(missing_ok=True)
        else:
            (tmp_path / "agebatch.tflite.json").write_text(json.dumps(changed))
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            predictor = Predictor(tmp_path / "agebatch.keras")
        assert predictor.engine == "keras" and predictor._model is not None, why
        assert "ignoring the LiteRT twin" in caplog.text, why
        with pytest.raises(ModelLoadError, match="does not match"):
            Predictor(tmp_path / "agebatch.keras", engine="tflite")


def test_tflite_twin_is_used_and_matches_keras(twin_models):
    from agebatch.scanning.predictor import Predictor

    fast = Predictor(twin_models)
    reference = Predictor(twin_models, engine="keras")
    assert fast.engine == "tflite" and reference.engine == "keras"
    faces = np.random.default_rng(0).integers(0, 255, (70, 64, 64, 3), np.uint8)  # two batch sizes
    a_fast, f_fast = fast.predict_array(faces)
    a_ref, f_ref = reference.predict_array(faces)
    np.testing.assert_allclose(a_fast, a_ref, atol=1e-3)
    np.testing.assert_allclose(f_fast, f_ref, atol=1e-4)


def test_engine_tflite_without_twin_is_a_load_error(tiny_model_path):
    from agebatch.modelfile.load import ModelLoadError
    from agebatch.scanning.predictor import Predictor

    with pytest.raises(ModelLoadError, match="needs"):
        Predictor(tiny_model_path, engine="tflite")
    assert Predictor(tiny_model_path).engine == "keras"


def test_broken_tflite_twin_falls_back_to_keras(tmp_path, tiny_model_path):
    import shutil

    from agebatch.modelfile.load import ModelLoadError
    from agebatch.scanning.predictor import Predictor

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
    assert out == "" and "Warning" not in err and err.count("\n") == 1  # the summary line only


def test_flip_average_is_the_mean_of_the_face_and_its_mirror(twin_models):
    from agebatch.scanning.predictor import Predictor

    faces = np.random.default_rng(1).integers(0, 255, (5, 64, 64, 3), np.uint8)
    for engine in ("keras", "tflite"):
        plain = Predictor(twin_models, engine=engine)
        averaged = Predictor(twin_models, engine=engine, flip_average=True)
        ages, females = plain.predict_array(faces)
        ages_m, females_m = plain.predict_array(faces[:, :, ::-1, :])
        got_ages, got_females = averaged.predict_array(faces)
        np.testing.assert_allclose(got_ages, (ages + ages_m) / 2, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(got_females, (females + females_m) / 2, atol=1e-5)


def test_flip_averaged_feeds_the_mirror_image():
    from agebatch.scanning.predictor import flip_averaged
    from agebatch.training.evaluate import predict_with

    def left_and_right_edges(batch):  # a "model" that sees which side of the face is where
        return batch[:, 0, 0, 0] * 100, batch[:, 0, -1, 0]

    faces = np.zeros((2, 4, 4, 3), np.uint8)
    faces[:, :, 0] = 255  # left column white, right column black
    plain = predict_with(left_and_right_edges, faces)
    averaged = predict_with(flip_averaged(left_and_right_edges), faces)
    assert list(plain["pred_age"]) == [100, 100] and list(plain["pred_female"]) == [0, 0]
    assert list(averaged["pred_age"]) == [50, 50] and list(averaged["pred_female"]) == [0.5, 0.5]


@pytest.mark.slow
def test_evaluate_cli_flip_average(run_cli, tmp_path, twin_models):
    import json

    from tests.imagegen import utk_folder

    data = utk_folder(tmp_path / "utk", count=12)
    results = {}
    for extra in ((), ("--flip-average",)):
        code, out, err = run_cli("evaluate", data, "--model", twin_models, "--json", *extra)
        assert code == 0, err
        results[bool(extra)] = json.loads(out)
    assert results[True]["flip_average"] is True and results[False]["flip_average"] is False
    assert results[True]["overall"]["n"] == results[False]["overall"]["n"] == 12
    code, out, _ = run_cli("evaluate", data, "--model", twin_models, "--flip-average")
    assert code == 0 and "mirrored" in out.splitlines()[0]


def test_threads_silencing_native_stderr_at_once_leave_it_as_it_was():
    """Decode threads build detector networks at once, each silencing fd 2 around the runtime's
    notice: the last one out must not restore a descriptor another thread had pointed at /dev/null
    (the process would then be mute: no summary, no error). Run in a process of its own, so the
    test runner's own capture of fd 2 is not in the way."""
    import subprocess
    import sys

    script = (
        "import threading, time, os\n"
        "from agebatch.common import quiet\n"
        "def silence():\n"
        "    for _ in range(50):\n"
        "        with quiet.native_stderr_silenced():\n"
        "            time.sleep(0.0005)\n"
        "threads = [threading.Thread(target=silence) for _ in range(4)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
        "os.write(2, b'still heard\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "still heard" in done.stderr
