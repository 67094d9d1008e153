"""Reading results files in chunks and reducing them to counts (``Tally``) that merge generically.

A million-row CSV needs the memory of one chunk; what is kept grows with the number of folders and
capture days, not of faces. Every count field of ``Tally`` merges by its type (numbers and arrays add,
counters and dicts merge by key), so a new counter is right in multi-file reports without more code.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from agebatch.common.errors import SetupError
from agebatch.common.files import read_regular
from agebatch.common.text import one_line
from agebatch.contract import GENDERS, REPORT_MAX_AGE
from agebatch.reporting import timeline
from agebatch.reporting.options import ReportOptions
from agebatch.results import reason_group

_DEFAULTS = ReportOptions()

REQUIRED_COLUMNS = ("path", "face", "age", "gender", "gender_prob", "status", "error")
OPTIONAL_COLUMNS = ("faces", timeline.COLUMN, "t_first", "t_last", "frames")  # counted when the results have them
MAX_AGE = REPORT_MAX_AGE
ERROR_LIST_CAP = 200
CHUNK_ROWS = 200_000
FOLDER_LIMIT = 10_000  # distinct folders counted apart before they are folded to the report's depth
MAX_PLAUSIBLE_AGE = 150.0  # an age cell above this is damage, not a person (the histogram's last bin is 100+)


def merge_counts(mine, theirs):
    """``mine`` with what ``theirs`` counted added: flags or-ed, numbers and arrays added, counters and
    dicts merged key by key (a key only ``theirs`` has is copied), dataclasses field by field."""
    if isinstance(mine, bool):
        return mine or theirs
    if isinstance(mine, int | float | np.ndarray):
        return mine + theirs
    if isinstance(mine, Counter):
        mine.update(theirs)
        return mine
    if isinstance(mine, dict):
        for key, value in theirs.items():
            mine[key] = merge_counts(mine[key], value) if key in mine else copy.deepcopy(value)
        return mine
    if dataclasses.is_dataclass(mine):
        _merge_fields(mine, theirs)
        return mine
    raise TypeError(f"cannot merge counts of type {type(mine).__name__}")


def _merge_fields(mine, theirs) -> None:
    for item in dataclasses.fields(mine):
        merge = item.metadata.get("merge", merge_counts)
        setattr(mine, item.name, merge(getattr(mine, item.name), getattr(theirs, item.name)))


def _kept(mine, theirs):
    return mine


def _capped(mine: list, theirs: list) -> list:
    return mine + theirs[: max(0, ERROR_LIST_CAP - len(mine))]


def _days(mine: dict, theirs: dict) -> dict:
    timeline.merge_days(mine, theirs)
    return mine


class ReportError(SetupError):
    """A results file that cannot be reported on; one-line message."""


def _age_histogram(ages: np.ndarray) -> np.ndarray:
    bins = np.clip(np.floor(ages), 0, MAX_AGE).astype(np.int64)
    return np.bincount(bins, minlength=MAX_AGE + 1)


@dataclass
class FolderTally:
    faces: int = 0
    male: int = 0
    female: int = 0
    images: int = 0
    ages: np.ndarray = field(default_factory=lambda: np.zeros(MAX_AGE + 1, np.int64))

    def merge(self, other: FolderTally) -> None:
        _merge_fields(self, other)


@dataclass
class Tally:
    """Everything the report shows about one results file, as counts."""

    name: str = field(metadata={"merge": _kept})
    rows: int = 0
    images: int = 0
    faces: int = 0
    no_face: int = 0
    errors: int = 0
    low_confidence: int = 0
    excluded_low_confidence: int = 0
    ages: np.ndarray = field(default_factory=lambda: np.zeros(MAX_AGE + 1, np.int64))
    ages_by_gender: dict = field(default_factory=lambda: {g: np.zeros(MAX_AGE + 1, np.int64) for g in GENDERS})
    gender_prob_bins: np.ndarray = field(default_factory=lambda: np.zeros(10, np.int64))  # 0.5..1.0
    faces_per_image: Counter = field(default_factory=Counter)
    error_reasons: Counter = field(default_factory=Counter)
    error_examples: list = field(default_factory=list, metadata={"merge": _capped})
    folders: dict = field(default_factory=dict)  # parent folder -> FolderTally
    days: dict = field(default_factory=dict, metadata={"merge": _days})  # capture day -> tallies (see timeline)
    has_dates: bool = False  # the results have a taken_at column at all
    videos: int = 0  # videos in which someone was seen
    people: int = 0  # people seen in videos (a video's rows are people, a photo's are faces)
    seconds_seen: float = 0.0  # the time each person was on screen, added up

    def merge(self, other: Tally) -> None:
        """Add what ``other`` counted (its name aside)."""
        _merge_fields(self, other)

    @property
    def gender_counts(self) -> dict:
        return {g: int(self.ages_by_gender[g].sum()) for g in GENDERS}


# -- reading ------------------------------------------------------------------------------------
def _read_chunks(location: str) -> Iterator[pd.DataFrame]:
    """Chunks of results: a CSV or JSON Lines file with the required columns as strings (so nothing is
    guessed), or Parquet (a file or a dataset, local or in object storage) with its own types."""
    dataset = _parquet_dataset(location)
    if dataset is not None:
        yield from _parquet_chunks(dataset, location)
        return
    path = Path(location)
    if path.is_dir():
        raise ReportError(f"{path} is a folder; give the results file(s) that agebatch scan wrote")
    if not path.is_file():
        raise ReportError(f"results file not found: {path}")
    try:  # the content decides, not the name: a .json or .txt holding JSON Lines still reads
        first = read_regular(path, 1 << 16, first_line=True)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read {path}: {one_line(exc)}") from exc
    is_jsonl = first.lstrip().startswith(b"{")
    try:
        if is_jsonl:
            reader = pd.read_json(path, lines=True, chunksize=CHUNK_ROWS, dtype=False)
        else:
            with open(path, encoding="utf-8", errors="replace", newline="") as handle:
                header_line = handle.readline()
            if not header_line.strip():
                return
            import csv

            columns = next(csv.reader([header_line]))
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ReportError(f"{path} is missing column(s) {', '.join(missing)}: is it an agebatch results file?")
            wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in columns]
            reader = pd.read_csv(
                path,
                usecols=wanted,
                dtype=str,
                keep_default_na=False,
                chunksize=CHUNK_ROWS,
                encoding="utf-8",
                encoding_errors="replace",
            )
        for chunk in reader:
            missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
            if missing:
                raise ReportError(f"{path} is missing column(s) {', '.join(missing)}: is it an agebatch results file?")
            yield chunk
    except ReportError:
        raise
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = one_line(exc)
        raise ReportError(f"cannot parse {path}: {reason}") from exc


def _parquet_dataset(location: str):
    """The Parquet results at ``location`` (``results.store.parquet_results``), or None for a text file."""
    from agebatch.results.store import parquet_results

    try:
        return parquet_results(location)
    except SetupError as exc:
        raise ReportError(str(exc)) from exc


def _parquet_chunks(dataset, location: str) -> Iterator[pd.DataFrame]:
    """A Parquet dataset's rows in chunks, reading only the columns the report counts."""
    names = dataset.schema.names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ReportError(f"{location} is missing column(s) {', '.join(missing)}: is it agebatch results?")
    wanted = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in names]
    import pyarrow as pa

    scan = {"batch_readahead": 1, "fragment_readahead": 1, "use_threads": False}  # one chunk in memory at a time
    try:
        for batches in _batched(dataset.to_batches(columns=wanted, batch_size=CHUNK_ROWS, **scan)):
            table = pa.Table.from_batches(batches)
            face = table.schema.get_field_index("face")  # the face number as text, as a CSV holds it
            table = table.set_column(face, "face", table.column(face).cast(pa.string()))
            # pandas' own notes in a file pandas wrote are not ours to follow
            yield table.to_pandas(ignore_metadata=True)
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise ReportError(f"cannot read {location}: {one_line(exc)}") from exc


def _batched(batches) -> Iterator[list]:
    """Record batches gathered into lists of about ``CHUNK_ROWS`` rows: parts are often smaller, and
    every chunk costs a pass over the folders."""
    gathered, rows = [], 0
    for batch in batches:
        gathered.append(batch)
        rows += batch.num_rows
        if rows >= CHUNK_ROWS:
            yield gathered
            gathered, rows = [], 0
    if gathered:
        yield gathered


def _as_text(series: pd.Series) -> pd.Series:
    return series.fillna("").astype(str).replace({"None": "", "nan": ""})


def _parent(paths: pd.Series) -> pd.Series:
    if paths.empty:
        return paths
    parts = paths.str.rpartition("/")
    return parts[0].where(parts[1] == "/", ".")


def tally_file(path: str | os.PathLike, options: ReportOptions = _DEFAULTS) -> Tally:
    """Stream one results file (or Parquet dataset) into a ``Tally``."""
    location = os.fspath(path)
    tally = Tally(name=os.path.basename(location.rstrip("/")) or location)
    for chunk in _read_chunks(location):
        _add_chunk(tally, chunk, options)
    return tally


def tally_frame(frame: pd.DataFrame, name: str, options: ReportOptions = _DEFAULTS) -> Tally:
    """Tally rows already in memory (the web app's filtered rows) as if read from a results file:
    every cell as the text such a file holds, an empty cell for a missing value."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"rows without column(s) {', '.join(missing)}: are they agebatch results?")
    tally = Tally(name=name)
    text = frame.astype(object).where(frame.notna(), "").astype(str)
    for start in range(0, max(len(text), 1), CHUNK_ROWS):
        _add_chunk(tally, text.iloc[start : start + CHUNK_ROWS], options)
    return tally


def common_root(folders: Iterable[str]) -> str:
    """The folder every one of ``folders`` is in ("." when there are none or "." is one of them; "" when
    absolute and relative paths are mixed)."""
    folders = list(folders)
    if "." in folders:  # images at the top of a relative scan: the root is "." itself
        return "." if not any(os.path.isabs(f) for f in folders) else ""
    if not folders:
        return "."
    try:
        return os.path.commonpath(folders)
    except ValueError:  # absolute and relative paths mixed
        return ""


def relative_parts(folder: str, root: str) -> list[str]:
    """The names leading from ``root`` (``common_root``'s) down to ``folder``."""
    if folder == ".":  # the top of a relative scan ("." is then the root, see common_root)
        return []
    relative = folder if root == "" else os.path.relpath(folder, root)
    return [p for p in relative.split("/") if p not in ("", ".")]


def folded_key(folder: str, root: str, depth: int) -> str:
    """The folder ``depth`` levels below ``root`` that ``folder`` lies in (``folder`` when it is less deep)."""
    parts = relative_parts(folder, root)
    if root in ("", ".") or folder == ".":
        return folder if not parts else ("/" if folder.startswith("/") else "") + "/".join(parts[:depth])
    return os.path.join(root, *parts[:depth])


def fold_folders(folders: dict, depth: int, root: str | None = None) -> dict:
    """The per-folder tallies merged into the folders ``depth`` levels below their common root, keyed by
    those folders' paths (``root``: the common root, when the caller knows it already).

    Grouping the folded tallies later gives the same groups as grouping the originals, whatever folders
    the rest of the rows add (the common root can only move up), so memory follows the folders the
    report shows, not every folder a collection has."""
    root = common_root(folders) if root is None else root
    folded: dict = {}
    for folder, stats in folders.items():
        key = folded_key(folder, root, depth)
        if key in folded:
            folded[key].merge(stats)
        else:
            folded[key] = stats
    return folded


def _numbers(cells: pd.Series, low: float, high: float) -> pd.Series:
    """The cells as numbers, each read back once and checked: text, infinities and values outside
    ``low``..``high`` (a hand-edited or damaged file) become missing instead of breaking a sum."""
    values = pd.to_numeric(cells, errors="coerce")
    return values.where(np.isfinite(values) & (values >= low) & (values <= high))


def _folder_keys(tally: Tally, parents: pd.Series, depth: int) -> pd.Series:
    """The folder each row's counts go under: its own, or, once the tally would hold more than
    ``FOLDER_LIMIT`` folders, the folder ``depth`` levels below the common root (``fold_folders``)."""
    unique = parents.unique()
    if len(tally.folders) + len(unique) <= FOLDER_LIMIT:
        return parents
    root = common_root([*tally.folders, *unique])
    tally.folders = fold_folders(tally.folders, depth, root)
    return parents.map({parent: folded_key(parent, root, depth) for parent in unique})


def _add_people(tally: Tally, ok: pd.DataFrame, first_row: pd.Series) -> None:
    """A video's rows: each a person, on screen from ``t_first`` to ``t_last`` in ``frames`` sampled
    frames (rows of ``--video-rows frames`` have no ``frames``: they are faces, not people)."""
    first = _numbers(ok["t_first"], 0.0, 1e7)
    last = _numbers(ok["t_last"], 0.0, 1e7)
    seen = first.notna() & last.notna() & _numbers(ok["frames"], 1, 1e9).notna()
    tally.people += int(seen.sum())
    tally.videos += int((seen & first_row).sum())
    tally.seconds_seen += float((last[seen] - first[seen]).clip(lower=0).sum())


def _add_chunk(tally: Tally, chunk: pd.DataFrame, options: ReportOptions) -> None:
    tally.rows += len(chunk)
    if chunk.empty:
        return
    min_gender_prob, low_confidence = options.min_gender_prob, options.low_confidence
    folder_of = _folder_keys(tally, _parent(_as_text(chunk["path"])), options.depth)
    status = _as_text(chunk["status"])
    face = _as_text(chunk["face"]).str.replace(".0", "", regex=False)
    first_row = face.isin(["", "0"])  # exactly one per image
    tally.images += int(first_row.sum())
    tally.no_face += int((status == "no_face").sum())
    errors = status == "error"
    tally.errors += int(errors.sum())
    if errors.any():
        reasons = _as_text(chunk.loc[errors, "error"])
        tally.error_reasons.update(reasons.map(reason_group))
        room = ERROR_LIST_CAP - len(tally.error_examples)
        if room > 0:
            sample = chunk.loc[errors, ["path", "error"]].head(room)
            tally.error_examples += [(str(p), str(e)) for p, e in sample.itertuples(index=False)]
    if "faces" in chunk:
        counts = _numbers(chunk.loc[first_row, "faces"], 0, 10**9).fillna(0).clip(upper=10).astype(int)
        tally.faces_per_image.update(counts.tolist())

    ok = chunk[status == "ok"]
    if "frames" in ok and "t_first" in ok and "t_last" in ok:
        _add_people(tally, ok, first_row[status == "ok"])
    for parent, n in folder_of[first_row].value_counts().items():
        tally.folders.setdefault(parent, FolderTally()).images += int(n)
    if ok.empty:
        return
    ages = _numbers(ok["age"], 0.0, MAX_PLAUSIBLE_AGE)
    probs = _numbers(ok["gender_prob"], 0.0, 1.0).fillna(0.0)
    genders = _as_text(ok["gender"])
    valid = ages.notna()
    ages, probs, genders = ages[valid].to_numpy(float), probs[valid].to_numpy(float), genders[valid].to_numpy()
    parents = folder_of[ok.index[valid.to_numpy()]].to_numpy()
    tally.faces += len(ages)
    tally.ages += _age_histogram(ages)
    tally.low_confidence += int((probs < low_confidence).sum())
    tally.gender_prob_bins += np.bincount(np.clip(((probs - 0.5) * 20).astype(int), 0, 9), minlength=10)
    confident = probs >= min_gender_prob
    tally.excluded_low_confidence += int((~confident).sum())
    for gender in GENDERS:
        mask = confident & (genders == gender)
        tally.ages_by_gender[gender] += _age_histogram(ages[mask])
    frame = pd.DataFrame(
        {
            "parent": parents,
            "age": np.clip(np.floor(ages), 0, MAX_AGE).astype(int),
            "male": confident & (genders == "male"),
            "female": confident & (genders == "female"),
        }
    )
    if timeline.COLUMN in ok:
        tally.has_dates = True
        timeline.add_days(
            tally.days, ok.loc[valid, timeline.COLUMN], ages, frame["male"].to_numpy(), frame["female"].to_numpy()
        )
    for parent, group in frame.groupby("parent", sort=False):
        folder = tally.folders.setdefault(parent, FolderTally())
        folder.faces += len(group)
        folder.male += int(group["male"].sum())
        folder.female += int(group["female"].sum())
        folder.ages += np.bincount(group["age"].to_numpy(), minlength=MAX_AGE + 1)
