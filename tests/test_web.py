"""``agebatch serve``: the pages through Streamlit's AppTest, the library under them, the command's
checks, and (when Chromium is installed) one upload in a real browser."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agebatch import results
from agebatch.web import core
from agebatch.web.server import APP, DETECTOR_ENV, RESULTS_ENV, THUMBNAILS_ENV
from tests.imagegen import FACE_PHOTO, NO_FACE_PHOTOS
from tests.test_report import face, write_results

streamlit = pytest.importorskip("streamlit", reason="the web extra (streamlit) is not installed")
HOSTILE = "<img src=x onerror=alert(1)>.png"


@pytest.fixture
def generated_results(tmp_path):
    """A results file over real images: 3 faces in two folders, one no-face and one error row."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(FACE_PHOTO, tmp_path / folder / "p.png")
    rows = [
        {**face(str(tmp_path / "a" / "p.png"), 0, 30.0, "female"), "x": 182, "y": 64, "width": 83, "height": 107},
        {**face(str(tmp_path / "b" / "p.png"), 0, 62.0, "male"), "x": 182, "y": 64, "width": 83, "height": 107},
        {**face(str(tmp_path / "b" / HOSTILE), 0, 8.0, "male"), "x": 1, "y": 1, "width": 9, "height": 9},
        {"path": str(tmp_path / "b" / "empty.jpg"), "status": "no_face", "faces": 0},
        {"path": str(tmp_path / "a" / "bad.jpg"), "status": "error", "error": "not a recognised image", "faces": 0},
    ]
    return write_results(tmp_path / "results.csv", rows)


def _app(monkeypatch, results_file=None):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(DETECTOR_ENV, "blazeface")  # no TensorFlow needed in the page
    if results_file is None:
        monkeypatch.delenv(RESULTS_ENV, raising=False)
    else:
        monkeypatch.setenv(RESULTS_ENV, str(results_file))
    return AppTest.from_file(str(APP), default_timeout=120)


def test_uploads_give_faces_or_the_results_files_words(monkeypatch):
    at = _app(monkeypatch).run()
    assert not at.exception
    uploader = at.file_uploader(key="photos")
    uploader.set_value(
        [
            ("portrait.png", FACE_PHOTO.read_bytes(), "image/png"),
            ("coffee.jpg", NO_FACE_PHOTOS[0].read_bytes(), "image/jpeg"),
            ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg"),
            (HOSTILE, b"plain text", "image/png"),
        ]
    )
    at.run()
    assert not at.exception
    (table,) = at.dataframe
    faces_shown = table.value
    assert len(faces_shown) == 1 and 0 < float(faces_shown["age"][0]) < 100
    assert any(w.value.startswith("no_face") for w in at.warning)
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and all(e.startswith("error: ") for e in errors)
    headers = [h.value for h in at.subheader]
    assert "\\<img src\\=x onerror\\=alert\\(1\\)\\>\\.png" in headers or any("\\<img" in h for h in headers)
    assert not any("<img" in h.replace("\\<", "") for h in headers)  # shown as text, never as HTML
    assert at.get("download_button")


@pytest.mark.slow
def test_the_results_page_filters_rows(monkeypatch, generated_results):
    monkeypatch.setenv(THUMBNAILS_ENV, "2")  # three faces, two thumbnails: the page says so
    at = _app(monkeypatch, generated_results).run()
    at.radio(key="page").set_value("Browse results").run()
    assert not at.exception
    assert any(t.value.startswith("rows: 5 of 5 (faces: 3)") for t in at.text)
    assert any(c.value.startswith("the first 2 of 3 faces") for c in at.caption)
    at.multiselect(key="genders").set_value(["male"]).run()
    assert any(t.value.startswith("rows: 2 of 5 (faces: 2)") for t in at.text)
    at.multiselect(key="genders").set_value([]).run()
    at.slider(key="age").set_value((20, 100)).run()
    assert any(t.value.startswith("rows: 2 of 5") for t in at.text)
    at.slider(key="age").set_value((0, 100)).run()
    at.multiselect(key="statuses").set_value(["error", "no_face"]).run()
    assert any(t.value.startswith("rows: 2 of 5 (faces: 0)") for t in at.text)
    at.multiselect(key="statuses").set_value([]).run()
    at.multiselect(key="folders").set_value([str(generated_results.parent / "a")]).run()
    assert any(t.value.startswith("rows: 2 of 5 (faces: 1)") for t in at.text)
    assert not at.exception
    thumbnails = [t.value for t in at.text if "\n" in t.value]
    assert any("30 y, female" in t for t in thumbnails)  # cut from the listed image
    (table,) = at.dataframe
    assert table.proto.placeholder == ""  # an error row's empty age shows empty, not "None"


def test_core_filters_and_thumbnails_read_only_listed_images(generated_results, tmp_path):
    frame = core.read_results(generated_results)
    assert len(core.apply_filters(frame, core.Filters(genders=("female",)))) == 1
    assert len(core.apply_filters(frame, core.Filters(min_gender_prob=0.99))) == 0
    listed = core.Thumbnails(frame["path"], generated_results.parent)
    row = frame[frame["status"] == "ok"].iloc[0].to_dict()
    assert listed.face(row).size == (112, 112)
    secret = tmp_path / "secret.png"
    shutil.copy(FACE_PHOTO, secret)
    assert listed.face({**row, "path": str(secret)}) is None  # not in the results file: never opened
    again = core.read_results(core.as_csv(frame))
    assert list(again["age"].dropna()) == list(frame["age"].dropna())
    with pytest.raises(core.ResultsFileError, match="not an agebatch results file"):
        core.read_results(b"name,age\nx,3\n")


def test_serve_checks_before_starting(run_cli, tmp_path, monkeypatch):
    bad = tmp_path / "notes.csv"
    bad.write_text("hello,world\n")
    code, _, err = run_cli("serve", "--results", bad)
    assert code == 2 and "not an agebatch results file" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("serve", "--results", tmp_path / "missing.csv")
    assert code == 2 and "cannot read" in err and err.count("missing.csv") == 1  # the file named once
    monkeypatch.setitem(sys.modules, "streamlit", None)  # as if the extra were not installed
    code, _, err = run_cli("serve")
    assert code == 2 and "pip install 'agebatch[web]'" in err


def test_streamlit_runs_with_safe_settings():
    from agebatch.web.options import ServeOptions
    from agebatch.web.server import streamlit_flags

    flags = streamlit_flags(ServeOptions())
    for expected in (
        "--server.address=127.0.0.1",
        "--server.enableXsrfProtection=true",
        "--browser.gatherUsageStats=false",
        "--server.maxUploadSize=50",
    ):
        assert expected in flags


CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="Debian chromium and chromium-driver are not installed")
def test_a_real_browser_uploads_a_photo_and_sees_the_faces_table(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "HOME": str(tmp_path)}
    server = subprocess.Popen(
        [sys.executable, "-m", "agebatch", "serve", "--port", str(port), "--detector", "blazeface"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        for _ in range(60):  # wait for the server
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 90)
        upload = wait.until(lambda d: d.find_element("css selector", "input[type=file]"))
        upload.send_keys(str(Path(FACE_PHOTO).resolve()))
        wait.until(lambda d: d.find_elements("css selector", "[data-testid=stDataFrame]"))
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert severe == []
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)


def test_results_fixture_is_a_results_file(generated_results):
    assert results.is_results_file(generated_results) == "csv"


def test_hostile_results_rows_and_uploads_are_errors_not_crashes(generated_results, tmp_path):
    frame = core.read_results(generated_results)
    thumbnails = core.Thumbnails(frame["path"], generated_results.parent)
    row = frame[frame["status"] == "ok"].iloc[0].to_dict()
    for box in ({"x": float("inf")}, {"width": -5.0}, {"width": 1e5, "height": 1e5}, {"x": 1e300}, {"y": None}):
        picture = thumbnails.face({**row, **box})
        assert picture is None or picture.size == (112, 112)
    jsonl = b'{"path": "a.jpg", "status": "ok"}\n[1, 2]\n'
    with pytest.raises(core.ResultsFileError):
        core.read_results(jsonl)
    odd = core.analyse_upload("x.\x00png", b"\x00" * 10, predictor=None, detector="blazeface")
    assert odd.status == "error" and odd.error


def test_two_uploads_with_one_name_are_both_shown(monkeypatch):
    at = _app(monkeypatch).run()
    photo = FACE_PHOTO.read_bytes()
    at.file_uploader(key="photos").set_value([("same.png", photo, "image/png"), ("same.png", photo, "image/png")])
    at.run()
    assert not at.exception
    assert len(at.dataframe) == 2


def test_a_loopback_server_answers_only_requests_naming_this_machine():
    from agebatch.web.options import ServeOptions
    from agebatch.web.server import streamlit_flags

    assert "--server.allowedHosts=localhost" in streamlit_flags(ServeOptions())
    assert "--client.showErrorDetails=none" in streamlit_flags(ServeOptions())
    assert not [f for f in streamlit_flags(ServeOptions(host="0.0.0.0")) if "allowedHosts" in f]


def test_streamlit_never_looks_up_this_machines_addresses_on_the_network(monkeypatch):
    """A foreign-origin WebSocket made Streamlit connect to a public address and fetch a public URL
    (synchronously: the server froze without DNS); its addresses are pinned to the one served."""
    import socket as sockets

    from streamlit import net_util
    from streamlit.web.server import server_util

    from agebatch.web.launch import pin_addresses

    def no_network(*args, **kwargs):
        raise AssertionError("Streamlit tried the network")

    monkeypatch.setattr(net_util, "_make_blocking_http_get", no_network)
    monkeypatch.setattr(sockets, "socket", no_network)
    monkeypatch.setattr(net_util, "_internal_ip", None)
    monkeypatch.setattr(net_util, "_external_ip", None)
    pin_addresses("127.0.0.1")
    assert not server_util.is_url_from_allowed_origins("https://evil.example")
    assert server_util.is_url_from_allowed_origins("http://127.0.0.1:8501")
    pin_addresses("::1")  # the page's own origin on IPv6 loopback passes (the page never loaded there)
    assert server_util.is_url_from_allowed_origins("http://[::1]:8501")
    pin_addresses("0.0.0.0")
    assert not server_util.is_url_from_allowed_origins("https://evil.example")


def test_a_port_in_use_is_a_one_line_usage_error(run_cli):
    import socket as sockets

    with sockets.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, _, err = run_cli("serve", "--port", busy.getsockname()[1])
    assert code == 2 and "cannot listen on 127.0.0.1 port" in err and len(err.strip().splitlines()) == 1


def test_shared_predictor_answers_visitors_at_once():
    """Two visitors at once shared one LiteRT interpreter without a lock, and some photos failed."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from agebatch.scanning.predictor import Predictor

    shared = Predictor(Path(__file__).resolve().parent.parent / "models" / "agebatch.keras")
    assert shared.engine == "tflite"
    faces = np.random.default_rng(0).integers(0, 255, (8, shared.image_size, shared.image_size, 3), dtype=np.uint8)
    expected = shared.estimate(faces).ages
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: shared.estimate(faces).ages, range(32)))
    assert all(np.allclose(a, expected, atol=1e-4) for a in answers)


def test_kept_pictures_are_display_sized_and_the_faces_csv_is_spreadsheet_safe(tiny_predictor):
    from PIL import Image

    big = Image.open(FACE_PHOTO).convert("RGB").resize((4096, 4096))
    data = io.BytesIO()
    big.save(data, "PNG")
    result = core.analyse_upload("=1+2.png", data.getvalue(), tiny_predictor, "none")
    assert max(result.picture.size) <= core.DISPLAY_SIDE and max(result.photo.image.size) <= core.DISPLAY_SIDE
    assert result.photo.scale == pytest.approx(2.0) and result.rows[0]["width"] == 4096
    text = core.faces_csv(result.rows)
    assert "\n'=1+2.png," in text and "\n=1+2.png" not in text


def test_a_short_video_upload_gives_one_row_per_person(tmp_path, tiny_predictor):
    pytest.importorskip("av")
    from tests.imagegen import portrait, write_video

    video = write_video(tmp_path / "clip.mp4", [(portrait("10130"), 0, 2, (40, 60), (120, 60), 120)], seconds=2)
    result = core.analyse_upload("clip.mp4", video.read_bytes(), tiny_predictor, "blazeface")
    assert result.status == "ok" and result.picture is None and result.photo is None
    assert len(result.rows) == 1 and result.rows[0]["photo"] == "clip.mp4" and result.rows[0]["t_last"] >= 1.0
    broken = core.analyse_upload("broken.mp4", b"\x00\x00\x00\x18ftypmp42 not really", tiny_predictor, "blazeface")
    assert broken.status == "error" and broken.error
