"""``agebatch adapt``: labelled photos in, a model like the shipped one out (or a one-line refusal)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from imagegen import noise_image


def _labelled(folder, count: int, seed: int = 0):
    """``count`` generated 'faces' (whole images: use ``--detector none``) with ages and some genders."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with open(folder / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "age", "gender"])
        for i in range(count):
            noise_image((64, 64), seed=seed * 1000 + i).save(folder / f"face {i}.png")
            gender = ["male", "female", ""][i % 3]  # a third without a gender: allowed
            age = f"{int(rng.integers(20, 60))}" if i % 4 else "30-39"  # a band now and then
            writer.writerow([f"face {i}.png", age, gender])
    return folder / "labels.csv"


@pytest.fixture(scope="module")
def tiny_distribution_model(tmp_path_factory):
    from agebatch.common import quiet

    quiet.load_tensorflow()
    from agebatch.training.network import build_model

    path = tmp_path_factory.mktemp("distribution") / "base.keras"
    build_model(64, None, alpha=0.35, augment=False, age_head="distribution").save(path)
    return path


def test_too_few_labelled_faces_are_refused_in_one_line(run_cli, tmp_path, tiny_distribution_model):
    labels = _labelled(tmp_path / "few", 12)
    code, _, err = run_cli(
        "adapt", labels, "--detector", "none", "--model", tiny_distribution_model, "--out", tmp_path / "o"
    )
    assert code == 2 and "only 12 usable labelled face(s) (at least 50" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    code, _, err = run_cli("adapt", tmp_path / "nowhere.csv", "--out", tmp_path / "o")
    assert code == 2 and "labelled data not found" in err
    for name in ("../escape", "a/b", "", ".hidden", "n" * 240):
        code, _, err = run_cli("adapt", labels, "--out", tmp_path / "o", "--name", name)
        assert code == 2 and "--name is a file name" in err
    assert not (tmp_path / "escape.keras").exists()


def test_nothing_a_user_has_is_replaced_and_bad_setups_are_refused_before_any_work(
    run_cli, tmp_path, tiny_distribution_model, tiny_model_path
):
    labels = _labelled(tmp_path / "few", 12)
    base = ("adapt", labels, "--detector", "none", "--model", tiny_distribution_model)
    out = tmp_path / "mine"
    out.mkdir()
    for existing in ("adapted.card.md", "adapted.tflite.json"):
        (out / existing).write_text("the user's own")
        code, _, err = run_cli(*base, "--out", out)
        assert code == 2 and f"{existing} already exists" in err
        assert (out / existing).read_text() == "the user's own"
        (out / existing).unlink()
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = run_cli(*base, "--out", tmp_path / "notes.txt")
    assert code == 2 and "is a file, not a folder" in err
    code, _, err = run_cli("adapt", labels, "--detector", "none", "--model", tiny_model_path, "--out", out)
    assert code == 2 and "no age distribution head" in err  # the regression-head model: refused up front
    code, _, err = run_cli(*base, "--out", out, labels, "--min-faces", "13")  # the same CSV twice
    assert code == 2 and "only 12 usable" in err and "12 listed twice" in err
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_an_adapted_model_loads_scans_with_its_bound_twin_and_says_what_it_measured(
    run_cli, tmp_path, tiny_distribution_model
):
    from agebatch.modelfile.twin import checked_twin

    labels = _labelled(tmp_path / "mine", 60)
    out = tmp_path / "adapted"
    args = ("adapt", labels, "--detector", "none", "--model", tiny_distribution_model, "--out", out, "--folds", "3")
    code, printed, err = run_cli(*args)
    assert code == 0, err
    model = out / "adapted.keras"
    assert checked_twin(model, out / "adapted.tflite") is not None  # the twin is bound to the adapted model
    card = json.loads((out / "adapted.card.json").read_text())
    record = card["adaptation"]
    assert record["faces"] == 60 and record["with_gender"] == 40 and record["exact_ages"] == 45
    assert record["cross_validated_before"]["faces"] == 60 and "interval_shares" in card["calibration"]
    assert "cross-validated" in printed and str(model) in printed
    assert "## Adaptation" in (out / "adapted.card.md").read_text()
    code, described, _ = run_cli("models", "--model", model)
    assert code == 0 and "adapted: from base.keras on 60 labelled faces" in described
    code, _, err = run_cli(
        "scan", labels.parent, "--detector", "none", "--model", model, "--out", tmp_path / "r.csv", "-q"
    )
    assert code == 0, err
    with open(tmp_path / "r.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["status"] == "ok"]
    assert len(rows) == 60 and all(float(r["age_low"]) <= float(r["age"]) <= float(r["age_high"]) for r in rows)
    code, _, err = run_cli(*args)  # never over an earlier result
    assert code == 2 and "already exists" in err
