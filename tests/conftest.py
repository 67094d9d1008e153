from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
UTKFACE = SHARED / "datasets" / "utkface"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A small random network with the agebatch interface (64x64 input): fast, and outputs are real."""
    from agebatch.common import quiet

    quiet.load_tensorflow()
    from agebatch.training.network import build_model

    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    build_model(64, None, alpha=0.35, augment=False).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_predictor(tiny_model_path):
    from agebatch.scanning.predictor import Predictor

    return Predictor(tiny_model_path, batch_size=8)


@pytest.fixture
def run_cli(capsys, tiny_model_path, monkeypatch):
    """Run the agebatch CLI in-process (TensorFlow loads once per test session); returns (code, out, err)."""
    from agebatch import cli

    monkeypatch.setenv("AGEBATCH_MODEL", str(tiny_model_path))

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["agebatch", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
        captured = capsys.readouterr()
        code = exit_info.value.code
        return (0 if code is None else int(code)), captured.out, captured.err

    return run


def needs_utkface():
    return pytest.mark.skipif(not UTKFACE.is_dir(), reason="../shared/datasets/utkface is not present")
