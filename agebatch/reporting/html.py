"""Rendering the report's data as one self-contained HTML file.

Plotly's JavaScript is embedded once, every chart is a small JSON spec, and every string that comes
from data (file and folder names, error messages) is escaped twice over: HTML-escaped where it lands
in markup, and with ``<``, ``>`` and ``&`` as ``\\u`` escapes inside the scripts, so no name can close a
``<script>`` element or inject markup into a chart label.
"""

from __future__ import annotations

import plotly.graph_objects as go

from agebatch.common.htmlpage import escaped, page, percent_cell
from agebatch.common.vendored import read_vendored
from agebatch.reporting.caveats import how_to_read
from agebatch.reporting.charts import (
    COLOURS,
    Charts,
    age_figure,
    count_axis,
    faces_and_median_age,
    pyramid_figure,
)
from agebatch.reporting.options import BREAKDOWNS, ReportOptions

PLOTLY_BUNDLE = "plotly-basic.min.js"  # bar and scatter are all the report draws

FOLDER_CHART_CAP = 40
FOLDER_TABLE_CAP = 2000

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1.5em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.meta{color:#666;font-size:.9em} .cards{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.7em 1.1em;min-width:8em}
.card b{display:block;font-size:1.6em} table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right} th{background:#f4f4f4;cursor:pointer}
td:first-child,th:first-child{text-align:left} .chart{width:100%;min-height:380px}
.note{background:#f8f8f0;border-left:4px solid #cc9;padding:.6em 1em} code{background:#f2f2f2;padding:0 .2em}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, index){
  th.addEventListener('click', function(){
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.from(body.rows), asc = th.dataset.asc !== 'true';
    rows.sort(function(a, b){
      var x = a.cells[index].dataset.v || a.cells[index].textContent, y = b.cells[index].dataset.v || b.cells[index].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    th.dataset.asc = asc; rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _num(x, digits=1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _cards(summary: dict, files: int = 0) -> str:
    """The headline figures; for several results files, said to be all of them together."""
    items = [
        ("images scanned", summary["images"]),
        ("faces found", summary["faces"]),
        ("images without a face", summary["images_without_face"]),
        ("errors", summary["errors"]),
        ("median age", summary["median_age"] if summary["median_age"] is not None else "–"),
        ("female share (95% interval)", _share_text(summary.get("female_share"))),
    ]
    if summary.get("people_in_videos"):  # a video's rows are people, each counted once however long seen
        items[1:2] = [
            ("faces found in photos", summary["faces"] - summary["people_in_videos"]),
            (f"people seen in {summary['videos']} video(s)", summary["people_in_videos"]),
            ("seconds on screen per person", summary["seconds_seen_per_person"]),
        ]
    pooled = f"<p class='meta'>All {files} results files together:</p>" if files > 1 else ""
    return (
        pooled
        + '<div class="cards">'
        + "".join(f'<div class="card"><b>{escaped(v)}</b>{escaped(k)}</div>' for k, v in items)
        + "</div>"
    )


def _share_text(estimate: dict | None, corrected: bool = False) -> str:
    """``42.0% (32.8–51.8%)``: a share with its 95 % interval (the corrected one with ``corrected``)."""
    if not estimate or estimate.get("share") is None:
        return "–"
    share, interval = (
        (estimate["corrected"], estimate["corrected_interval"])
        if corrected
        else (estimate["share"], estimate["interval"])
    )
    if share is None:
        return "–"
    return f"{100 * share:.1f}% ({100 * interval[0]:.1f}–{100 * interval[1]:.1f}%)"


SHARES_EXPLAINED = (
    "<p class='meta'><b>Reading the shares.</b> <em>Counted</em> is the share of faces the model called female, "
    "with a 95% interval for the sampling error of that many faces (Wilson). <em>Corrected</em> also undoes the "
    "model's known gender errors, as measured on held-out faces in its model card (per age group where the card "
    "has them): it estimates the share of women among the people pictured, not among the model's calls. Its "
    "interval covers sampling error only, not the uncertainty of the model's error rates.</p>"
)


def _table(headers: list[str], rows: list[list], sortable: bool = False, values: list[list] | None = None) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{escaped(h)}</th>" for h in headers)
    body = []
    for r, row in enumerate(rows):
        cells = []
        for c, cell in enumerate(row):
            sort_value = values[r][c] if values else None
            attr = f' data-v="{escaped(sort_value)}"' if sort_value is not None else ""
            cells.append(f"<td{attr}>{escaped(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


BANDS_EXPLAINED = (
    "<p class='meta'><b>Reading the age bands.</b> <em>Counted</em> is the share of faces whose estimated age "
    "falls in the band, with a 95% interval for sampling error (Wilson). <em>Corrected</em> undoes the model's "
    "measured band errors (which true bands it reads as which, on held-out faces with exact ages, from its card): "
    "it estimates the shares of the people pictured. Its interval also covers the uncertainty of those error "
    "rates (bootstrap), and it assumes the photos are like the test faces; on another population, "
    "<code>agebatch adapt</code> first.</p>"
)


def _band_section(summary: dict) -> str:
    """Age-band shares: counted and corrected for the model's band confusion, each with its interval."""
    rows = [
        [band["band"], band["faces"], _share_text(band), _share_text(band, corrected=True)]
        for band in summary.get("age_bands") or []
    ]
    table = _table(["age band", "faces", "counted share (95%)", "corrected for the model's errors (95%)"], rows)
    return f"<h3>Age bands</h3>{table}{BANDS_EXPLAINED}"


def _gender_section(summary: dict, charts: Charts) -> str:
    counts, shares = summary["gender_counts"], summary["gender_shares"]
    figure = go.Figure(
        go.Bar(
            x=list(counts),
            y=list(counts.values()),
            marker_color=[COLOURS[g] for g in counts],
            text=[percent_cell(shares[g]) for g in counts],
            textposition="outside",
        )
    )
    figure.update_layout(title="Gender split (faces)", yaxis=count_axis(max(counts.values(), default=0)))
    table = _table(["gender", "faces", "share"], [[g, counts[g], percent_cell(shares[g])] for g in counts])
    female = summary.get("female_share")
    shares_table = _table(
        ["female share", "counted (95% interval)", "corrected for the model's errors (95% interval)"],
        [["all faces", _share_text(female), _share_text(female, corrected=True)]],
    )
    groups = summary["age_groups"]
    group_table = _table(
        ["age group", "male", "female", "all faces", "female share, counted (95%)", "corrected (95%)"],
        [
            [
                g["group"],
                g["male"],
                g["female"],
                g["all"],
                _share_text(g.get("female_share")),
                _share_text(g.get("female_share"), corrected=True),
            ]
            for g in groups
        ],
    )
    excluded = summary["excluded_from_gender_splits"]
    note = f"<p class='meta'>{excluded} low-confidence faces are left out of the gender splits.</p>" if excluded else ""
    return (
        f"<h2>Gender</h2>{charts.add(figure, 340)}{table}{shares_table}{SHARES_EXPLAINED}"
        f"<h3>Age group × gender</h3>{group_table}{note}"
    )


def _folder_section(summary: dict, charts: Charts, depth: int) -> str:
    folders = summary["folders"]
    if not folders:
        return ""
    chart = (
        _folder_chart(folders, charts, depth)
        if len(folders) > 1
        else (
            f"<p>All faces are in one folder ({escaped(folders[0]['folder'])}), so there is nothing to compare here.</p>"
        )
    )
    shown = folders[:FOLDER_TABLE_CAP]
    rows = [
        [
            f["folder"],
            f["images"],
            f["faces"],
            f["median_age"] if f["median_age"] is not None else "–",
            percent_cell(f["male_share"]),
            percent_cell(f["female_share"]),
            _share_text(f.get("female_share_estimate"), corrected=True),
        ]
        for f in shown
    ]
    values = [
        [
            None,
            f["images"],
            f["faces"],
            f["median_age"] if f["median_age"] is not None else -1,
            f["male_share"] if f["male_share"] is not None else -1,
            f["female_share"] if f["female_share"] is not None else -1,
            (f.get("female_share_estimate") or {}).get("corrected") or -1,
        ]
        for f in shown
    ]
    more = (
        f"<p class='meta'>Table shows the first {FOLDER_TABLE_CAP} of {len(folders)} folders.</p>"
        if len(folders) > FOLDER_TABLE_CAP
        else ""
    )
    table = _table(
        ["folder", "images", "faces", "median age", "male", "female", "female, corrected (95%)"],
        rows,
        sortable=True,
        values=values,
    )
    return f"<h2>Folders</h2>{chart}<p class='meta'>Click a column heading to sort.</p>{table}{more}"


def _folder_chart(folders: list[dict], charts: Charts, depth: int) -> str:
    """Faces per folder (bars) and each folder's median age (dots, on an axis from zero)."""
    top = sorted(folders, key=lambda f: -f["faces"])[:FOLDER_CHART_CAP]
    figure = faces_and_median_age(
        [escaped(f["folder"]) for f in top],
        top,
        f"Faces and median age by folder (depth {depth}; largest {len(top)})",
    )
    return charts.add(figure)


def _time_section(summary: dict, charts: Charts) -> str:
    """Faces, median age and female share per day, week or month of capture, or why there are none."""
    time = summary.get("time") or {}
    periods = time.get("periods") or []
    if not periods:
        return f"<h2>Over time</h2><p>No breakdown over time: {escaped(time.get('reason', 'no capture dates'))}.</p>"
    if len(periods) == 1:
        return (
            f"<h2>Over time</h2><p>Every dated photo was taken in the same {escaped(time['granularity'])} "
            f"({escaped(periods[0]['period'])}), so there is nothing to compare over time.</p>"
        )
    names = [p["period"] for p in periods]
    figure = faces_and_median_age(
        names, periods, f"Faces and median age per {time['granularity']} (when the photos were taken)"
    )
    figure.update_layout(xaxis=dict(type="category"))
    shares = [p["female_share"] for p in periods]
    counted = [s["share"] for s in shares]
    share_figure = go.Figure(
        go.Scatter(
            x=names,
            y=counted,
            mode="markers",
            name="female share, counted",
            marker=dict(color=COLOURS["female"], size=9),
            error_y=dict(
                type="data",
                symmetric=False,
                array=[(s["interval"][1] - s["share"]) if s["share"] is not None else None for s in shares],
                arrayminus=[(s["share"] - s["interval"][0]) if s["share"] is not None else None for s in shares],
            ),
        )
    )
    share_figure.update_layout(
        title="Female share per period, with 95% intervals",
        xaxis=dict(type="category"),
        yaxis=dict(title="female share", range=[0, 1], tickformat=".0%"),
    )
    undated = time.get("undated_faces") or 0
    note = (
        f"<p class='meta'>{undated} faces are in photos without a capture date and are not shown here.</p>"
        if undated
        else ""
    )
    table = _table(
        [time["granularity"], "faces", "median age", "female share, counted (95%)", "corrected (95%)"],
        [
            [
                p["period"],
                p["faces"],
                p["median_age"] if p["median_age"] is not None else "–",
                _share_text(p["female_share"]),
                _share_text(p["female_share"], corrected=True),
            ]
            for p in periods
        ],
    )
    return f"<h2>Over time</h2>{charts.add(figure)}{charts.add(share_figure, 340)}{table}{note}"


def _confidence_section(summary: dict, charts: Charts) -> str:
    per_image = summary["faces_per_image"]
    fig_faces = go.Figure(go.Bar(x=list(per_image), y=list(per_image.values()), marker_color="#777"))
    fig_faces.update_layout(
        title="Faces per image",
        xaxis_title="faces in the image",
        yaxis=count_axis(max(per_image.values(), default=0), "images"),
        xaxis_type="category",
    )
    probs = summary["gender_prob_histogram"]
    edges = probs["edges"]
    fig_conf = go.Figure(
        go.Bar(x=[f"{edges[i]:.2f}-{edges[i + 1]:.2f}" for i in range(10)], y=probs["counts"], marker_color="#777")
    )
    fig_conf.update_layout(
        title="Gender confidence (probability of the label given)", yaxis=count_axis(max(probs["counts"], default=0))
    )
    share = percent_cell(summary["low_confidence_share"])
    return (
        f"<h2>Faces per image and confidence</h2>{charts.add(fig_faces, 320)}{charts.add(fig_conf, 320)}"
        f"<p>{summary['low_confidence_faces']} faces ({share}) have a low-confidence gender call.</p>"
    )


def _errors_section(summary: dict) -> str:
    if not summary["errors"]:
        return "<h2>Errors</h2><p>No errors.</p>"
    reasons = _table(["reason", "files"], [[r, n] for r, n in summary["errors_by_reason"].items()])
    files = summary["error_files"]
    listing = _table(["file", "error"], [[f["path"], f["error"]] for f in files])
    cap = (
        f"<p class='meta'>First {len(files)} of {summary['errors']} files.</p>"
        if summary["errors"] > len(files)
        else ""
    )
    return f"<h2>Errors</h2>{reasons}<h3>Files</h3>{listing}{cap}"


def _compare_section(files: list[dict], charts: Charts, bins: int) -> str:
    if not files:
        return ""
    rows = [
        [
            f["name"],
            f["images"],
            f["faces"],
            f["images_without_face"],
            f["errors"],
            _num(f["median_age"]),
            percent_cell(f["gender_shares"].get("female")),
        ]
        for f in files
    ]
    table = _table(["file", "images", "faces", "no face", "errors", "median age", "female share"], rows, sortable=True)
    series = {f["name"]: f["age_histogram"] for f in files}
    figure = age_figure(series, "Age distribution by results file (share of each file's faces)", bins, shares=True)
    figure.update_layout(barmode="group")
    pooled = f"<p>The figures above and below this section pool all {len(files)} files.</p>"
    return f"<h2>Results files compared</h2>{table}{charts.add(figure)}{pooled}"


def render(data: dict, bins: int = ReportOptions.bins) -> str:
    """The whole report as one HTML document."""
    summary = data["overall"]
    charts = Charts()
    depth = data["settings"]["depth"]
    files = data.get("files") or []
    # the caveats next to the numbers they qualify; files side by side before their pooled figures
    sections = [_cards(summary, len(files)), _compare_section(files, charts, bins), how_to_read(data.get("model_card"))]
    if summary["faces"]:
        sections.append(
            "<h2>Age</h2>"
            + charts.add(pyramid_figure(summary), 380)
            + charts.add(age_figure({"all": summary["age_histogram"]}, "Estimated age, all faces", bins))
        )
        sections.append(charts.add(age_figure(summary["age_histogram_by_gender"], "Estimated age by gender", bins)))
        sections.append(_band_section(summary))
        sections.append(_gender_section(summary, charts))
        for breakdown in data["settings"].get("by") or BREAKDOWNS:  # the order the user asked for
            sections.append(
                _folder_section(summary, charts, depth) if breakdown == "folder" else _time_section(summary, charts)
            )
        sections.append(_confidence_section(summary, charts))
    else:
        sections.append(
            "<h2>Age</h2><p>No faces were found in these results, so there are no age or gender figures.</p>"
        )
    sections.append(_errors_section(summary))
    inputs = ", ".join(escaped(p) for p in data["inputs"])
    model = escaped((data.get("model_card") or {}).get("name") or "unknown")
    meta = f"<p class='meta'>Created {escaped(data['created'])} · inputs: {inputs} · model: {model}</p>"
    body = f"<h1>agebatch report</h1>{meta}{''.join(sections)}{charts.script()}<script>{SORT_JS}</script>"
    return page("agebatch report", body, style=CSS, head_scripts=(read_vendored(PLOTLY_BUNDLE).decode("utf-8"),))
