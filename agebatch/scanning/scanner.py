"""A scan: discovery -> decode -> detect -> batched prediction -> rows, in discovery order.

Decoding and detection run in a thread pool a window ahead of the model; Pillow and TensorFlow both
release the GIL, so the model's batches overlap with the next images' decoding. Only that window is
held in memory (faces as 128x128 arrays), so memory does not grow with the size of the folder.

When inference alone keeps every core busy (pre-cropped faces, ``--detector none``), overlapping
cannot hide decoding: it is extra work on the same cores. benchmarks/throughput.py measures that
cost per crop and the ceiling it sets.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from agebatch import results
from agebatch.common import urls
from agebatch.common.text import count
from agebatch.scanning import detectors, discovery
from agebatch.scanning.options import DEFAULT_DETECTOR, TENSORFLOW_DETECTORS, OutputOptions, ScanOptions
from agebatch.scanning.pipeline import Pipeline, Work, pending_work, rows_of
from agebatch.scanning.predictor import Predictor

if TYPE_CHECKING:
    import pandas as pd

    from agebatch.scanning.distributed import RayOptions


@dataclass
class ScanSummary:
    images: int = 0
    faces: int = 0
    no_face: int = 0
    errors: int = 0
    skipped: int = 0  # already in --out (resume)
    changed: int = 0  # of those, files changed since they were scanned (not scanned again: each image once)
    seconds: float = 0.0
    error_reasons: Counter = field(default_factory=Counter)
    interrupted: bool = False

    def as_dict(self) -> dict:
        """The summary for scripts (``--summary-json``)."""
        return {
            "images": self.images,
            "faces": self.faces,
            "no_face": self.no_face,
            "errors": self.errors,
            "errors_by_reason": dict(self.error_reasons.most_common()),
            "skipped": self.skipped,
            "changed": self.changed,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
        }

    def add(self, rows: list[dict]) -> None:
        self.count(rows[0]["status"], len(rows), rows[0]["error"])

    def count(self, status: str, faces: int, error: str | None) -> None:
        """One image's outcome: its status, its number of rows (faces when ``ok``), its error."""
        self.images += 1
        if status == "ok":
            self.faces += faces
        elif status == "no_face":
            self.no_face += 1
        else:
            self.errors += 1
            self.error_reasons[results.reason_group(error)] += 1

    def line(self) -> str:
        if not self.images and not self.skipped:
            return "no images found"
        text = (
            f"{count(self.images, 'image')}, {count(self.faces, 'face')}, {self.no_face} without a face, "
            f"{count(self.errors, 'error')} in {self.seconds:.1f} s"
        )
        if self.skipped:
            text += f" ({self.skipped} already done, skipped)"
        if self.changed:
            text += (
                f" ({self.changed} changed since they were scanned, kept as scanned: scan into a new file to refresh)"
            )
        if self.error_reasons:
            text += "; errors: " + ", ".join(f"{n} {r}" for r, n in self.error_reasons.most_common())
        return text


def iter_scan(
    paths: Iterable[str | os.PathLike],
    predictor: Predictor,
    options: ScanOptions | None = None,
    skip: Callable[[results.FileKey | None], bool] | None = None,
    on_skip: Callable[[], None] | None = None,
) -> Iterator[list[dict]]:
    """Yield each image's rows (a list of dicts) in discovery order.

    ``skip(key)`` lets ``--resume`` leave out images already in the output. The inputs are not checked
    here: ``check_inputs`` runs once, in whichever entry point started the scan.
    """
    options = options or ScanOptions()
    if options.detector in TENSORFLOW_DETECTORS:
        from agebatch.common import quiet

        quiet.load_tensorflow(f"--detector {options.detector}")  # once here, not in every worker thread
    pipeline = Pipeline(options, predictor.image_size, predictor)
    jobs = options.jobs or os.cpu_count() or 1
    window = max(2 * options.batch_size, 4 * jobs)
    works = pending_work(paths, options, skip, on_skip)
    in_flight: deque[Future] = deque()
    ready: deque[Work] = deque()  # processed, waiting for the model, in order
    pending_faces = 0

    def flush() -> Iterator[list[dict]]:
        nonlocal pending_faces
        crops = [c for w in ready for c in w.crops]
        estimates = predictor.estimate(np.stack(crops)) if crops else None
        offset = 0
        while ready:
            work = ready.popleft()
            n = len(work.crops)
            yield rows_of(work, None if estimates is None else estimates.part(offset, offset + n))
            offset += n
        pending_faces = 0

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="agebatch-decode") as pool:
        try:
            exhausted = False
            while not exhausted or in_flight:
                while not exhausted and len(in_flight) < window:
                    work = next(works, None)
                    if work is None:
                        exhausted = True
                        break
                    in_flight.append(pool.submit(pipeline.process, work))
                if not in_flight:
                    break
                work = in_flight.popleft().result()
                ready.append(work)
                pending_faces += len(work.crops)
                if pending_faces >= options.batch_size or (not ready[0].crops and pending_faces == 0):
                    yield from flush()
            yield from flush()
        except BaseException:
            pipeline.stopping.set()  # a video being scanned stops at its next frame
            for future in in_flight:
                future.cancel()
            raise


def scan(
    paths: Iterable[str | os.PathLike] | str | os.PathLike,
    model: str | os.PathLike | Predictor | None = None,
    detector: str = DEFAULT_DETECTOR,
    **options,
) -> pd.DataFrame:
    """Scan files and folders and return one row per face (and per face-less or broken image).

    >>> from agebatch import scan
    >>> frame = scan("examples/photos")            # doctest: +SKIP
    >>> frame[["path", "age", "gender"]].head()    # doctest: +SKIP
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    opts = ScanOptions(detector=detector, **options)
    check_inputs(paths, opts)
    predictor = model if isinstance(model, Predictor) else Predictor(model, opts.batch_size)
    rows = [row for group in iter_scan(paths, predictor, opts) for row in group]
    import pandas as pd  # here, not at import: a scan from the command line never needs it

    return pd.DataFrame(rows, columns=list(results.ALL_COLUMNS))


def provenance(predictor: Predictor, options: ScanOptions | None) -> dict:
    """What made a results file: the tool's version, the model (name and SHA-256) and the settings."""
    from dataclasses import asdict

    from agebatch import __version__
    from agebatch.modelfile.twin import file_sha256

    options = options or ScanOptions()
    settings = asdict(options)
    settings["shard"] = str(options.shard) if options.shard else None
    settings["min_score"] = options.score_threshold()  # the threshold used, not "the detector's own"
    return {
        "agebatch": __version__,
        "model": predictor.model_path.name,
        "model_sha256": file_sha256(predictor.model_path),
        "engine": predictor.engine,
        "flip_average": predictor.flip_average,
        "options": settings,
    }


def check_inputs(paths: list, options: ScanOptions, listed: bool = False) -> None:
    """Before any work: every path exists and the detector's model files are the shipped ones, so a
    typo or a damaged install is one clear error, not an error row for every image. Paths ``listed``
    on stdin are not checked: one that vanished is an error row (``scanning.job.run_scan``)."""
    if not listed:
        discovery.check_paths(paths)
    detectors.check_detector(options.detector)


def scan_to_stream(
    paths: Iterable[str | os.PathLike],
    stream,
    predictor: Predictor,
    options: ScanOptions | None = None,
    fmt: str = "csv",
    excel: bool = False,
    progress: Callable[[ScanSummary], None] | None = None,
) -> ScanSummary:
    """Scan and write the rows to an open text ``stream`` (``--out -``: standard output) as they come:
    no temporary file, no lock, no resume; each image's rows in one write."""
    paths = list(paths)
    check_inputs(paths, options or ScanOptions())
    return write_to_stream(paths, stream, predictor, options, fmt, excel, progress)


def write_to_stream(
    paths: list,
    stream,
    predictor: Predictor,
    options: ScanOptions | None,
    fmt: str,
    excel: bool,
    progress: Callable[[ScanSummary], None] | None,
) -> ScanSummary:
    """``scan_to_stream`` once the inputs are checked."""
    summary = ScanSummary()
    started = time.monotonic()
    try:
        stream.write(results.header(fmt))
        for rows in iter_scan(paths, predictor, options):
            stream.write(results.encode_rows(rows, fmt, excel))
            stream.flush()
            summary.add(rows)
            if progress:
                progress(summary)
    except BrokenPipeError:
        raise  # the reader went away (``| head``): the command line stops quietly
    except OSError as exc:  # a full disk behind ``> file``, an output device that fails
        raise results.OutputError(f"cannot write standard output: {exc.strerror or exc}") from exc
    summary.seconds = time.monotonic() - started
    return summary


def scan_to_file(
    paths: Iterable[str | os.PathLike],
    output: OutputOptions | str | os.PathLike,
    predictor: Predictor,
    options: ScanOptions | None = None,
    progress: Callable[[ScanSummary], None] | None = None,
    ray: RayOptions | None = None,
) -> ScanSummary:
    """Scan into a results file with the safety guarantees of ``results.ResultsWriter``; with ``ray``
    the images are processed on a Ray cluster (``distributed``), the rows written here all the same.

    ``output`` is the results file's path, or ``OutputOptions`` for its format, ``--resume`` and the
    rest. On KeyboardInterrupt the summary (``interrupted=True``) is attached to the exception as
    ``exc.summary`` and the exception re-raised, after the writer has saved what it may.
    """
    paths = list(paths)
    options = options or ScanOptions()
    output = output if isinstance(output, OutputOptions) else OutputOptions(out=os.fspath(output))
    check_inputs(paths, options)
    fmt = results.format_for(output.out, output.format)
    return write_to_file(paths, predictor, options, output, fmt, progress, ray)


def write_to_file(
    paths: list,
    predictor: Predictor,
    options: ScanOptions,
    output: OutputOptions,
    fmt: str,
    progress: Callable[[ScanSummary], None] | None,
    ray: RayOptions | None,
) -> ScanSummary:
    """``scan_to_file`` once the inputs are checked and the format is known."""
    out = output.out
    results.check_not_an_input(out, paths)
    summary = ScanSummary()
    started = time.monotonic()

    def skipped() -> None:
        summary.skipped += 1

    owner = f"shard{options.shard.index}of{options.shard.count}" if options.shard else ""
    with results.open_writer(out, fmt, output.resume, output.excel_safe, output.wait, owner) as writer:
        try:
            skip = writer.is_done if output.resume else None
            for status, faces, error in _outcomes(paths, predictor, options, ray, writer, skip, skipped):
                summary.count(status, faces, error)
                if progress:
                    progress(summary)
            summary.seconds = time.monotonic() - started
            summary.changed = writer.changed
            if summary.images or summary.skipped or not writer.existed:
                writer.commit(provenance(predictor, options))
            # else: a fresh run that found nothing (an unmounted share) leaves an earlier FILE as it was
        except KeyboardInterrupt as exc:
            summary.interrupted = True
            summary.seconds = time.monotonic() - started
            exc.summary = summary  # type: ignore[attr-defined]
            raise
    return summary


def _outcomes(paths, predictor, options, ray, writer, skip, on_skip) -> Iterator[tuple[str, int, str | None]]:
    """Scan, write each image's rows through ``writer``, and yield each image's (status, rows, error).
    On Ray into a Parquet dataset the workers write the parts themselves; only the outcomes come back."""
    if ray is not None and isinstance(writer, results.DatasetWriter):
        from agebatch.scanning.distributed import iter_outcomes_on_ray

        location = writer.out if urls.is_url(writer.out) else os.path.abspath(writer.out) + "/"  # workers' own cwd
        prefix = writer.part_prefix
        yield from iter_outcomes_on_ray(paths, predictor, options, ray, location, prefix, skip, on_skip)
        return
    if ray is None:
        groups = iter_scan(paths, predictor, options, skip=skip, on_skip=on_skip)
    else:
        from agebatch.scanning.distributed import iter_scan_on_ray

        groups = iter_scan_on_ray(paths, predictor, options, ray, skip=skip, on_skip=on_skip)
    for rows in groups:
        writer.write_image(rows)
        yield rows[0]["status"], len(rows), rows[0]["error"]
