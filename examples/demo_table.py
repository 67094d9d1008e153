"""The README's demo table: what ``agebatch scan examples/photos`` says beside FairFace's own labels.

    agebatch scan examples/photos --out results.csv && python examples/demo_table.py results.csv

Prints the Markdown table (one row per face, no-face or error row), true labels taken from
``sources/fairface/labels.csv`` by the FairFace number that starts each example's file name, and then
the README's sentence about the portrait that ``explain`` is shown on.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def true_labels() -> dict[str, str]:
    labels = {}
    with open(HERE / "sources" / "fairface" / "labels.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            age = "more than 70" if row["age"] == "more than 70" else row["age"]
            labels[Path(row["file"]).stem] = f"{row['gender'].lower()}, {age}, {row['race'].replace('_', ' ')}"
    return labels


def said(row: dict) -> str:
    if row["status"] == "error":
        return f"error: {row['error']}"
    if row["status"] == "no_face":
        return "no_face"
    age, low, high = float(row["age"]), row.get("age_low"), row.get("age_high")
    span = f" ({float(low):.0f}-{float(high):.0f})" if low and high else ""
    return f"{row['gender']} ({100 * float(row['gender_prob']):.0f}%), {age:.0f}{span}"


EXPLAINED = "2332 female 60-69"


def explain_sentence(rows: list[dict]) -> str:
    """What the README says under the Grad-CAM picture, from the explained portrait's row."""
    (row,) = [r for r in rows if Path(r["path"]).stem == EXPLAINED]
    age, low, high = (round(float(row[k])) for k in ("age", "age_low", "age_high"))
    band = EXPLAINED.split(" ")[-1]
    first, last = (int(n) for n in band.split("-"))
    where = "below" if age < first else "above" if age > last else "within"
    reach = ", its range reaching into it" if where != "within" and low <= last and high >= first else ""
    return f"the age estimate ({age}, with an 80% range of {low}-{high}) sits {where} this woman's labelled band of {band}{reach}."


def main(results: str) -> None:
    labels = true_labels()
    with open(results, newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: (r["path"], r["face"]))
    print("| photo | true (FairFace labels) | agebatch says |")
    print("|---|---|---|")
    for row in rows:
        relative = Path(row["path"]).relative_to(Path(row["path"]).parents[1]).as_posix()
        number = Path(row["path"]).stem.split(" ")[0]
        if row["path"].endswith("four people.jpg"):
            truth = "4 people: see their portraits"
            face = f"face {row['face']}: "
        else:
            truth, face = labels.get(number, "-"), ""
        print(f"| `{relative}` | {truth} | {face}{said(row)} |")
    print()
    print(explain_sentence(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results.csv")
