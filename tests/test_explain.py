"""``predict`` (boxes, ages and genders of one photo's faces) and ``explain`` (Grad-CAM heat maps)."""

import json

import numpy as np
import pytest

from agebatch.common import quiet
from tests.imagegen import FACE_PHOTO, NO_FACE_PHOTOS

quiet.load_tensorflow()


@pytest.fixture(scope="module")
def toy_model():
    """A small conv net with the agebatch interface, trained so that only the top-left patch matters."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 400
    x = rng.integers(0, 60, (n, 32, 32, 3)).astype("uint8")
    label = rng.integers(0, 2, n)
    x[label == 1, 2:10, 2:10, :] = 255  # the only evidence for "female"
    inputs = keras.Input((32, 32, 3), name="face")
    h = layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = layers.GlobalAveragePooling2D(name="pool")(h)
    model = keras.Model(
        inputs,
        {
            "age_output": layers.Dense(1, name="age_output")(pooled),
            "gender_output": layers.Dense(2, activation="softmax", name="gender_output")(pooled),
        },
    )
    model.compile(
        "adam",
        loss={"age_output": "mse", "gender_output": "categorical_crossentropy"},
        loss_weights={"age_output": 0.0, "gender_output": 1.0},
    )
    y = {"age_output": np.zeros((n, 1), "float32"), "gender_output": np.eye(2, dtype="float32")[label]}
    model.fit(x.astype("float32") / 255.0, y, epochs=40, batch_size=32, verbose=0)
    return model, x[label == 1][0]


@pytest.mark.slow
def test_grad_cam_peaks_where_the_evidence_is(toy_model):
    from agebatch.scanning.explain import grad_cam

    model, sample = toy_model
    cam = grad_cam(model, sample, head="gender")
    assert cam.shape == (32, 32)
    peak = np.unravel_index(np.argmax(cam), cam.shape)
    assert peak[0] < 12 and peak[1] < 12
    assert cam[:12, :12].sum() > cam.sum() * 0.5


def test_grad_cam_rejects_unknown_head(toy_model):
    from agebatch.scanning.explain import grad_cam

    with pytest.raises(ValueError):
        grad_cam(toy_model[0], toy_model[1], head="race")


def test_heat_map_on_a_face_photo(tiny_predictor, toy_model):
    from agebatch.scanning.explain import explain_photo, grad_cam
    from agebatch.scanning.photo import analyse

    result = analyse(FACE_PHOTO, tiny_predictor)
    assert len(result.faces) == 1
    # the tiny random model's map can be flat; use a map that is not, to check the geometry
    explanation = explain_photo(result, tiny_predictor.model, head="age")
    assert explanation.heat.shape == (result.image.height, result.image.width)
    cam = grad_cam(tiny_predictor.model, result.faces[0].crop, head="gender")
    assert cam.shape == result.faces[0].crop.shape[:2]
    from agebatch.scanning.explain import place_in_image

    centre_weighted = np.outer(np.hanning(64), np.hanning(64)).astype("float32")
    heat = place_in_image(centre_weighted, result.faces[0].face, result.image.size, whole_image=False)
    assert heat.shape == (result.image.height, result.image.width)
    assert heat.std() > 0
    f = result.faces[0].face
    inside = heat[int(f.y) : int(f.y + f.height), int(f.x) : int(f.x + f.width)].sum()
    assert inside > 0.7 * heat.sum()


def test_explained_picture_marks_the_face_and_shows_the_colour_scale(tiny_predictor):
    from agebatch.scanning.explain import explain_photo
    from agebatch.scanning.photo import analyse, face_in_image

    result = analyse(FACE_PHOTO, tiny_predictor)
    picture = np.asarray(explain_photo(result, tiny_predictor.model, head="age").picture.convert("RGB")).astype(int)
    box = face_in_image(result.faces[0], result.scale)
    left = max(0, int(box.x))
    edge = picture[int(box.y + box.height / 2), left]
    assert (edge >= 250).all(), "the face is outlined in white"
    panel = picture[:, result.image.width :]
    blue = panel[..., 2] - panel[..., 0] > 60
    red = panel[..., 0] - panel[..., 2] > 60
    assert blue.any() and red.any(), "the caption panel has the heat map's colour scale"
    assert np.nonzero(blue)[1].mean() < np.nonzero(red)[1].mean(), "little weight on the left, most on the right"


@pytest.mark.slow
def test_predict_cli_table_json_and_draw(run_cli, tmp_path):
    code, out, err = run_cli("predict", FACE_PHOTO, "--json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["face"] == 0 and len(record["box"]) == 4 and record["gender"] in ("male", "female")
    code, out, _ = run_cli("predict", FACE_PHOTO, NO_FACE_PHOTOS[0], "--draw", tmp_path / "x.png")
    assert code == 2  # --draw takes one image
    code, out, _ = run_cli("predict", FACE_PHOTO, NO_FACE_PHOTOS[0])
    assert code == 0 and "no face found" in out and FACE_PHOTO.name in out
    header, *lines = out.splitlines()  # not a terminal: tab-separated lines, no box drawing
    assert header.split("\t")[:3] == ["image", "face", "box (x, y, w, h)"] and len(lines) == 2
    assert all(len(line.split("\t")) == 6 for line in lines) and "━" not in out
    code, _, _ = run_cli("predict", FACE_PHOTO, "--draw", tmp_path / "boxes.png")
    assert code == 0
    from PIL import Image

    drawn = np.asarray(Image.open(tmp_path / "boxes.png").convert("RGB")).astype(int)
    original = np.asarray(Image.open(FACE_PHOTO).convert("RGB")).astype(int)
    assert drawn.shape == original.shape and np.abs(drawn - original).sum() > 0


@pytest.mark.slow
def test_explain_cli(run_cli, tmp_path):
    code, _, err = run_cli("explain", FACE_PHOTO, "--out", tmp_path / "cam.png", "--head", "age")
    assert code == 0, err
    assert err.strip() == f"{tmp_path / 'cam.png'}: what drove the age estimate, every face of 1"  # says where
    from PIL import Image

    picture = Image.open(tmp_path / "cam.png")
    assert picture.height == 512 and picture.width > 512  # photo plus caption panel
    code, _, err = run_cli("explain", NO_FACE_PHOTOS[0], "--out", tmp_path / "none.png")
    assert code == 3 and "no face found" in err
    assert not (tmp_path / "none.png").exists()
    code, _, err = run_cli("explain", FACE_PHOTO, "--out", tmp_path / "c.png", "--face", "4")
    assert code == 2 and "has 1 face" in err
    code, _, _ = run_cli("explain", NO_FACE_PHOTOS[0], "--out", tmp_path / "whole.png", "--detector", "none")
    assert code == 0


def test_shipped_model_heat_map_lies_on_the_face():
    """With the trained model: the map has the photo's size, is not flat, and sits inside the face box."""
    from agebatch.modelfile.load import default_model_path
    from agebatch.scanning.explain import explain_photo
    from agebatch.scanning.photo import analyse
    from agebatch.scanning.predictor import Predictor

    if not default_model_path().is_file():
        pytest.skip("the shipped model is not present")
    predictor = Predictor()
    result = analyse(FACE_PHOTO, predictor)
    (face,) = result.faces
    for head in ("gender", "age"):
        heat = explain_photo(result, predictor.model, head=head).heat
        assert heat.shape == (result.image.height, result.image.width)
        assert heat.max() > 0 and heat.std() > 0.01
        f = face.face
        margin = 0.15 * f.width  # the crop is 1.07x the detector's box
        inside = heat[int(f.y - margin) : int(f.y + f.height + margin), int(f.x - margin) : int(f.x + f.width + margin)]
        assert inside.sum() > 0.8 * heat.sum()


def test_a_bad_picture_path_fails_before_any_model_loads(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    code = (
        "import sys\n"
        "from agebatch import cli\n"
        f"sys.argv = ['agebatch', 'predict', {str(FACE_PHOTO)!r}, '--draw', {str(tmp_path / 'nowhere' / 'x.png')!r}]\n"
        "try:\n    cli.main()\nexcept SystemExit as exit:\n"
        "    print(exit.code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=repo)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert "output folder does not exist" in result.stderr


def test_predicts_table_at_80_columns_keeps_whole_names_and_boxes():
    """Names fold onto more lines instead of being cut (rows of different photos looked the same)."""
    import io

    from rich.console import Console

    from agebatch.cli._params import print_table
    from agebatch.cli.predict import PREDICT_COLUMNS

    name = "myphotos/family-reunion-2019/grandparents-and-cousins-on-the-porch.jpg"
    rows = [[name, "0", "1204, 388, 212, 212", "31.4 (25-38)", "female", "97%"]]
    screen = io.StringIO()
    print_table(PREDICT_COLUMNS, rows, Console(file=screen, width=80, force_terminal=False))
    text = screen.getvalue()
    assert "".join(line.split("│")[1].strip() for line in text.splitlines() if line.count("│") > 2).startswith(name)
    assert "1204, 388, 212, 212" in text and max(len(line) for line in text.splitlines()) <= 80
