"""The train / validation / test split of labelled faces: reproducible, stratified, and kept beside the model.

A face's part depends only on the seed, its file name and its stratum (source, age band, gender), so
adding faces moves no other face across the split boundary and every part keeps children, the
elderly and both genders. ``add_split`` gives a frame from ``sources`` its ``split`` column (keeping
an earlier run's split where one is given); ``save_split`` writes it as ``split.csv`` so evaluation
scores exactly the held-out faces; ``saved_parts`` and ``load_split`` read one back.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from agebatch.training.sources import band_of

SPLIT_COLUMNS = ("source", "file", "age", "age_low", "age_high", "gender", "race", "split")


def strata(frame: pd.DataFrame) -> pd.Series:
    """Stratum key per row (source, age band, gender): splits keep children, the elderly and both genders."""
    return frame["source"] + "/" + band_of(frame) + "/" + frame["gender"].astype(str)


def _stable_rank(names: Iterable[str], seed: int) -> np.ndarray:
    """A per-name pseudo-random number that depends only on (seed, name), never on the listing."""
    return np.array(
        [int.from_bytes(hashlib.sha1(f"{seed}:{n}".encode()).digest()[:8], "big") for n in names],
        dtype=np.uint64,
    )


def stratified_split(frame: pd.DataFrame, test_fraction: float, seed: int) -> pd.Series:
    """Assign each row to ``train`` or ``test``, stratified by ``strata``.

    Every stratum gives ``round(n * test_fraction)`` of its rows to the test part, chosen by a hash of
    (seed, file name). Adding files to the folder therefore moves no existing file across the split
    boundary unless its stratum's quota changes, and the same seed always gives the same split.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    part = pd.Series("train", index=frame.index, dtype=object)
    ranks = pd.Series(_stable_rank(frame["file"], seed), index=frame.index)
    for _, index in frame.groupby(strata(frame)).groups.items():
        order = ranks.loc[index].sort_values(kind="stable").index
        n_test = int(round(len(order) * test_fraction))
        part.loc[order[:n_test]] = "test"
    return part


def fresh_split(frame: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int) -> pd.DataFrame:
    """``frame`` with a new ``split`` column: ``train``, ``val`` (for early stopping, out of train) or ``test``."""
    out = frame.copy()
    out["split"] = stratified_split(out, test_fraction, seed)
    train = out[out["split"] == "train"]
    if val_fraction > 0:
        val_part = stratified_split(train, val_fraction, seed + 1)
        out.loc[val_part[val_part == "test"].index, "split"] = "val"
    return out


def saved_parts(frame: pd.DataFrame, saved: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the ``split`` column of a saved split.csv (None for the files it does not name).

    Rows are matched on (source, file); a split written before there were several sources has no
    ``source`` column and is matched on the file name alone.
    """
    if not {"file", "split"} <= set(saved.columns) or not set(saved["split"].dropna()) <= {"train", "val", "test"}:
        raise ValueError("not a split file written by agebatch train")
    out = frame.copy()
    if "source" in saved.columns:
        parts = saved.drop_duplicates(["source", "file"]).set_index(["source", "file"])["split"]
        out["split"] = parts.reindex(pd.MultiIndex.from_frame(out[["source", "file"]])).to_numpy()
    else:
        out["split"] = out["file"].map(saved.drop_duplicates("file").set_index("file")["split"])
    out["split"] = out["split"].astype(object).where(out["split"].notna(), None)
    return out


def add_split(
    frame: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int, saved: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, int]:
    """``frame`` with a ``split`` column (train / val / test), and how many rows were left out.

    A ``saved`` split (an earlier run's split.csv) decides for every source it names a file of, so a
    new run is scored on exactly the same test faces as before; files of such a source that it does
    not name are left out rather than guessed into a part. Sources it does not mention (or all, without
    one) get a fresh split stratified by source, age band and gender, chosen by a hash of the file name.
    """
    out = saved_parts(frame, saved) if saved is not None else frame.assign(split=None)
    covered = set(out.loc[out["split"].notna(), "source"])
    in_covered = out["source"].isin(covered)
    left_out = int((in_covered & out["split"].isna()).sum())
    fresh = ~in_covered
    if fresh.any():
        part = fresh_split(out[fresh].drop(columns="split"), test_fraction, val_fraction, seed)
        out.loc[fresh, "split"] = part["split"]
    return out.dropna(subset=["split"]).reset_index(drop=True), left_out


def save_split(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write the split next to the model so evaluation can score exactly the held-out files."""
    frame[list(SPLIT_COLUMNS)].to_csv(path, index=False)


def load_split(path: str | os.PathLike) -> pd.DataFrame:
    """A split.csv as written by ``save_split`` (or by an earlier version, without ``source``)."""
    return pd.read_csv(path)
