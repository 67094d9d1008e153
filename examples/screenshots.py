"""The README's pictures of the demo (needs Chromium, chromedriver and the web extra).

    python examples/screenshots.py

Scans ``examples/photos`` into a temporary results file, writes its report and Grad-CAM example
(``examples/report.png``: the top of the report; ``examples/explained_portrait.png``), then starts
``agebatch serve`` on a free local port with the results, uploads the group photo on "Try photos",
opens "Browse results", and writes ``examples/web_try_photos.png`` and ``examples/web_browse_results.png``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.csv"
        agebatch = [sys.executable, "-m", "agebatch"]
        subprocess.run([*agebatch, "scan", str(HERE / "photos"), "--out", str(results), "-q"], check=True)
        report = Path(tmp) / "report.html"
        subprocess.run([*agebatch, "report", str(results), "--out", str(report), "-q"], check=True)
        portrait = HERE / "photos" / "portraits" / "2332 female 60-69.jpg"
        explained = HERE / "explained_portrait.png"
        subprocess.run([*agebatch, "explain", str(portrait), "--out", str(explained)], check=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([*agebatch, "serve", "--port", str(port), "--results", str(results)])
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in ("--headless=new", "--no-sandbox", "--window-size=1400,1500", f"--user-data-dir={tmp}/profile"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
        try:
            driver.set_window_size(1200, 1000)
            driver.get(report.as_uri())
            time.sleep(3)
            driver.save_screenshot(str(HERE / "report.png"))
            driver.set_window_size(1400, 1500)
            time.sleep(1)
            driver.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(driver, 180)
            upload = wait.until(lambda d: d.find_element("css selector", "input[type=file]"))
            upload.send_keys(str(HERE / "photos" / "group" / "four people.jpg"))
            wait.until(lambda d: d.find_elements("css selector", "[data-testid=stDataFrame]"))
            time.sleep(3)
            driver.save_screenshot(str(HERE / "web_try_photos.png"))
            driver.find_element("xpath", "//label[.//p[text()='Browse results']]").click()
            wait.until(lambda d: d.find_elements("css selector", ".js-plotly-plot"))
            time.sleep(5)
            driver.save_screenshot(str(HERE / "web_browse_results.png"))
            for name in ("report", "web_try_photos", "web_browse_results"):  # a palette keeps the files small
                path = HERE / f"{name}.png"
                picture = Image.open(path).convert("RGB")
                picture.quantize(colors=128, dither=Image.Dither.NONE).save(path, optimize=True)
        finally:
            driver.quit()
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
