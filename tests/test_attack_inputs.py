"""Attacks on the inputs: signals and blocking files, terminal injection, memory and disk bombs, and
the smaller breaks. Each test is an attack that once broke agebatch."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import threading
import time
import zipfile
import zlib

import pytest

from agebatch.common.text import one_line, printable
from agebatch.scanning import images
from tests.imagegen import noise_image


def test_control_characters_in_names_are_made_visible():
    hostile = "a\x1b]52;c;ZXZpbA==\x07b\x1b[2J\u202ec\nd"
    shown = printable(hostile)
    assert all(ch not in shown for ch in ("\x1b", "\x07", "\u202e", "\n"))
    assert "\\x1b" in shown and "\\u202e" in shown
    assert "\x1b" not in one_line(ValueError(hostile))


def test_error_messages_and_predict_tables_escape_names(run_cli, tmp_path):
    code, _, err = run_cli("scan", tmp_path / "missing\x1b[31m.jpg", "--out", tmp_path / "r.csv")
    assert code == 2 and "\x1b" not in err and "\\x1b" in err
    (tmp_path / "[bold]x[").mkdir()
    photo = tmp_path / "[bold]x[" / "red].jpg"  # the path holds "[/red]": Rich markup once crashed predict
    noise_image().save(photo)
    code, out, err = run_cli("predict", photo, "--detector", "none")
    assert code == 0, err
    assert "[/red]" in out


def test_predict_reports_an_unreadable_photo_and_goes_on(run_cli, tmp_path):
    good = tmp_path / "good.jpg"
    noise_image().save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    code, out, err = run_cli("predict", bad, good, "--detector", "none", "--json")
    assert code == 0
    assert "bad.jpg" in err and "not a recognised image" in err
    import json

    records = json.loads(out)
    assert records[0]["path"].endswith("bad.jpg") and "error" in records[0]
    assert records[1]["path"].endswith("good.jpg") and "age" in records[1]
    code, _, _ = run_cli("predict", bad, "--detector", "none")
    assert code == 2


def test_a_fifo_where_a_photo_was_does_not_hang(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    outcome = {}

    def decode():
        try:
            images.decode(fifo)
        except images.ImageError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=decode, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert outcome == {"error": "not a regular file"}


def _png(width, height, bit_depth, colour_type):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    head = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def test_a_16_bit_greyscale_bomb_under_the_pixel_limit_is_refused_by_bytes(tmp_path):
    path = tmp_path / "grey16.png"
    path.write_bytes(_png(10_000, 10_000, 16, 0))  # 100 MP: under the pixel limit, 1 GB+ to decode
    assert path.stat().st_size < 1000
    with pytest.raises(images.ImageError, match="too large"):
        images.decode(path)


def _keras_archive(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_model_archives_are_checked_before_keras_reads_them(tmp_path, run_cli):
    from agebatch.modelfile.load import ModelLoadError, check_model_file

    bomb = _keras_archive(tmp_path / "bomb.keras", {"config.json": b" " * (40 << 20), "metadata.json": b"{}"})
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ModelLoadError, match="unpacks to"):
        check_model_file(bomb)
    payload = _keras_archive(tmp_path / "extra.keras", {"config.json": b"{}", "payload.bin": b"x"})
    with pytest.raises(ModelLoadError, match="payload.bin"):
        check_model_file(payload)
    code, _, err = run_cli("scan", tmp_path, "--out", tmp_path / "r.csv", "--model", bomb)
    assert code == 2 and "unpacks to" in err


def test_a_malformed_model_card_is_a_note_not_a_failure(tmp_path, run_cli):
    from agebatch import results

    source = tmp_path / "r.csv"
    source.write_text(results.header("csv"))
    card = tmp_path / "card.json"
    card.write_text('{"test_metrics": {"overall": [1, 2], "by_age_band": "x"}, "name": 5}')
    code, _, err = run_cli("report", source, "--out", tmp_path / "report.html", "--model-card", card)
    assert code == 0, err
    assert "could not be read" in (tmp_path / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143)])
def test_sigterm_stops_like_ctrl_c_and_keeps_the_rows(tmp_path, tiny_model_path, signum, code):
    from tests.test_hostile import _env, _run_scan, _scan_command, _wait_for_rows, read_csv

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(120):
        noise_image((256, 256), seed=i).save(folder / f"img_{i:04d}.jpg", quality=90)
    out = tmp_path / "results.csv"
    process = subprocess.Popen(
        _scan_command(folder, out), env=_env(tiny_model_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert _wait_for_rows(out, 5, process)
    process.send_signal(signum)
    started = time.time()
    _, stderr = process.communicate(timeout=60)
    assert time.time() - started < 15
    assert process.returncode == code, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    kept = read_csv(out)
    assert 0 < len(kept) < 120
    assert _run_scan(folder, out, tiny_model_path, "--resume").returncode == 0
    rows = read_csv(out)
    assert len(rows) == len({r["path"] for r in rows}) == 120


def test_a_card_with_absurd_numbers_is_a_note_too(tmp_path, run_cli):
    from agebatch import results

    source = tmp_path / "r.csv"
    source.write_text(results.header("csv"))
    card = tmp_path / "card.json"
    card.write_text('{"test_metrics": {"overall": {"age_mae": 1' + "0" * 400 + ', "gender_accuracy": 0.9}}}')
    code, _, err = run_cli("report", source, "--out", tmp_path / "report.html", "--model-card", card)
    assert code == 0, err


def test_sigterm_in_a_command_without_its_own_interrupt_handling_exits_143(monkeypatch):
    """Typer turns the KeyboardInterrupt that SIGTERM raises into exit 130 before main() sees it
    (``train``, ``evaluate``: only ``scan`` maps it itself); the documented code is 143."""
    from agebatch import cli
    from agebatch.cli import _app

    def interrupted_by_sigterm(standalone_mode):
        with pytest.raises(KeyboardInterrupt):
            _app.on_sigterm(signal.SIGTERM, None)
        return 130

    monkeypatch.setattr(cli, "app", interrupted_by_sigterm)
    monkeypatch.setattr(_app, "RECEIVED", {})
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:  # main() installs its own handlers and ignores both signals once done
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert exited.value.code == 143
