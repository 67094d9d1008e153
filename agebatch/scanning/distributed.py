"""The same scan on a Ray cluster (``scan --ray``; optional extra: ``pip install 'agebatch[ray]'``).

The driver discovers the files (and leaves out other shards' and, with ``--resume``, finished ones),
then Ray Data runs decode -> detect -> predict in actors that each load the model once
(``map_batches`` with a class and ``concurrency``). Every image's rows come back to the driver as one
record, and the driver writes them through the same ``ResultsWriter`` as a local scan: atomic replace,
``--resume`` and the lock hold unchanged. Each image is written once, even when Ray retries a task
after a worker died (the driver keeps the first copy of an image's rows).

Workers read the images themselves (with the same safe decoder), so every node must see the files at
the paths the driver found them: shared storage, or an object store (``s3://``) every node can read.

Into a Parquet dataset (``--out DIR/`` or ``s3://bucket/results/``) the workers write the rows
themselves, one part per task (``PartWritingActor``), and only each image's outcome travels back: the
driver keeps counts, so its memory stays flat however many rows the cluster makes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from agebatch import results
from agebatch.common.errors import SetupError
from agebatch.scanning.options import TENSORFLOW_DETECTORS, ScanOptions
from agebatch.scanning.pipeline import Pipeline, Work, pending_work, rows_of
from agebatch.scanning.predictor import Predictor

WORK_CHUNK = 100_000  # images handed to Ray Data at once (each chunk reloads the model in its actors, ~1 s)
PART_IMAGES = 1024  # images per task (and per part) when the workers write the parts themselves
RAY_HINT = "--ray needs Ray: pip install 'agebatch[ray]' (from a clone: pip install '.[ray]')"
ADDRESS_VARIABLE = "RAY_ADDRESS"  # Ray's own convention for the cluster to join


class RayUnavailable(SetupError, RuntimeError):
    """Ray is not installed (or cannot start); the message names the extra to install."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide: ``address`` of a running cluster (else ``$RAY_ADDRESS``, else a local Ray
    with this machine's cores) and how many model actors (default: one per two CPUs of the cluster)."""

    address: str | None = None
    actors: int | None = None


def require_ray():
    """The ``ray`` module, or ``RayUnavailable`` with the install hint."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is what the scan runs on
    except ImportError as exc:
        raise RayUnavailable(RAY_HINT) from exc
    return ray


def connect(ray_options: RayOptions):
    """Join the cluster (or start a local one), quietly: Ray's start-up logs stay out of cron mail."""
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray = require_ray()
    if not ray.is_initialized():
        address = ray_options.address or os.environ.get(ADDRESS_VARIABLE) or None
        local = {} if address else {"num_cpus": os.cpu_count() or 1}
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
                **local,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailable(f"cannot start or join Ray ({address or 'local'}): {exc}") from exc
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    return ray


class ScanActor:
    """A Ray actor: loads the model once, then turns batches of image paths into row groups."""

    def __init__(self, model_path: str, options: ScanOptions, engine: str, flip_average: bool) -> None:
        self.options = options
        if self.options.detector in TENSORFLOW_DETECTORS:
            from agebatch.common import quiet

            quiet.load_tensorflow(f"--detector {self.options.detector}")
        self.predictor = Predictor(model_path, self.options.batch_size, engine, flip_average)
        self.pipeline = Pipeline(self.options, self.predictor.image_size, self.predictor)
        # Decoding and detection release the GIL: a pool uses the worker's cores as a local scan does.
        self.pool = ThreadPoolExecutor(max_workers=self.options.jobs or os.cpu_count() or 1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        return {"rows": [json.dumps(rows) for rows in self.row_groups(batch)]}

    def row_groups(self, batch: dict[str, np.ndarray]) -> list[list[dict]]:
        """Each image's rows, in the batch's order. Decoding runs ahead in the pool while the model
        takes the images a model batch at a time, so the two overlap within a large batch."""
        todo = []
        for path, size, mtime, error in zip(batch["path"], batch["size"], batch["mtime"], batch["error"]):
            key = results.FileKey(str(path), int(size), float(mtime)) if size >= 0 else None
            todo.append(Work(str(path), key, error=str(error) or None))
        futures = [self.pool.submit(self.pipeline.process, work) for work in todo]
        groups: list[list[dict]] = []
        step = self.options.batch_size
        for start in range(0, len(futures), step):
            works = [future.result() for future in futures[start : start + step]]
            crops = [crop for work in works for crop in work.crops]
            estimates = self.predictor.estimate(np.stack(crops)) if crops else None
            offset = 0
            for work in works:
                part = None if estimates is None else estimates.part(offset, offset + len(work.crops))
                groups.append(rows_of(work, part))
                offset += len(work.crops)
        return groups


class PartWritingActor(ScanActor):
    """A Ray actor that writes each batch's rows as one part of the output dataset itself and sends
    the driver only each image's outcome (status, faces, error): the driver's memory and bandwidth no
    longer grow with the rows. A part's name comes from its images, so a retried task rewrites the
    same part instead of adding a second copy."""

    def __init__(self, location: str, prefix: str, **actor) -> None:
        super().__init__(**actor)
        from agebatch.results.store import PartStore

        self.store = PartStore(location)
        self.prefix = prefix

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        from agebatch.results.parquet import table_of

        groups = self.row_groups(batch)
        digest = hashlib.sha256("\0".join(str(p) for p in batch["path"]).encode()).hexdigest()[:16]
        self.store.write_part(f"part-{self.prefix}-{digest}.parquet", table_of(r for g in groups for r in g))
        return {
            "status": [g[0]["status"] for g in groups],
            "faces": [len(g) if g[0]["status"] == "ok" else 0 for g in groups],
            "error": [g[0]["error"] or "" for g in groups],
        }


def _pending_chunks(paths, options: ScanOptions, skip, on_skip) -> Iterator[list[dict]]:
    """The images to scan as lists of at most ``WORK_CHUNK`` items, each handed to Ray Data in turn:
    the driver holds one chunk's list, not the whole scan's."""
    chunk: list[dict] = []
    for work in pending_work(paths, options, skip, on_skip):
        key = work.key
        chunk.append(
            {
                "path": work.path,
                "size": key.size if key else -1,
                "mtime": key.mtime if key else 0.0,
                "error": work.error or "",
            }
        )
        if len(chunk) >= WORK_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mapped(ray, items: list[dict], actor: type, predictor: Predictor, options: ScanOptions, ray_options, **extra):
    """``items`` through ``actor`` on Ray Data, each actor loading the model once."""
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    actors = ray_options.actors or max(1, cpus // 2)
    batch_size = extra.pop("batch_size", options.batch_size)
    with warnings.catch_warnings():  # Ray names its retry settings deprecated, with no replacement yet
        warnings.simplefilter("ignore", DeprecationWarning)
        return _map_batches(ray, items, actor, predictor, options, actors, cpus, batch_size, extra)


def _map_batches(ray, items, actor, predictor, options, actors: int, cpus: int, batch_size: int, extra: dict):
    return ray.data.from_items(items).map_batches(
        actor,
        fn_constructor_kwargs={
            "model_path": str(predictor.model_path),
            "options": options,
            "engine": predictor.engine,
            "flip_average": predictor.flip_average,
            **extra,
        },
        concurrency=actors,
        num_cpus=max(1, cpus // actors),  # each actor's share of the cores (Ray sizes its thread pools by it)
        batch_size=batch_size,
        batch_format="numpy",
        max_restarts=2,
        max_task_retries=2,
    )


def iter_scan_on_ray(
    paths: Iterable[str | os.PathLike],
    predictor: Predictor,
    options: ScanOptions,
    ray_options: RayOptions,
    skip: Callable[[results.FileKey | None], bool] | None = None,
    on_skip: Callable[[], None] | None = None,
) -> Iterator[list[dict]]:
    """Yield each image's rows (as ``scanner.iter_scan`` does), computed on Ray; each image once."""
    ray = connect(ray_options)
    written: set[str] = set()
    for items in _pending_chunks(paths, options, skip, on_skip):
        # Images per task: one model batch, so a lost task costs little.
        dataset = _mapped(ray, items, ScanActor, predictor, options, ray_options)
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            for text in batch["rows"]:
                rows = json.loads(str(text))
                if rows and rows[0]["path"] not in written:  # a retried task's copy is dropped
                    written.add(rows[0]["path"])
                    yield rows


def iter_outcomes_on_ray(
    paths: Iterable[str | os.PathLike],
    predictor: Predictor,
    options: ScanOptions,
    ray_options: RayOptions,
    location: str,
    prefix: str,
    skip: Callable[[results.FileKey | None], bool] | None = None,
    on_skip: Callable[[], None] | None = None,
) -> Iterator[tuple[str, int, str]]:
    """Scan on Ray with the workers writing the rows as parts of the dataset at ``location`` (names
    starting ``part-{prefix}``); yield each image's (status, faces, error) for the summary."""
    ray = connect(ray_options)
    extra = {"location": location, "prefix": prefix, "batch_size": PART_IMAGES}
    for items in _pending_chunks(paths, options, skip, on_skip):
        dataset = _mapped(ray, items, PartWritingActor, predictor, options, ray_options, **extra)
        for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
            for status, faces, error in zip(batch["status"], batch["faces"], batch["error"]):
                yield str(status), int(faces), str(error) or None
