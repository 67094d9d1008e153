"""What the training recipe's per-sample weights do, measured on the heads.

    python benchmarks/weights_ablation.py ../shared/datasets/utkface [--model M] [--split S] [--cache-dir D]

A full training run per variant costs over an hour on a 2-core CPU, so this measures the weights where
they act most directly: the backbone of a trained model is frozen, its pooled features are computed
once for every face, and fresh age and gender heads are fitted on the training part with each
combination of weights (none, gender-balancing, age-band, both). Test-split figures per variant show
what each weighting does to overall and per-group accuracy. It is a proxy: in the real recipe the
weights also shape the fine-tuned backbone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agebatch.common import quiet  # noqa: E402

quiet.load_tensorflow()


def fit_heads(features, ages, genders, age_weights, gender_weights, val, seed: int = 0):
    """Fresh linear heads (as in the model) on frozen features; early stopping on the validation part."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features.shape[1],))
    x = layers.Dropout(0.3)(inputs)
    heads = keras.Model(
        inputs,
        {
            "age_output": layers.Dense(1, name="age_output", bias_initializer=keras.initializers.Constant(33.0))(x),
            "gender_output": layers.Dense(2, activation="softmax", name="gender_output")(x),
        },
    )
    heads.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"age_output": "mse", "gender_output": "categorical_crossentropy"},
        loss_weights={"age_output": 0.05, "gender_output": 1.0},
    )
    onehot = np.eye(2, dtype="float32")
    heads.fit(
        features,
        {"age_output": ages[:, None], "gender_output": onehot[genders]},
        sample_weight={"age_output": age_weights, "gender_output": gender_weights},
        validation_data=(val[0], {"age_output": val[1][:, None], "gender_output": onehot[val[2]]}),
        epochs=60,
        batch_size=256,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
    )
    return heads


def main() -> None:
    import pandas as pd

    from agebatch.contract import members_of
    from agebatch.modelfile.load import default_model_path, load_model
    from agebatch.training import dataset, evaluate, splits
    from agebatch.training.network import pooled_features
    from agebatch.training.targets import age_weights, gender_weights

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--split", type=Path, default=REPO / "models" / "split.csv")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "weights-ablation.json")
    args = parser.parse_args()

    frame = splits.load_split(args.split)
    frame, faces, _ = dataset.readable_faces(frame, "file", args.data_dir, 128, args.cache_dir)
    model, _ = load_model(args.model or default_model_path())
    members = members_of(model)
    if members:  # sample weights shape one network's training: the first network of an ensemble stands for them
        print(f"the model averages {len(members)} networks; measuring on the first")
        model = members[0]
    features = pooled_features(model, faces)
    part = {name: frame.index[frame["split"] == name].to_numpy() for name in ("train", "val", "test")}
    ages = frame["age"].to_numpy("float32")
    genders = frame["gender"].to_numpy()
    train = part["train"]
    val = (features[part["val"]], ages[part["val"]], genders[part["val"]])
    ones = np.ones(len(train), "float32")
    variants = {
        "no weights": (ones, ones),
        "gender-balancing only": (ones, gender_weights(genders[train])),
        "age-band only": (age_weights(ages[train], 0.5), ones),
        "both (the recipe)": (age_weights(ages[train], 0.5), gender_weights(genders[train])),
    }
    test = frame.loc[part["test"]].reset_index(drop=True)
    results = {}
    for name, (w_age, w_gender) in variants.items():
        heads = fit_heads(features[train], ages[train], genders[train], w_age, w_gender, val)
        out = heads.predict_on_batch(features[part["test"]])
        predictions = pd.DataFrame(
            {
                "pred_age": np.asarray(out["age_output"]).reshape(-1),
                "pred_female": np.asarray(out["gender_output"])[:, 1],
            }
        )
        scored = evaluate.score(test, predictions)
        results[name] = {
            "age_mae": scored["overall"]["age_mae"],
            "gender_accuracy": scored["overall"]["gender_accuracy"],
            "by_age_band_mae": {k: v["age_mae"] for k, v in scored["by_age_band"].items()},
            "by_gender_accuracy": {k: v["gender_accuracy"] for k, v in scored["by_gender"].items()},
        }
        r = results[name]
        bands = ", ".join(f"{k} {v:.2f}" for k, v in r["by_age_band_mae"].items())
        genders_text = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["by_gender_accuracy"].items())
        print(f"{name:24s} MAE {r['age_mae']:.3f}  gender {100 * r['gender_accuracy']:.2f}% ({genders_text})")
        print(f"{'':24s} MAE by band: {bands}")
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
