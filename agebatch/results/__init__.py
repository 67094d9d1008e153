"""The results file: its schema, and writing it so that nothing a user already has is ever damaged.

Guarantees, and how (each in its own module):
- ``writer``: a fresh run writes to a temporary file beside ``--out`` and renames it over ``--out``
  only when it completes (``os.replace`` is atomic), so an earlier results file survives any failure.
  One writer at a time: an exclusive ``flock`` on a hidden lock file beside ``--out``, decided and
  held before anything about ``--out`` is decided.
- ``resume``: ``--resume`` appends. Each image's rows are written with one ``write``, so a killed
  process leaves at most one torn image at the end; the next resume reads the file in one pass and
  cuts exactly that torn image (damage it cannot prove to be one is refused, never cut).
- ``schema``: the columns and formats, and the checks that keep a slip of ``--out`` from replacing a
  photo, a spreadsheet or an input.
- ``merge``: the shards of one scan put together, refusing overlaps.
- ``parquet``, ``store``, ``parquetwriter``: the same promises for Parquet, one file or a dataset of
  parts committed whole (a local folder or an object-storage prefix); ``outputs`` picks the writer.
"""

from agebatch.results.merge import MergeSummary, merge
from agebatch.results.outputs import open_writer, output_exists
from agebatch.results.parquetwriter import DatasetWriter, ParquetFileWriter
from agebatch.results.resume import FIELD_LIMIT, ResumeIndex, index_results, repair_tail
from agebatch.results.schema import (
    ALL_COLUMNS,
    COLUMNS,
    EXTENSIONS,
    EXTRA_COLUMNS,
    FORMATS,
    TEXT_FORMATS,
    FileKey,
    OutputError,
    check_existing,
    check_not_an_input,
    columns_of_header,
    display_path,
    encode_rows,
    excel_safe,
    file_key,
    format_for,
    header,
    is_dataset,
    is_results_file,
    lock_path,
    metadata_path,
    read_rows,
    reason_group,
    results_format,
    write_metadata,
)
from agebatch.results.writer import OutputLock, ResultsWriter

__all__ = [
    "DatasetWriter",
    "ParquetFileWriter",
    "ALL_COLUMNS",
    "COLUMNS",
    "EXTENSIONS",
    "EXTRA_COLUMNS",
    "FIELD_LIMIT",
    "FORMATS",
    "TEXT_FORMATS",
    "FileKey",
    "MergeSummary",
    "OutputError",
    "OutputLock",
    "ResultsWriter",
    "ResumeIndex",
    "check_existing",
    "check_not_an_input",
    "columns_of_header",
    "display_path",
    "encode_rows",
    "excel_safe",
    "file_key",
    "format_for",
    "header",
    "index_results",
    "is_dataset",
    "is_results_file",
    "merge",
    "open_writer",
    "output_exists",
    "read_rows",
    "reason_group",
    "repair_tail",
    "lock_path",
    "metadata_path",
    "write_metadata",
    "results_format",
]
