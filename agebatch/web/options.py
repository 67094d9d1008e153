"""Every choice and default of ``agebatch serve``, in one cheap module (the CLI reads them)."""

from __future__ import annotations

from dataclasses import dataclass

from agebatch.common.settings import setting

WEB_EXTRA = "pip install 'agebatch[web]' (from a clone: pip install '.[web]')"


@dataclass(frozen=True)
class ServeOptions:
    """How the local web app listens and what it accepts."""

    host: str = setting("127.0.0.1", "Address to listen on; the default lets only this machine in.")
    port: int = setting(8501, "Port to listen on.")
    max_upload_mb: int = setting(50, "Largest upload accepted, in MB a file.")
    thumbnails: int = setting(48, "Most face thumbnails shown for the filtered rows.")
