"""Starting the web app: check everything first, then run Streamlit with settings that keep it local.

Streamlit gets its safety settings as command-line flags, which win over any config file a user might
have lying around: it listens on ``--host`` only (and on a loopback address answers only requests
naming this machine), keeps XSRF and CORS protection on, caps uploads, serves no static folder, shows
no tracebacks to the browser, sends no usage statistics, and opens no browser by itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from agebatch.common.errors import SetupError
from agebatch.web.launch import HOST_ENV
from agebatch.web.options import WEB_EXTRA, ServeOptions

APP = Path(__file__).resolve().parent / "app.py"
RESULTS_ENV = "AGEBATCH_SERVE_RESULTS"  # the results file the pages may read images for
THUMBNAILS_ENV = "AGEBATCH_SERVE_THUMBNAILS"
DETECTOR_ENV = "AGEBATCH_SERVE_DETECTOR"  # the "Try photos" page's first choice
MAX_UPLOAD_ENV = "AGEBATCH_SERVE_MAX_UPLOAD_MB"  # checked by the page too (Streamlit enforces it as well)


class WebUnavailable(SetupError, RuntimeError):
    """Streamlit is not installed; the message names the extra."""


def require_streamlit() -> None:
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        raise WebUnavailable(f"agebatch serve needs Streamlit: {WEB_EXTRA}") from exc


LOOPBACK = {
    "127.0.0.1": ("127.0.0.1", "localhost"),
    "localhost": ("localhost", "127.0.0.1"),
    "::1": ("[::1]", "localhost"),
}


def streamlit_flags(options: ServeOptions) -> list[str]:
    """The Streamlit settings of a server, as flags (they win over any config file). On a loopback
    address only requests naming this machine are served, so a web page that points its own domain at
    127.0.0.1 (DNS rebinding) cannot drive the app."""
    flags = [
        f"--server.address={options.host}",
        f"--server.port={options.port}",
        "--server.headless=true",
        "--server.enableXsrfProtection=true",
        "--server.enableCORS=true",
        f"--server.maxUploadSize={options.max_upload_mb}",
        "--server.enableStaticServing=false",
        "--server.enableAgentApi=false",
        "--server.fileWatcherType=none",
        "--client.showErrorDetails=none",
        "--browser.gatherUsageStats=false",
        "--global.developmentMode=false",
        "--client.toolbarMode=minimal",
        "--theme.base=light",
    ]
    flags += [f"--server.allowedHosts={name}" for name in LOOPBACK.get(options.host, ())]
    return flags


def check_port(options: ServeOptions) -> None:
    """``SetupError`` (one line, exit 2) when the address and port cannot be listened on (in use, not
    this machine's), before Streamlit starts and fails with a traceback."""
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((options.host.strip("[]"), options.port))
        except OSError as exc:
            raise SetupError(f"cannot listen on {options.host} port {options.port}: {exc.strerror or exc}") from exc


def serve(
    options: ServeOptions, results: Path | None = None, model: Path | None = None, detector: str | None = None
) -> int:
    """Run the app until interrupted; returns Streamlit's exit code. Check ``results`` beforehand
    (``core.read_results``) so a bad file is an error before the server starts."""
    require_streamlit()
    env = dict(os.environ)
    env[THUMBNAILS_ENV] = str(options.thumbnails)
    env[MAX_UPLOAD_ENV] = str(options.max_upload_mb)
    env.pop(RESULTS_ENV, None)
    if detector is not None:
        env[DETECTOR_ENV] = detector
    if results is not None:
        env[RESULTS_ENV] = str(results.resolve())
    if model is not None:
        env["AGEBATCH_MODEL"] = str(model.resolve())
    env[HOST_ENV] = options.host
    check_port(options)
    command = [sys.executable, "-m", "agebatch.web.launch", "run", str(APP), *streamlit_flags(options)]
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130
