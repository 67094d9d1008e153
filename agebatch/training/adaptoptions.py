"""``AdaptOptions``: what ``agebatch adapt`` does, in a module of its own so that the command line
reads its defaults and help without importing the refit (pandas, the model's code)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agebatch.common.settings import setting


@dataclass
class AdaptOptions:
    """What ``agebatch adapt`` does; every default is written here once."""

    labelled: tuple[str, ...] = setting(
        (), "Labelled photos: labels CSVs (path,age[,gender]) or folders of them, or UTKFace-style folders."
    )
    out_dir: str = setting("adapted", "Folder for the adapted model, its LiteRT twin and card (a new name).")
    model: str | None = setting(None, "Model to adapt (.keras); default: the shipped model or $AGEBATCH_MODEL.")
    name: str = setting("adapted", "File name (without suffix) of the adapted model in --out.")
    detector: str = setting(
        "blazeface", "Find the (largest) face in each photo as scan does; none: each image is one face crop."
    )
    folds: int = setting(5, "Cross-validation folds that judge the refit on the labelled faces.")
    min_faces: int = setting(50, "Refuse samples with fewer usable labelled faces than this.")
    strengths: tuple[float, ...] = setting(
        (0.1, 0.03, 0.01), "Pulls towards the shipped heads that cross-validation chooses from (larger: nearer)."
    )
    seed: int = setting(0, "Seed of the folds.")
    progress: bool = field(default=False, metadata={"help": "Log each step."})
