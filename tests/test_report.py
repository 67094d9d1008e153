"""Reports from generated results files with known numbers."""

import csv
import json
import shutil

import pytest

from agebatch import results
from agebatch.reporting.aggregate import ReportError, build_report, write_report
from agebatch.reporting.options import ReportOptions

HOSTILE = '<img src=x onerror=alert("x")>.jpg'


def write_results(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=results.ALL_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def face(path, index, age, gender, prob=0.9, faces=1):
    return {
        "path": path,
        "face": index,
        "age": age,
        "gender": gender,
        "gender_prob": prob,
        "status": "ok",
        "faces": faces,
        "error": "",
    }


@pytest.fixture
def known(tmp_path):
    rows = [
        face("root/a/1.jpg", 0, 30.2, "male", faces=2),
        face("root/a/1.jpg", 1, 5.0, "female", faces=2),
        face("root/b/2.jpg", 0, 70.0, "female", prob=0.55),
        face("root/b/c/3.jpg", 0, 40.9, "male"),
        {"path": "root/b/4.jpg", "status": "no_face", "faces": 0},
        {"path": f"root/{HOSTILE}", "status": "error", "error": "not a recognised image", "faces": 0},
        {"path": "root/a/5.jpg", "status": "error", "error": "truncated image: the file is cut short", "faces": 0},
    ]
    return write_results(tmp_path / "r.csv", rows)


def test_numbers(known):
    data = build_report([known])
    o = data["overall"]
    assert (o["images"], o["faces"], o["images_without_face"], o["errors"]) == (6, 4, 1, 2)
    assert o["gender_counts"] == {"male": 2, "female": 2}
    assert o["gender_shares"]["female"] == 0.5
    assert o["median_age"] == 30  # ages 5, 30.2, 40.9, 70 -> middle bins 30 and 40, lower middle
    assert sum(o["age_histogram"]) == 4 and o["age_histogram"][70] == 1
    groups = {g["group"]: g for g in o["age_groups"]}
    assert groups["0-12"]["female"] == 1 and groups["25-34"]["male"] == 1 and groups["65+"]["female"] == 1
    assert o["faces_per_image"] == {"0": 3, "1": 2, "2": 1}
    assert o["low_confidence_faces"] == 1
    assert o["errors_by_reason"] == {"not a recognised image": 1, "truncated image": 1}
    bands = {b["band"]: b for b in o["age_bands"]}  # 5.0, 30.2, 40.9, 70.0
    assert bands["0-12"]["faces"] == bands["65+"]["faces"] == 1 and bands["25-34"]["share"] == 0.25
    folders = {f["folder"]: f for f in o["folders"]}
    assert set(folders) == {"a", "b", TOP_LEVEL()}
    assert folders["a"]["faces"] == 2 and folders["a"]["images"] == 2
    assert folders["b"]["faces"] == 2 and folders["b"]["images"] == 3
    deeper = {f["folder"]: f for f in build_report([known], ReportOptions(depth=2))["overall"]["folders"]}
    assert deeper["b/c"]["faces"] == 1 and deeper["b"]["faces"] == 1


def TOP_LEVEL():
    from agebatch.reporting.aggregate import TOP_LEVEL as name

    return name


def test_min_gender_prob_leaves_low_confidence_out_of_splits(known):
    o = build_report([known], ReportOptions(min_gender_prob=0.6))["overall"]
    assert o["gender_counts"] == {"male": 2, "female": 1}
    assert o["excluded_from_gender_splits"] == 1
    assert o["faces"] == 4  # still counted for age


def test_json_format_via_cli(run_cli, known, tmp_path):
    out = tmp_path / "report.json"
    code, _, err = run_cli("report", known, "--out", out, "--format", "json")
    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["overall"]["faces"] == 4 and data["inputs"] == [str(known)]


def test_html_is_self_contained_and_escaped(run_cli, known, tmp_path):
    out = tmp_path / "report.html"
    code, _, err = run_cli("report", known, "--out", out)
    assert code == 0, err
    page = out.read_text()
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(&quot;x&quot;)&gt;.jpg" in page
    assert page.count("plotly.js (basic - minified) v") == 1  # library embedded once
    assert "cdn." not in page.split("<body>")[1] and 'src="http' not in page
    assert page.count('class="chart"') >= 6
    assert "How to read this" in page and "Age bands" in page
    assert out.stat().st_size < 6_000_000


def test_several_files_are_compared(known, tmp_path):
    second = tmp_path / "second.csv"
    shutil.copy(known, second)
    data = build_report([known, second])
    assert data["overall"]["faces"] == 8
    assert [f["name"] for f in data["files"]] == ["r.csv", "second.csv"]
    write_report(data, tmp_path / "c.html")
    page = (tmp_path / "c.html").read_text()
    assert "All 2 results files together" in page
    assert page.index("Results files compared") < page.index("How to read this") < page.index("<h2>Age</h2>")


def test_files_of_different_sizes_compare_by_shares_and_absolute_folders_keep_their_path(tmp_path):
    from agebatch.reporting.charts import age_figure

    figure = age_figure({"small": [0, 2, 2], "large": [0, 30, 10]}, "t", 1, shares=True)
    small, large = (list(bar.y) for bar in figure.data[:2])
    assert small[:3] == [0, 50, 50] and large[:3] == [0, 75, 25] and sum(small) == sum(large) == 100
    relative = write_results(tmp_path / "rel.csv", [face("photos/a/1.jpg", 0, 30, "male")])
    absolute = write_results(tmp_path / "abs.csv", [face("/tmp/x7/shots/2.jpg", 0, 40, "female")])
    folders = [f["folder"] for f in build_report([relative, absolute])["overall"]["folders"]]
    assert "tmp" not in folders and "/tmp/x7/shots" in folders, folders


def test_empty_and_error_only_inputs(tmp_path):
    empty = write_results(tmp_path / "empty.csv", [])
    data = build_report([empty])
    assert data["overall"]["images"] == 0 and data["overall"]["median_age"] is None
    write_report(data, tmp_path / "e.html")
    assert "No faces were found" in (tmp_path / "e.html").read_text()
    errors = write_results(
        tmp_path / "errors.csv", [{"path": "x.jpg", "status": "error", "error": "bad: x", "faces": 0}]
    )
    data = build_report([errors])
    assert data["overall"]["errors"] == 1 and data["overall"]["faces"] == 0
    write_report(data, tmp_path / "err.html")
    zero_bytes = tmp_path / "zero.csv"
    zero_bytes.write_text("")
    assert build_report([zero_bytes])["overall"]["rows"] == 0


def test_foreign_csv_names_missing_columns(run_cli, tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("name,value\nx,1\n")
    code, _, err = run_cli("report", other, "--out", tmp_path / "r.html")
    assert code == 2
    assert "missing column(s) path, face, age" in err
    with pytest.raises(ReportError, match="not found"):
        build_report([tmp_path / "nope.csv"])


def test_jsonl_input(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(results.encode_rows([face("a/1.jpg", 0, 20.0, "female")], "jsonl"))
    assert build_report([path])["overall"]["gender_counts"]["female"] == 1


def test_existing_report_is_replaced_atomically(known, tmp_path):
    out = tmp_path / "r.html"
    write_report(build_report([known]), out)
    first = out.read_text()
    write_report(build_report([known]), out)  # an earlier report is replaced
    assert out.read_text().startswith("<!DOCTYPE html>") and out.read_text() != "" and first
    assert not list(tmp_path.glob(".*.tmp"))


def test_how_to_read_quotes_each_test_collection_and_warns_about_children(known, tmp_path):
    card = {
        "name": "m",
        "test_metrics": {
            "overall": {"n": 100, "age_mae": 5.0, "gender_accuracy": 0.9},
            "by_age_band": {"0-12": {"age_mae": 2.5, "gender_accuracy": 0.71}, "25-34": {"age_mae": 4.0}},
            "by_source": {
                "utkface": {"overall": {"n": 60, "age_mae": 5.0, "gender_accuracy": 0.93}},
                "fairface": {"overall": {"n": 40, "age_band_accuracy": 0.5, "gender_accuracy": 0.89}},
            },
        },
    }
    out = tmp_path / "report.html"
    write_report(build_report([known], model_card=card), out)
    page = out.read_text()
    assert "utkface (60 test faces): 93.0% gender right, age off by 5.00 years" in page
    assert "fairface (40 test faces): 89.0% gender right, age band right for 50.0%" in page
    assert "only 71.0% of test faces" in page


def test_shares_come_with_intervals_and_a_correction_for_the_models_errors(known, tmp_path):
    from agebatch.reporting.estimates import rogan_gladen, wilson

    card = {
        "name": "m",
        "test_metrics": {
            "overall": {"n": 1000, "age_mae": 5.0, "gender_accuracy": 0.85},
            "confusion": [[90, 10], [20, 80]],  # women called female 80%, men called male 90%
            "by_age_band": {"25-34": {"female_recall": 0.95, "male_recall": 0.97}},
        },
    }
    data = build_report([known], model_card=card)
    overall = data["overall"]
    women, men = overall["gender_counts"]["female"], overall["gender_counts"]["male"]
    female = overall["female_share"]
    assert female["share"] == pytest.approx(women / (women + men))
    assert female["interval"] == pytest.approx(list(wilson(women, women + men)))
    assert female["corrected"] == pytest.approx(rogan_gladen(female["share"], 0.8, 0.9))
    by_group = {g["group"]: g for g in overall["age_groups"]}
    group = by_group["25-34"]
    if group["female"] + group["male"]:
        raw = group["female"] / (group["female"] + group["male"])
        assert group["female_share"]["corrected"] == pytest.approx(rogan_gladen(raw, 0.95, 0.97))
    out = tmp_path / "r.html"
    write_report(data, out)
    page = out.read_text()
    assert "corrected for the model&#x27;s errors" in page or "corrected for the model's errors" in page
    assert "Reading the shares" in page
    no_card = build_report([known])
    assert no_card["overall"]["female_share"]["corrected"] is None  # no error rates: no correction claimed


def test_charts_have_whole_number_axes_a_pyramid_and_no_lonely_single_bars(tmp_path):
    from agebatch.reporting.charts import count_axis, last_age
    from agebatch.reporting.html import render

    assert count_axis(3)["dtick"] == 1 and count_axis(3)["tickformat"] == ",d"
    hist = [0] * 121
    hist[31] = 2
    assert last_age({"all": hist}) == 34  # histograms stop at the last 5-year bin holding data
    one_folder = tmp_path / "one.csv"
    rows = [face("only/1.jpg", 0, 30.0, "male"), face("only/2.jpg", 0, 41.0, "female")]
    one_folder.write_text(results.header("csv") + results.encode_rows(rows, "csv"))
    page = render(build_report([one_folder]))
    assert "Population pyramid" in page
    assert "All faces are in one folder" in page


def test_the_time_section_counts_faces_per_day_and_says_when_dates_are_missing(tmp_path):
    dated = tmp_path / "dated.csv"
    rows = []
    for day, genders in {"2024-06-01": ["male", "female", "female"], "2024-06-03": ["male"]}.items():
        for i, gender in enumerate(genders):
            row = face(f"p/{day}-{i}.jpg", 0, 30.0 + i, gender)
            row["taken_at"] = f"{day}T10:00:0{i}"
            rows.append(row)
    undated = face("p/undated.jpg", 0, 50.0, "male")
    dated.write_text(results.header("csv") + results.encode_rows([*rows, undated], "csv"))
    time = build_report([dated])["overall"]["time"]
    assert time["granularity"] == "day" and time["undated_faces"] == 1
    by_period = {p["period"]: p for p in time["periods"]}
    assert by_period["2024-06-01"]["faces"] == 3 and by_period["2024-06-03"]["faces"] == 1
    assert by_period["2024-06-01"]["female_share"]["share"] == pytest.approx(2 / 3)
    assert by_period["2024-06-01"]["median_age"] == 31
    page = tmp_path / "r.html"
    write_report(build_report([dated]), page)
    assert "per day (when the photos were taken)" in page.read_text()
    old = tmp_path / "old.csv"  # written before the column existed
    old_columns = results.ALL_COLUMNS[: results.ALL_COLUMNS.index("taken_at")]
    old.write_text(",".join(old_columns) + "\n" + results.encode_rows(rows, "csv", columns=old_columns))
    assert "written before" in build_report([old])["overall"]["time"]["reason"]


def test_by_chooses_and_orders_the_comparisons(tmp_path):
    from typer.testing import CliRunner

    from agebatch.cli import app
    from agebatch.reporting.html import render

    dated = tmp_path / "dated.csv"
    rows = []
    for i, (folder, day) in enumerate([("a", "2024-06-01"), ("a", "2024-06-02"), ("b", "2024-06-02")]):
        row = face(f"{folder}/{i}.jpg", 0, 30.0 + i, "female" if i else "male")
        row["taken_at"] = f"{day}T09:00:00"
        rows.append(row)
    dated.write_text(results.header("csv") + results.encode_rows(rows, "csv"))
    both = render(build_report([dated]))
    assert both.index("<h2>Folders</h2>") < both.index("<h2>Over time</h2>")
    assert "<th>day</th>" in both  # the per-period table
    dates_first = render(build_report([dated], ReportOptions(by=["taken_at", "folder"])))
    assert dates_first.index("<h2>Over time</h2>") < dates_first.index("<h2>Folders</h2>")
    dates_only = render(build_report([dated], ReportOptions(by=["taken_at"])))
    assert "<h2>Over time</h2>" in dates_only and "<h2>Folders</h2>" not in dates_only
    with pytest.raises(ReportError, match="cannot break down by camera"):
        build_report([dated], ReportOptions(by=["camera"]))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["report", str(dated), "--by", "taken_at", "--format", "json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["settings"]["by"] == ["taken_at"]
    bad = CliRunner().invoke(app, ["report", str(dated), "--by", "camera", "--out", str(tmp_path / "x.html")])
    assert bad.exit_code == 2


def test_the_report_embeds_the_checked_small_plotly_bundle_and_refuses_a_changed_one(tmp_path, monkeypatch):
    from agebatch.common import vendored

    results_file = tmp_path / "r.csv"
    results_file.write_text(results.header("csv") + results.encode_rows([face("a/1.jpg", 0, 30.0, "male")], "csv"))
    out = tmp_path / "r.html"
    write_report(build_report([results_file]), out)
    page = out.read_text()
    assert "plotly.js (basic - minified)" in page and len(page) < 2_000_000
    changed = tmp_path / "vendor"
    changed.mkdir()
    (changed / "plotly-basic.min.js").write_text("alert('not plotly')")
    monkeypatch.setattr(vendored, "VENDOR_DIR", changed)
    with pytest.raises(ReportError, match="not the file agebatch shipped"):
        write_report(build_report([results_file]), tmp_path / "r2.html")
    assert not (tmp_path / "r2.html").exists()


def test_a_counter_added_to_the_tally_is_summed_across_files(known, tmp_path):
    """Tallies merge by the type of each field: numbers, arrays, counters and per-folder dicts all add up,
    so a multi-file report never reads 0 for a counter the merge does not know by name."""
    from agebatch.reporting.tally import Tally, tally_file

    first, second = tally_file(known), tally_file(known)
    total = Tally(name="all files")
    total.merge(first)
    total.merge(second)
    assert total.name == "all files"
    assert (total.rows, total.images, total.faces, total.errors) == (14, 12, 8, 4)
    assert (total.ages == 2 * first.ages).all()
    assert total.error_reasons == first.error_reasons + second.error_reasons
    assert {name: f.faces for name, f in total.folders.items()} == {
        name: 2 * f.faces for name, f in first.folders.items()
    }
    assert first.rows == 7  # merging copies: the parts keep their own counts


def test_rows_in_memory_give_the_report_of_their_file(known):
    """The web app tallies its filtered rows without writing them to a file first: same numbers."""
    from agebatch.web.core import read_results, report_data

    from_file = build_report([known])["overall"]
    in_memory = report_data(read_results(known))["overall"]
    for key in ("images", "faces", "errors", "gender_counts", "age_histogram", "age_groups", "folders"):
        assert in_memory[key] == from_file[key], key


@pytest.mark.parametrize("depth", [1, 2])
def test_many_folders_are_folded_to_the_reports_depth_with_the_same_groups(tmp_path, monkeypatch, depth):
    """Memory follows the folders the report shows: past a limit, per-folder counts are folded to the
    requested depth while reading, and the report's folder groups come out the same."""
    from agebatch.reporting import tally as tallying

    rows = [face(f"root/x{i % 4}/y{i}/z/{i}.jpg", 0, 20 + i % 50, ("male", "female")[i % 2]) for i in range(240)]
    rows.append(face("elsewhere/top.jpg", 0, 33.0, "male"))  # moves the common root up late in the file
    source = write_results(tmp_path / "r.csv", rows)
    unfolded = build_report([source], ReportOptions(depth=depth))["overall"]["folders"]
    monkeypatch.setattr(tallying, "FOLDER_LIMIT", 30)
    monkeypatch.setattr(tallying, "CHUNK_ROWS", 50)
    folded_tally = tallying.tally_file(source, ReportOptions(depth=depth))
    assert len(folded_tally.folders) <= 30 + 50
    assert build_report([source], ReportOptions(depth=depth))["overall"]["folders"] == unfolded
