"""Open a generated report in headless Chromium (Debian's) and check that every chart rendered."""

import shutil

import pytest

from tests.test_report import face, write_results

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER), reason="Debian chromium and chromium-driver are not installed"
)


def test_report_renders_in_a_real_browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from agebatch.reporting.aggregate import build_report, write_report

    rows = [
        face(f"photos/{folder}/{i}.jpg", 0, 5 + i * 7 % 80, "male" if i % 3 else "female")
        for folder in ("party", "office", "<b>odd</b>")
        for i in range(30)
    ]
    for i, row in enumerate(rows):  # capture dates over three months: the time section has charts
        row["taken_at"] = f"2024-{4 + i % 3:02d}-{1 + i % 28:02d}T12:00:00"
    rows.append({"path": "photos/x/<img src=x onerror=alert(1)>.jpg", "status": "error", "error": "bad", "faces": 0})
    report = tmp_path / "report.html"
    write_report(build_report([write_results(tmp_path / "r.csv", rows)]), report)

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get(report.as_uri())
        charts = driver.find_elements("css selector", "div.chart")
        assert len(charts) >= 9  # pyramid, histograms, gender, folders, time (2), confidence (2)
        for chart in charts:
            assert chart.find_elements("css selector", "svg.main-svg"), chart.get_attribute("id")
        assert driver.execute_script("return typeof Plotly") == "object"
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
        assert driver.find_elements("css selector", "img") == []  # the hostile name stayed text
        driver.find_element("css selector", "table.sortable th:nth-child(3)").click()
    finally:
        driver.quit()
