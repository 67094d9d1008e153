"""Model cards are data from disk: whatever is in one, scans, reports and pages go on (with fewer figures)."""

from __future__ import annotations

import json

import numpy as np

from agebatch.modelfile.card import card_for_model, interval_shares_for
from agebatch.reporting.aggregate import card_summary
from agebatch.reporting.bandshares import band_shares
from agebatch.reporting.caveats import how_to_read, plain_caveat


def test_a_card_nested_too_deep_for_python_is_no_card(tmp_path):
    (tmp_path / "m.card.json").write_text("[" * 200_000)
    assert card_for_model(tmp_path / "m.keras") is None and interval_shares_for(tmp_path / "m.keras") is None


def test_interval_shares_outside_what_calibration_gives_are_ignored(tmp_path):
    for shares, kept in (({"all": 0.0001}, False), ({"all": 0.9999999}, False), ({"all": 0.5, "65+": 0.99}, True)):
        (tmp_path / "m.card.json").write_text(json.dumps({"calibration": {"interval_shares": shares}}))
        assert (interval_shares_for(tmp_path / "m.keras") is not None) == kept, shares


def test_odd_fields_hide_only_themselves():
    card = {
        "test_metrics": {"overall": {"age_mae": 4.8, "n": 10}, "age_band_confusion": [1, 2]},
        "calibration": {"interval_coverage": {"test": {"utkface": {"overall": {"coverage": 5}}}}},
        "adaptation": {},
    }
    summary = card_summary(card)
    assert summary["age_mae"] == 4.8 and summary["age_band_confusion"] is None
    assert summary["interval_coverage"] == {"utkface": None}
    assert "500" not in how_to_read(summary) and "adapted on labelled faces" in plain_caveat(summary)
    partial = card_summary({"adaptation": {"faces": 20, "cross_validated_before": {"age_mae": 5}}})
    assert "adapted on 20 labelled faces" in plain_caveat(partial)


def test_a_confusion_of_impossible_counts_gives_no_correction():
    ages = np.zeros(121)
    ages[30] = 10
    rows = band_shares(ages, [[1e19] * 8] * 8)
    assert rows[3]["share"] == 1.0 and all(r["corrected"] is None for r in rows)
