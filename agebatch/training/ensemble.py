"""Several trained networks as one model: their estimates averaged face by face.

Two networks trained on the same split with different seeds make different mistakes, so their
average is more accurate than either, at the cost of running both (the model card of a combined
model gives each network's figures and the pair's).

The ensemble is an ordinary Keras model: the members nested whole (calibration included), their
outputs averaged by ``Average`` layers named like a single network's heads. Everything that takes a
model (scan, evaluate, explain, the LiteRT export) takes it unchanged, and it loads in safe mode.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import keras

from agebatch.common import atomic
from agebatch.contract import AGE_OUTPUT, ENSEMBLE_MEMBER_PREFIX, GENDER_OUTPUT, check_interface


def combine(members: list[keras.Model], name: str = "agebatch_ensemble") -> keras.Model:
    """One model averaging the age and the female probability of ``members`` (same input size)."""
    from keras import layers

    if len(members) < 2:
        raise ValueError("an ensemble needs at least two models")
    sizes = {check_interface(member) for member in members}
    if len(sizes) != 1:
        raise ValueError(f"the models take faces of different sizes: {sorted(sizes)}")
    size = sizes.pop()
    face = keras.Input((size, size, 3), name="face")
    outputs = []
    for number, member in enumerate(members, start=1):
        member.name = f"{ENSEMBLE_MEMBER_PREFIX}{number}"  # unique names in the outer graph
        outputs.append(member(face))
    age = layers.Average(name=AGE_OUTPUT)([out[AGE_OUTPUT] for out in outputs])
    gender = layers.Average(name=GENDER_OUTPUT)([out[GENDER_OUTPUT] for out in outputs])
    return keras.Model(face, {AGE_OUTPUT: age, GENDER_OUTPUT: gender}, name=name)


def write_ensemble(
    member_paths: list[str],
    out_dir: str,
    data_dir: str,
    split_path: str,
    half_precision: bool = True,
    model_name: str = "agebatch.keras",
    cache_dir: str | None = None,
) -> Path:
    """Combine saved models into ``out_dir/model_name``, with its LiteRT twin, split and model card.

    The ensemble is scored like a trained model, on the validation and test faces of ``split_path``:
    the split the members were trained on, since on any other they would be scored on faces they
    learned from. It is scored as users will run it, i.e. reloaded from the file written. Returns the
    card's path.
    """
    from agebatch.modelfile.card import card_for_model
    from agebatch.modelfile.load import load_model
    from agebatch.modelfile.precision import half_precision_storage
    from agebatch.training import curves, dataset, evaluate, modelcard, splits
    from agebatch.training.finishing import export_and_score_tflite

    started = time.time()
    member_cards = [card_for_model(path) for path in member_paths]  # before out_dir is written to
    model = combine([load_model(path)[0] for path in member_paths])
    split = splits.load_split(split_path)
    frame = split[split["split"].isin(["val", "test"])].reset_index(drop=True)  # all that is scored
    missing = [f for f in frame["file"] if not (Path(data_dir) / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} files of {split_path} are not in {data_dir}, e.g. {missing[0]}")
    size = check_interface(model)
    frame, images, _ = dataset.readable_faces(frame, "file", data_dir, size, cache_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / model_name
    with atomic.atomic_path(model_path) as tmp:
        (half_precision_storage(model) if half_precision else model).save(tmp)
    model, _ = load_model(model_path)
    parts = {part: frame.index[frame["split"] == part].to_numpy() for part in ("val", "test")}
    scores = {
        part: evaluate.score(frame.loc[idx].reset_index(drop=True), evaluate.predict_arrays(model, images[idx]))
        for part, idx in parts.items()
    }
    test = frame.loc[parts["test"]].reset_index(drop=True)
    lite = export_and_score_tflite(model, model_path, test, images[parts["test"]], half_precision)
    if Path(split_path).resolve() != (out / "split.csv").resolve():
        shutil.copyfile(split_path, out / "split.csv")
    card = modelcard.ensemble_card(
        model_path, member_paths, member_cards, split, scores, size, half_precision, time.time() - started
    )
    card["tflite"] = lite
    stem = Path(model_name).stem
    for number, member_card in enumerate(member_cards, start=1):
        if member_card and member_card.get("history"):  # the members' training curves travel with them
            curves.write_curves(member_card["history"], out / f"{stem}.{ENSEMBLE_MEMBER_PREFIX}{number}.curves")
    return modelcard.write_card(card, out, stem)
