import json

import numpy as np
import pytest

from agebatch.common import quiet
from tests.imagegen import utk_folder

quiet.load_tensorflow()


def _network(seed: int):
    """A small random network whose outputs depend on the face. Keras' initial weights shrink a random
    MobileNetV2's features to almost nothing; He-scaled kernels keep them alive."""
    from agebatch.training.network import build_model

    model = build_model(64, None, alpha=0.35, augment=False)
    rng = np.random.default_rng(seed)

    def he_scaled(weight: np.ndarray) -> np.ndarray:
        if weight.ndim == 4:  # conv (k, k, in, out) or depthwise (k, k, channels, 1)
            fan_in = weight.shape[0] * weight.shape[1] * (weight.shape[2] if weight.shape[3] != 1 else 1)
            return rng.normal(0, np.sqrt(2 / fan_in), weight.shape).astype("float32")
        if weight.ndim == 2:  # the heads
            return rng.normal(0, 0.3, weight.shape).astype("float32")
        return weight

    model.set_weights([he_scaled(w) for w in model.get_weights()])
    return model


def _faces(count: int = 6) -> np.ndarray:
    return np.random.default_rng(3).random((count, 64, 64, 3), dtype=np.float32)


@pytest.mark.slow
def test_an_ensemble_averages_its_members_face_by_face(tmp_path):
    import keras

    from agebatch.contract import check_interface, members_of
    from agebatch.training.ensemble import combine

    first, second = _network(1), _network(2)
    faces = _faces()
    alone = [member.predict(faces, verbose=0) for member in (first, second)]
    ensemble = combine([first, second])
    assert check_interface(ensemble) == 64
    assert len(members_of(ensemble)) == 2 and members_of(first) == []
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras", compile=False, safe_mode=True)
    out = loaded.predict(faces, verbose=0)
    for head in ("age_output", "gender_output"):
        assert not np.allclose(alone[0][head], alone[1][head])  # the members really differ
        np.testing.assert_allclose(out[head], (alone[0][head] + alone[1][head]) / 2, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        combine([first])


@pytest.mark.slow
def test_half_precision_storage_halves_the_file_and_loads_computing_in_float32(tmp_path):
    from agebatch.modelfile.load import load_model
    from agebatch.modelfile.precision import half_precision_storage, stores_half_precision

    model = _network(4)
    model.save(tmp_path / "full.keras")
    half = half_precision_storage(model)
    assert stores_half_precision(half) and not stores_half_precision(model)
    half.save(tmp_path / "half.keras")
    assert (tmp_path / "half.keras").stat().st_size < 0.7 * (tmp_path / "full.keras").stat().st_size
    loaded, size = load_model(tmp_path / "half.keras")
    assert size == 64 and {w.dtype for w in loaded.weights} == {"float32"}
    batch_norm = [w for w in half.weights if "moving_variance" in w.path]
    assert batch_norm and all(w.dtype == "float32" for w in batch_norm)  # only kernels are rounded
    # Same arithmetic as the float32 model with its kernels rounded to float16 and back.
    rounded = _network(4)
    rounded.set_weights([w.astype(np.float16).astype(np.float32) if w.ndim == 4 else w for w in model.get_weights()])
    faces = _faces()
    expected, got = rounded.predict(faces, verbose=0), loaded.predict(faces, verbose=0)
    for head in ("age_output", "gender_output"):
        np.testing.assert_allclose(got[head], expected[head], rtol=1e-4, atol=1e-5)


def test_grad_cam_of_an_ensemble_averages_its_members_maps():
    from agebatch.scanning.explain import grad_cam
    from agebatch.training.ensemble import combine

    first, second = _network(5), _network(6)
    ensemble = combine([first, second])
    face = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    cam = grad_cam(ensemble, face, "gender", gender_class=1)
    assert cam.shape == (64, 64) and 0 <= cam.min() and cam.max() <= 1
    expected = (grad_cam(first, face, "gender", 1) + grad_cam(second, face, "gender", 1)) / 2
    if expected.max() > 0:
        expected = expected / expected.max()
    np.testing.assert_allclose(cam, expected, atol=1e-4)
    assert grad_cam(ensemble, face, "age").shape == (64, 64)


@pytest.mark.slow
def test_combine_cli_writes_a_scored_ensemble_that_scan_and_evaluate_use(run_cli, tmp_path):
    from agebatch.training import sources, splits

    data = utk_folder(tmp_path / "utk", count=30)
    split, _ = splits.add_split(sources.read_source(data)[0], 0.3, 0.2, seed=5)
    splits.save_split(split, tmp_path / "split.csv")
    paths = []
    for seed in (7, 8):
        paths.append(tmp_path / f"m{seed}.keras")
        _network(seed).save(paths[-1])
    epoch = {"phase": "heads", "epoch": 1, "seconds": 30, "age_output_mae": 9.5, "val_age_output_mae": 9.0}
    epoch |= {"gender_output_accuracy": 0.7, "val_gender_output_accuracy": 0.8}
    first_card = {
        "recipe": {"seed": 7},
        "history": [epoch],
        "training": {"epochs": 1, "seconds_total": 30.0},
        "test_metrics": {"overall": {"age_mae": 9.1, "gender_accuracy": 0.81}},
        "notes": ["how the first network was made"],
    }
    (tmp_path / "m7.card.json").write_text(json.dumps(first_card))  # the second network has no card
    code, out, err = run_cli(
        "combine", *paths, "--data", data, "--split", tmp_path / "split.csv", "--out", tmp_path / "e"
    )
    assert code == 0, err
    assert "test: age MAE" in out and f"model: {tmp_path / 'e' / 'agebatch.keras'}" in out
    for name in ("agebatch.keras", "agebatch.tflite", "agebatch.tflite.json", "split.csv", "agebatch.card.md"):
        assert (tmp_path / "e" / name).is_file(), name
    card = json.loads((tmp_path / "e" / "agebatch.card.json").read_text())
    n = split["split"].value_counts()
    assert card["test_metrics"]["overall"]["n"] == n["test"] and card["val_metrics"]["overall"]["n"] == n["val"]
    assert [m["file"] for m in card["members"]] == [str(p) for p in paths]
    assert card["input"]["size"] == [64, 64, 3]
    assert card["data"]["split_counts"] == {k: int(v) for k, v in n.items()}  # train included
    assert card["tflite"]["test_metrics"]["gender_accuracy"] == pytest.approx(
        card["test_metrics"]["overall"]["gender_accuracy"], abs=0.2
    )
    assert card["members"][0]["card"] == first_card and card["members"][1]["card"] is None
    markdown = (tmp_path / "e" / "agebatch.card.md").read_text()
    assert "## Members" in markdown and "how the first network was made" in markdown and "gender 81.0%" in markdown
    assert (tmp_path / "e" / "agebatch.net_1.curves.png").stat().st_size > 1000
    assert not (tmp_path / "e" / "agebatch.net_2.curves.png").exists()
    code, out, err = run_cli(
        "evaluate",
        data,
        "--model",
        tmp_path / "e" / "agebatch.keras",
        "--split",
        tmp_path / "e" / "split.csv",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["overall"]["age_mae"] == pytest.approx(card["test_metrics"]["overall"]["age_mae"], rel=1e-4)
    code, _, err = run_cli(
        "scan", data, "--model", tmp_path / "e" / "agebatch.keras", "--detector", "none", "--out", tmp_path / "r.csv"
    )
    assert code == 0, err
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert len(rows) == 31 and all(",ok," in row for row in rows[1:])
    code, _, err = run_cli("combine", paths[0], "--data", data, "--split", tmp_path / "split.csv")
    assert code == 2 and "at least two models" in err
    code, _, err = run_cli("combine", *paths, "--data", data, "--split", tmp_path / "missing.csv")
    assert code == 2 and "split file not found" in err
