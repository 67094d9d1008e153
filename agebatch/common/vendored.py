"""Third-party files that ship inside the package (``agebatch/vendor/``), each checked by SHA-256.

One table lists every vendored file with its source, version, license and digest; ``read_vendored``
is the only way code reads one, so a file that was replaced or damaged after install is a one-line
error rather than something agebatch runs or embeds in a page. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from agebatch.common.errors import SetupError

VENDOR_DIR = Path(__file__).resolve().parent.parent / "vendor"


@dataclass(frozen=True)
class Vendored:
    """A file agebatch ships but did not write: where it came from and what it must hash to."""

    name: str
    source: str
    license: str
    license_file: str
    sha256: str


VENDORED = {
    entry.name: entry
    for entry in (
        Vendored(
            name="plotly-basic.min.js",
            source="npm package plotly.js-basic-dist-min 4.1.1 (the plotly.js version the plotly Python package "
            "bundles), https://github.com/plotly/plotly.js: bar, scatter and pie traces only",
            license="MIT",
            license_file="LICENSE.plotly.js.txt",
            sha256="99784e3abfb07b142a15e521a439e6d9addceadb3f79553fd24c72774f0649ba",
        ),
        Vendored(
            name="blazeface_short_range.tflite",
            source="MediaPipe 0.10.14 wheel (pip install mediapipe==0.10.14), file "
            "mediapipe/modules/face_detection/face_detection_short_range.tflite, https://github.com/google/mediapipe",
            license="Apache-2.0",
            license_file="LICENSE.mediapipe.txt",
            sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        ),
        Vendored(
            name="mtcnn_onet.tflite",
            source="MTCNN's O-Net with the weights of the mtcnn 1.0.0 wheel (pip install mtcnn==1.0.0, file "
            "mtcnn/assets/weights/onet.lz4), converted to LiteRT by tools/export_mtcnn_onet.py; "
            "https://github.com/ipazc/mtcnn, weights from https://github.com/kpzhang93/MTCNN_face_detection_alignment",
            license="MIT",
            license_file="LICENSE.mtcnn.txt",
            sha256="d19639cf5603b72ce100b891f379e6638b10d83cb3d1008a1453d56c10c6eec9",
        ),
    )
}


class VendoredFileError(SetupError, RuntimeError):
    """A vendored file is missing or is not the file that was shipped."""


def vendored_path(name: str) -> Path:
    return VENDOR_DIR / VENDORED[name].name


def read_vendored(name: str) -> bytes:
    """The bytes of a vendored file, after checking them against the table's SHA-256."""
    entry = VENDORED[name]
    path = vendored_path(name)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise VendoredFileError(f"{path} is missing ({exc.strerror or exc}): reinstall agebatch") from exc
    if hashlib.sha256(blob).hexdigest() != entry.sha256:
        raise VendoredFileError(f"{path} is not the file agebatch shipped (SHA-256 differs): reinstall agebatch")
    return blob
