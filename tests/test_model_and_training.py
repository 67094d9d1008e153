import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agebatch.common import quiet
from tests.conftest import UTKFACE, needs_utkface
from tests.imagegen import utk_folder

quiet.load_tensorflow()


def test_model_shapes_and_outputs():
    from agebatch.contract import AGE_OUTPUT, GENDER_OUTPUT, check_interface
    from agebatch.training.network import build_model

    model = build_model(64, None, alpha=0.35, augment=False)
    assert check_interface(model) == 64
    out = model(np.random.rand(3, 64, 64, 3).astype("float32"), training=False)
    assert tuple(out[AGE_OUTPUT].shape) == (3, 1)
    assert tuple(out[GENDER_OUTPUT].shape) == (3, 2)
    np.testing.assert_allclose(np.asarray(out[GENDER_OUTPUT]).sum(axis=1), 1.0, rtol=1e-5)


def test_colour_jitter_changes_training_inputs_only():
    from agebatch.contract import AGE_OUTPUT
    from agebatch.training.config import TrainConfig
    from agebatch.training.network import build_model
    from agebatch.training.startweights import inference_copy

    model = build_model(64, None, dropout=0.0, alpha=0.35, color_jitter=0.3)
    names = {layer.name for layer in model.layers}
    assert {"aug_brightness", "aug_contrast"} <= names
    faces = np.full((8, 64, 64, 3), 0.5, dtype="float32")
    trained = np.asarray(model(faces, training=True)[AGE_OUTPUT])
    assert np.ptp(trained) > 0  # identical flat faces: only the jitter can make outputs differ
    clean = inference_copy(
        model, TrainConfig(data_dir=".", image_size=64, alpha=0.35, dropout=0.0, age_head="regression")
    )
    assert not any(layer.name.startswith("aug_") for layer in clean.layers)
    np.testing.assert_allclose(
        np.asarray(clean(faces, training=False)[AGE_OUTPUT]),
        np.asarray(model(faces, training=False)[AGE_OUTPUT]),
        rtol=1e-5,
    )


@pytest.mark.slow
def test_pooled_features_of_all_faces_or_chosen_rows():
    from agebatch.training.network import build_model, pooled_features

    model = build_model(64, None, alpha=0.35, augment=False)
    faces = np.random.default_rng(0).integers(0, 255, (7, 64, 64, 3), np.uint8)
    every = pooled_features(model, faces, batch_size=3)
    assert every.shape == (7, model.get_layer("pool").output.shape[-1])
    np.testing.assert_allclose(pooled_features(model, faces, np.array([5, 1])), every[[5, 1]], rtol=1e-4, atol=1e-5)
    mirrored = pooled_features(model, faces, np.array([5, 1]), mirror=True)
    np.testing.assert_allclose(mirrored, pooled_features(model, faces[[5, 1], :, ::-1]), rtol=1e-4, atol=1e-5)
    assert np.abs(mirrored - every[[5, 1]]).max() > 1e-3 * np.abs(every).max()  # a flip moves the features


def test_set_trainable_keeps_batch_norm_frozen():
    from keras import layers

    from agebatch.training.network import backbone_of, build_model, set_trainable_from

    model = build_model(64, None, alpha=0.35)
    assert set_trainable_from(model, 0.0) == 0
    assert not backbone_of(model).trainable
    count = set_trainable_from(model, 0.5)
    base = backbone_of(model)
    assert count > 0
    assert not any(layer.trainable for layer in base.layers if isinstance(layer, layers.BatchNormalization))
    assert not base.layers[1].trainable and any(layer.trainable for layer in base.layers[-10:])


def test_weights(tmp_path):
    from agebatch.training.targets import age_weights, gender_weights

    g = gender_weights(np.array([0, 0, 0, 1]))
    assert g.mean() == pytest.approx(1.0)
    assert g[3] == pytest.approx(3 * g[0])  # the rarer gender weighs 3x
    a = age_weights(np.array([30, 31, 32, 33, 5]), power=1.0)
    assert a.mean() == pytest.approx(1.0)
    assert a[4] == pytest.approx(4 * a[0])


def test_oversampling_draws_rare_strata_more_often_with_unit_loss_weights():
    """The draw gives each face the share ``balance_weights`` gives it; the loss weights are then 1."""
    from agebatch.training import sources
    from agebatch.training.batches import drawn_batches, make_dataset
    from agebatch.training.config import TrainConfig

    n = 400
    rare = np.arange(n) >= 360  # 40 faces in a stratum of their own, against 360 in another
    frame = pd.DataFrame(
        {
            "source": "s",
            "race": np.where(rare, "b", "a"),
            "age": np.where(rare, 80.0, 30.0),
            "age_low": np.where(rare, 80, 30),
            "age_high": np.where(rare, 80, 30),
            "gender": 0,
        }
    )
    images = np.zeros((n, 8, 8, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256  # each face names itself in one pixel
    images[:, 0, 0, 1] = np.arange(n) // 256
    config = TrainConfig(data_dir="x", age_head="distribution", sampling="oversample", batch_size=32, seed=3)
    data = make_dataset(images, frame, config, training=True)

    def epoch() -> np.ndarray:
        drawn, weights = [], []
        for faces, _, w in data:
            pixel = np.round(faces.numpy()[:, 0, 0, :2] * 255).astype(int)
            drawn.append(pixel[:, 0] + 256 * pixel[:, 1])
            weights.append(np.concatenate([np.asarray(v) for v in w.values()]))
        assert np.all(np.concatenate(weights) == 1.0)
        return np.concatenate(drawn)

    first, second = epoch(), epoch()
    assert len(first) == len(second) == n  # an epoch is as long as the training part
    expected = sources.balance_weights(frame)[rare].sum() / n  # the rare stratum's share: 0.25, not 0.1
    assert abs(np.mean(rare[first]) - expected) < 0.06
    assert not np.array_equal(first, second)  # a fresh draw each epoch
    for bad in ([], [0.0, 0.0], [1.0, np.nan]):  # never one face drawn over and over in silence
        with pytest.raises(ValueError, match="finite with a positive total"):
            drawn_batches(np.array(bad), config)
    with pytest.raises(ValueError, match="distribution age head"):
        TrainConfig(data_dir="x", sampling="oversample", age_head="regression")
    with pytest.raises(ValueError, match="unknown sampling"):
        TrainConfig(data_dir="x", age_head="distribution", sampling="often")


def test_config_rejects_an_unknown_schedule_and_a_teacher_share_outside_0_1():
    from agebatch import TrainConfig

    assert TrainConfig(data_dir="x", schedule="cosine").schedule == "cosine"
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        TrainConfig(data_dir="x", schedule="linear")
    with pytest.raises(ValueError, match="teacher_weight"):
        TrainConfig(data_dir="x", teacher_weight=1.5)


def test_teacher_estimates_are_blended_into_the_training_targets():
    import pandas as pd

    from agebatch.training.targets import blend_with_teacher

    ages, genders = np.array([20, 40]), np.array([0, 1])
    teacher = pd.DataFrame({"pred_age": [30.0, 40.0], "pred_female": [0.2, 0.6]})
    age, gender = blend_with_teacher(ages, genders, teacher, 0.5)
    np.testing.assert_allclose(age, [[25.0], [40.0]])
    np.testing.assert_allclose(gender, [[0.9, 0.1], [0.2, 0.8]])
    for plain in (blend_with_teacher(ages, genders, teacher, 0.0), blend_with_teacher(ages, genders, None, 0.5)):
        np.testing.assert_allclose(plain[0], [[20.0], [40.0]])
        np.testing.assert_allclose(plain[1], [[1.0, 0.0], [0.0, 1.0]])


def test_gender_smoothing_touches_only_the_training_targets():
    import pandas as pd

    from agebatch.contract import GENDER_OUTPUT
    from agebatch.training.config import TrainConfig
    from agebatch.training.targets import training_targets

    frame = pd.DataFrame({"age": [20.0, 40.0], "age_low": [20, 40], "age_high": [20, 40], "gender": [0, 1]})
    config = TrainConfig(data_dir="x", gender_smoothing=0.1, age_head="distribution")
    np.testing.assert_allclose(
        training_targets(frame, config, training=True)[GENDER_OUTPUT], [[0.95, 0.05], [0.05, 0.95]]
    )
    np.testing.assert_allclose(training_targets(frame, config)[GENDER_OUTPUT], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="gender_smoothing"):
        TrainConfig(data_dir="x", gender_smoothing=0.5, age_head="distribution")


@pytest.mark.slow
def test_several_teachers_are_averaged_face_by_face():
    from agebatch.training.evaluate import predict_arrays
    from agebatch.training.network import build_model
    from agebatch.training.targets import teacher_predictions

    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (6, 64, 64, 3), dtype=np.uint8)
    a, b = (build_model(64, None, alpha=0.35, augment=False) for _ in range(2))
    for model, bias in ((a, 10.0), (b, 30.0)):  # untrained heads start alike; make the teachers differ
        kernel, _ = model.get_layer("age_output").get_weights()
        model.get_layer("age_output").set_weights([kernel, np.array([bias], "float32")])
    index = np.array([0, 2, 5])
    averaged = teacher_predictions([a, b], images, index, batch_size=4)
    alone = [predict_arrays(m, images[index], 4, flip_average=True) for m in (a, b)]
    assert np.all(np.abs(alone[0]["pred_age"] - alone[1]["pred_age"]) > 5)
    np.testing.assert_allclose(averaged["pred_age"], (alone[0]["pred_age"] + alone[1]["pred_age"]) / 2, rtol=1e-5)
    np.testing.assert_allclose(averaged["pred_female"], (alone[0]["pred_female"] + alone[1]["pred_female"]) / 2)


@pytest.mark.slow
def test_smoke_training_on_two_sources_writes_a_loadable_model_card_and_twin(tmp_path, monkeypatch):
    """One smoke run (the distribution head on a names folder plus a band-labelled CSV source) checks
    the whole recipe: split per source, both phases, saving, card per source, curves, LiteRT twin."""
    from agebatch.contract import has_distribution
    from agebatch.modelfile.load import load_model
    from agebatch.scanning.predictor import Predictor
    from agebatch.training import train as training
    from agebatch.training.train import TrainConfig, smoke_config, train

    checkpoint_while_saving = []
    finalize = training.finalize

    def spy(config, *args):  # the trained weights stay on disk until the model is saved
        checkpoint_while_saving.append((Path(config.out_dir) / "checkpoint.keras").is_file())
        return finalize(config, *args)

    monkeypatch.setattr(training, "finalize", spy)

    utk = utk_folder(tmp_path / "utk", count=32)
    (utk / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(b"malformed name, skipped")
    banded = tmp_path / "banded"
    lines = ["file,age,gender,race"]
    for i, name in enumerate(sorted(p.name for p in utk.iterdir() if p.stat().st_size > 100)):
        (banded / "img").mkdir(parents=True, exist_ok=True)
        (banded / "img" / f"{i}.jpg").write_bytes((utk / name).read_bytes())  # the same pictures, in bands
        lines.append(f"img/{i}.jpg,{10 * (i % 7)}-{10 * (i % 7) + 9},{'Female' if i % 2 else 'Male'},group {i % 3}")
    lines.append("img/missing.jpg,20-29,Male,x")  # a row without its image: skipped
    (banded / "labels.csv").write_text("\n".join(lines) + "\n")
    config = smoke_config(
        TrainConfig(
            data_dir=str(utk),
            more_data=(str(banded),),
            age_head="distribution",
            age_loss_weight=0.5,
            refit_age_head=True,
            out_dir=str(tmp_path / "out"),
            verbose=0,
        )
    )
    result = train(config)
    assert result.model_path.is_file()
    assert checkpoint_while_saving == [True] and not (tmp_path / "out" / "checkpoint.keras").exists()
    card = json.loads(result.card_path.read_text())
    assert card["data"]["sources"] == [str(utk), str(banded)]
    assert card["data"]["skipped_rows"] == 2
    assert len(card["history"]) == 2 and card["history"][0]["phase"] == "heads"
    refit = card["age_head_refit"]  # the distribution head refit on frozen features, kept only if better
    assert refit["kept"] == (refit["val_loss_after"] < refit["val_loss_before"])
    assert all(np.isfinite(refit[key]) for key in ("val_loss_before", "val_loss_after", "val_mae_before"))
    split = pd.read_csv(tmp_path / "out" / "split.csv")
    assert list(split.columns) == ["source", "file", "age", "age_low", "age_high", "gender", "race", "split"]
    assert set(split["source"]) == {"utk", "banded"} and len(split) == 64
    n_test = int((split["split"] == "test").sum())
    assert 6 <= n_test <= 22
    metrics = card["test_metrics"]
    assert metrics["overall"]["n"] == n_test
    assert set(metrics["by_source"]) == set(split.loc[split["split"] == "test", "source"])
    model, _ = load_model(result.model_path)
    assert has_distribution(model)
    assert Predictor(result.model_path).image_size == 64  # loads in safe mode, interface checked
    markdown = (tmp_path / "out" / "agebatch.card.md").read_text()
    assert markdown.startswith("# Model card") and "### Source: utk" in markdown
    lite = card["tflite"]["test_metrics"]  # the LiteRT twin computes the same estimates
    assert (tmp_path / "out" / "agebatch.tflite").stat().st_size > 10_000
    assert lite["n"] == n_test
    assert lite["gender_accuracy"] == pytest.approx(metrics["overall"]["gender_accuracy"])
    if "age_mae" in metrics["overall"]:
        assert lite["age_mae"] == pytest.approx(metrics["overall"]["age_mae"], abs=1e-3)
    for suffix in ("html", "png"):
        assert (tmp_path / "out" / f"agebatch.curves.{suffix}").stat().st_size > 1000


@pytest.mark.slow
def test_train_and_evaluate_cli(run_cli, tmp_path, tiny_model_path):
    from agebatch.training import sources, splits
    from agebatch.training.network import build_model

    data = utk_folder(tmp_path / "utk", count=40)
    earlier, _ = splits.add_split(sources.read_source(data)[0], 0.3, 0.2, seed=5)  # not what --smoke would draw
    # Written as splits were before there were several sources: no source column, matched on the file name.
    earlier[["file", "age", "gender", "race", "split"]].to_csv(tmp_path / "earlier.csv", index=False)
    second_teacher = tmp_path / "second.keras"
    build_model(64, None, alpha=0.35, augment=False).save(second_teacher)
    # One smoke run covers the non-default recipe options: the cosine schedule, two teachers to distil
    # from and an earlier run's split.
    code, out, err = run_cli(
        "train",
        data,
        "--out",
        tmp_path / "m",
        "--smoke",
        "--schedule",
        "cosine",
        "--age-head",
        "regression",
        "--teacher",
        tiny_model_path,
        "--teacher",
        second_teacher,
        "--split",
        tmp_path / "earlier.csv",
    )
    assert code == 0, err
    assert "age MAE" in out
    written = pd.read_csv(tmp_path / "m" / "split.csv")
    assert dict(zip(written["file"], written["split"])) == dict(zip(earlier["file"], earlier["split"]))
    card = json.loads((tmp_path / "m" / "agebatch.card.json").read_text())
    assert card["recipe"]["schedule"] == "cosine"
    assert card["recipe"]["teachers"] == [str(tiny_model_path), str(second_teacher)]
    assert card["recipe"]["teacher_weight"] == 0.5
    heads, fine_tune = card["history"]
    assert heads["learning_rate"] == pytest.approx(1e-3)  # the heads phase keeps its constant rate
    assert fine_tune["learning_rate"] == pytest.approx(1e-6, rel=0.01)  # one planned epoch: decayed to 1%
    code, out, err = run_cli(
        "evaluate",
        data,
        "--model",
        tmp_path / "m" / "agebatch.keras",
        "--split",
        tmp_path / "m" / "split.csv",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    n_test = sum(line.endswith(",test") for line in (tmp_path / "m" / "split.csv").read_text().splitlines())
    assert result["overall"]["n"] == n_test and result["split"] == "test"
    assert 0 <= result["overall"]["gender_accuracy"] <= 1
    code, _, err = run_cli("train", tmp_path / "missing")
    assert code == 2 and "not found" in err


def test_continuing_copies_every_weight_and_rejects_another_network():
    from agebatch.training.network import build_model
    from agebatch.training.startweights import continue_from

    saved = build_model(64, None, alpha=0.35, augment=False)
    fresh = build_model(64, None, alpha=0.35)  # the training network also has augmentation layers
    continue_from(saved, fresh, "saved.keras")
    for layer in (layer for layer in fresh.layers if layer.weights):
        for mine, theirs in zip(layer.get_weights(), saved.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    from agebatch.training.calibration import KNOTS, calibrated_model

    shipped_like = calibrated_model(saved, np.arange(len(KNOTS) + 2, dtype="float32"), gender_shift=0.0)
    fresh = build_model(64, None, alpha=0.35)
    continue_from(shipped_like, fresh, "calibrated.keras")  # the head behind the map is the one continued
    for mine, theirs in zip(fresh.get_layer("age_output").get_weights(), saved.get_layer("age_output").get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="saved.keras is not this run's network"):
        continue_from(build_model(64, None, alpha=0.5, augment=False), fresh, "saved.keras")


@pytest.mark.slow
def test_train_cli_rejects_a_missing_or_mismatched_teacher(run_cli, tmp_path):
    from agebatch.training.network import build_model

    data = utk_folder(tmp_path / "utk", count=40)
    code, _, err = run_cli(
        "train", data, "--smoke", "--age-head", "regression", "--teacher", tmp_path / "missing.keras"
    )
    assert code == 2 and "teacher model not found" in err
    code, _, err = run_cli("train", data, "--smoke", "--split", tmp_path / "missing.csv")
    assert code == 2 and "split file not found" in err
    build_model(48, None, alpha=0.35, augment=False).save(tmp_path / "small.keras")
    code, _, err = run_cli(
        "train",
        data,
        "--out",
        tmp_path / "n",
        "--smoke",
        "--age-head",
        "regression",
        "--teacher",
        tmp_path / "small.keras",
    )
    assert code == 2 and "takes 48x48 faces, this run uses 64x64" in err
    code, _, err = run_cli("train", data, "--smoke", "--init-from", tmp_path / "missing.keras")
    assert code == 2 and "model to continue from not found" in err
    code, _, err = run_cli("train", data, "--out", tmp_path / "n", "--smoke", "--init-from", tmp_path / "small.keras")
    assert code == 2 and "model to continue from" in err and "takes 48x48 faces" in err
    code, _, err = run_cli("train", data, "--smoke", "--average-with", tmp_path / "small.keras")
    assert code == 2 and "needs a model to continue from (--init-from)" in err
    code, _, err = run_cli(
        "train", data, "--smoke", "--init-from", tmp_path / "small.keras", "--average-with", tmp_path / "small.keras"
    )
    assert code == 2 and "the same model is given twice" in err
    code, _, err = run_cli("train", data, "--smoke", "--age-head", "regression", "--gender-smoothing", "0.1")
    assert code == 2 and "gender smoothing needs the distribution age head" in err
    code, _, err = run_cli(
        "train", data, "--smoke", "--init-from", tmp_path / "small.keras", "--average-with", tmp_path / "gone.keras"
    )
    assert code == 2 and "model to average with not found" in err
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = run_cli("train", data, "--smoke", "--out", tmp_path / "a-file")
    assert code == 2 and "--out must be a folder" in err and (tmp_path / "a-file").read_text() == "not a folder"


def test_networks_are_averaged_tensor_by_tensor():
    import keras

    from agebatch.training.network import build_model
    from agebatch.training.startweights import average_models

    keras.utils.set_random_seed(1)
    first = build_model(64, None, alpha=0.35, augment=False)
    keras.utils.set_random_seed(2)
    second = build_model(64, None, alpha=0.35, augment=False)
    expected = [(a + b) / 2 for a, b in zip(first.get_weights(), second.get_weights())]
    assert any(not np.allclose(a, b) for a, b in zip(first.get_weights(), second.get_weights()))
    average_models([first, second], ["a.keras", "b.keras"])
    for mine, mean in zip(first.get_weights(), expected):
        np.testing.assert_allclose(mine, mean, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="c.keras is not the same network as a.keras"):
        average_models([first, build_model(64, None, alpha=0.5, augment=False)], ["a.keras", "c.keras"])


def test_evaluate_html(run_cli, tmp_path, tiny_model_path):
    data = utk_folder(tmp_path / "utk", count=12)
    code, out, _ = run_cli("evaluate", data, "--model", tiny_model_path, "--html", tmp_path / "e.html")
    assert code == 0
    assert "gender: accuracy" in out
    html = (tmp_path / "e.html").read_text()
    assert "plotly" in html.lower() and "age MAE by race" in html


@needs_utkface()
def test_shared_dataset_names_parse_with_known_malformed():
    from agebatch.training.dataset import read_labels

    frame, skipped = read_labels(UTKFACE)
    assert len(frame) > 20000
    assert "39_1_20170116174525125.jpg.chip.jpg" in skipped
    assert len(skipped) == 5


@pytest.mark.slow
def test_a_run_continues_from_the_average_of_the_models_given(tmp_path, tiny_model_path, monkeypatch):
    """Also: a continued run never fetches ImageNet weights it would overwrite (no download at run time)."""
    import keras

    from agebatch.training.network import build_model
    from agebatch.training.train import TrainConfig, smoke_config, train

    keras.utils.set_random_seed(5)
    other = tmp_path / "other.keras"
    build_model(64, None, alpha=0.35, augment=False).save(other)
    backbone = [
        keras.saving.load_model(p).get_layer("mobilenetv2").get_layer("Conv1").get_weights()[0]
        for p in (tiny_model_path, other)
    ]
    config = smoke_config(
        TrainConfig(
            data_dir=str(utk_folder(tmp_path / "utk", count=40)),
            out_dir=str(tmp_path / "out"),
            verbose=0,
            age_head="regression",  # the tiny models have the regression head
        )
    )
    config.init_from, config.average_with, config.epochs = str(tiny_model_path), (str(other),), 0
    config.backbone_weights = "imagenet"

    def no_download(*args, **kwargs):
        raise AssertionError("a continued run downloaded backbone weights")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    monkeypatch.setattr("keras.src.applications.mobilenet_v2.file_utils.get_file", no_download)
    result = train(config)
    mine = keras.saving.load_model(result.model_path).get_layer("mobilenetv2").get_layer("Conv1").get_weights()[0]
    np.testing.assert_allclose(mine, (backbone[0] + backbone[1]) / 2, rtol=1e-5, atol=1e-6)
    assert json.loads(result.card_path.read_text())["recipe"]["average_with"] == [str(other)]


@pytest.mark.slow
def test_optional_final_phases_are_recorded_and_each_kept_only_if_validation_improves(tmp_path, tiny_model_path):
    """Continuing a saved model, weight averaging and the age-head refit share one smoke run: each
    training costs about a minute."""
    from agebatch.scanning.predictor import Predictor
    from agebatch.training.train import TrainConfig, smoke_config, train

    data = utk_folder(tmp_path / "utk", count=40)
    config = smoke_config(
        TrainConfig(data_dir=str(data), out_dir=str(tmp_path / "out"), verbose=0, age_head="regression")
    )
    config.init_from = str(tiny_model_path)
    config.average_epochs = 2
    config.refit_age_head = True
    result = train(config)
    card = json.loads(result.card_path.read_text())
    record = card["weight_averaging"]
    assert record["epochs_averaged"] == 2
    assert record["kept"] == (record["val_loss_after"] < record["val_loss_before"])
    assert card["recipe"]["init_from"] == str(tiny_model_path)
    assert [row["phase"] for row in card["history"]] == ["fine-tune", "average", "average"]  # no new heads
    record = card["age_head_refit"]
    assert record["kept"] == (record["val_mae_after"] < record["val_mae_before"])
    assert Predictor(result.model_path, engine="keras").image_size == 64


class _CtrlCAfter:
    """A stand-in for train's interrupt guard: ``interrupted`` turns true after ``checks`` looks."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    @property
    def interrupted(self) -> bool:
        self.checks -= 1
        return self.checks < 0


@pytest.mark.slow
def test_age_head_refit_is_skipped_without_validation_faces_or_after_ctrl_c():
    from agebatch.training.config import TrainConfig
    from agebatch.training.laststeps import refit_age_head
    from agebatch.training.network import build_model

    model = build_model(64, None, alpha=0.35, augment=False, age_head="distribution")
    before = model.get_layer("age_distribution").get_weights()[0].copy()
    frame = pd.DataFrame({"age": [30.0] * 4, "age_low": [30] * 4, "age_high": [30] * 4, "split": ["train"] * 4})
    faces = np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), np.uint8)
    config = TrainConfig(data_dir="x", age_head="distribution")
    record = refit_age_head(model, faces, frame, config)
    assert record == {"kept": False, "skipped": "no training or validation faces"}
    frame["split"] = ["train", "train", "val", "val"]
    for checks in (0, 3):  # Ctrl-C while computing features; while fitting (after the three feature passes)
        record = refit_age_head(model, faces, frame, config, stopper=_CtrlCAfter(checks))
        assert record == {"kept": False, "skipped": "interrupted"}
        np.testing.assert_array_equal(model.get_layer("age_distribution").get_weights()[0], before)


@pytest.mark.slow
def test_weight_averaging_interrupted_keeps_the_trained_weights(tmp_path):
    from agebatch.training.batches import make_dataset
    from agebatch.training.config import TrainConfig
    from agebatch.training.laststeps import average_weights, last_steps
    from agebatch.training.network import build_model

    model = build_model(64, None, alpha=0.35, augment=False)
    before = [w.copy() for w in model.get_weights()]
    frame = pd.DataFrame(
        {"age": [20.0, 40.0] * 4, "age_low": [20, 40] * 4, "age_high": [20, 40] * 4, "gender": [0, 1] * 4}
    )
    faces = np.random.default_rng(1).integers(0, 255, (8, 64, 64, 3), np.uint8)
    config = TrainConfig(
        data_dir="x",
        image_size=64,
        alpha=0.35,
        batch_size=4,
        average_epochs=2,
        out_dir=str(tmp_path),
        verbose=0,
        age_head="regression",
    )
    data = {part: make_dataset(faces, frame, config, training=part == "train") for part in ("train", "val")}
    record = average_weights(model, data, config, _CtrlCAfter(0), tmp_path / "checkpoint.keras", [], 0)
    assert record["skipped"] == "interrupted" and record["kept"] is False
    for kept, original in zip(model.get_weights(), before):
        np.testing.assert_array_equal(kept, original)
    config.refit_age_head = True  # interrupted before the last steps: the card says they did not run
    final, steps = last_steps(config, frame, faces, model, data, _CtrlCAfter(-1), [])
    assert steps == {name: {"kept": False, "skipped": "interrupted"} for name in ("weight_averaging", "age_head_refit")}
    assert final.count_params() == model.count_params()


@pytest.mark.slow
def test_an_aborted_run_keeps_its_checkpoint_and_a_new_run_only_continues_it(tmp_path, monkeypatch, caplog):
    """Training itself is replaced by saving the network as the checkpoint: what is tested is what
    happens around it when the run is aborted (a second Ctrl-C, SIGTERM) before the model is saved."""
    from agebatch.training import startweights
    from agebatch.training import train as training
    from agebatch.training.train import TrainConfig, smoke_config, train

    def fit_phases(model, data, config, *args):
        model.save(Path(config.out_dir) / "checkpoint.keras")

    def aborted(*args):
        raise KeyboardInterrupt

    finalize = training.finalize
    monkeypatch.setattr(training, "fit_phases", fit_phases)
    monkeypatch.setattr(training, "finalize", aborted)
    out = tmp_path / "out"
    config = smoke_config(
        TrainConfig(data_dir=str(utk_folder(tmp_path / "utk", count=16)), out_dir=str(out), verbose=0)
    )
    with pytest.raises(KeyboardInterrupt):
        train(config)
    checkpoint = out / "checkpoint.keras"
    assert checkpoint.is_file() and str(checkpoint) in caplog.text
    assert startweights.load_checked(str(checkpoint), 64, "model to continue from") is not None
    with pytest.raises(ValueError, match="did not finish.*--init-from"):
        train(config)  # would overwrite the unfinished run's weights
    config.init_from = str(checkpoint)
    with pytest.raises(KeyboardInterrupt):  # continuing them is allowed
        train(config)
    assert checkpoint.is_file()
    # Aborted once the model is saved (here in the LiteRT export): no older card, twin or curves stay
    # beside it, and the checkpoint is gone, since the model holds its weights.
    monkeypatch.setattr(training, "finalize", finalize)
    monkeypatch.setattr(training, "export_and_score_tflite", aborted)
    stale = [
        out / name for name in ("agebatch.card.json", "agebatch.tflite", "agebatch.tflite.json", "agebatch.curves.png")
    ]
    for path in stale:
        path.write_text("from an earlier model")
    with pytest.raises(KeyboardInterrupt):
        train(config)
    assert (out / "agebatch.keras").is_file() and not checkpoint.exists()
    assert not any(path.exists() for path in stale)


def test_a_folder_in_the_checkpoints_place_is_refused_without_suggesting_to_continue_it(tmp_path):
    from agebatch.training.train import TrainConfig, _refuse_to_overwrite_unfinished

    (tmp_path / "checkpoint.keras").mkdir()
    with pytest.raises(ValueError, match="in the way.*move it away") as refused:
        _refuse_to_overwrite_unfinished(tmp_path / "checkpoint.keras", TrainConfig(data_dir="x", out_dir=str(tmp_path)))
    assert "--init-from" not in str(refused.value)


def test_gender_calibration_folds_temperature_and_shift_into_the_head():
    from agebatch.contract import GENDER_OUTPUT
    from agebatch.training import calibration
    from agebatch.training.network import build_model

    model = build_model(64, None, alpha=0.35, augment=False, age_head="distribution")
    head = model.get_layer(GENDER_OUTPUT)
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 40, bias])  # spread the probabilities out
    faces = np.random.default_rng(0).random((32, 64, 64, 3)).astype("float32")
    before = np.asarray(model.predict(faces, verbose=0)[GENDER_OUTPUT])[:, 1]
    calibration.fold_gender_calibration(model, temperature=2.5, shift=0.3)
    after = np.asarray(model.predict(faces, verbose=0)[GENDER_OUTPUT])[:, 1]
    p = np.clip(before, 1e-7, 1 - 1e-7)
    expected = 1 / (1 + np.exp(-(np.log(p / (1 - p)) / 2.5 + 0.3)))
    np.testing.assert_allclose(after, expected, atol=1e-4)
    assert not np.allclose(after, before, atol=1e-3)
