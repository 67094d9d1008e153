"""``reporting.caveats``: the same caveats, with the card's figures, wherever estimates are shown."""

from __future__ import annotations

from agebatch.reporting.aggregate import card_summary
from agebatch.reporting.caveats import how_to_read, plain_caveat

CARD = {
    "name": "m",
    "test_metrics": {
        "overall": {"n": 8264, "n_exact_age": 4264, "age_mae": 4.82, "age_bias": 0.21, "gender_accuracy": 0.932},
        "by_age_band": {"0-12": {"age_mae": 2.0, "age_bias": 0.4, "gender_accuracy": 0.78}},
        "by_race": {"asian": {"age_bias": -1.25, "gender_accuracy": 0.92}},
    },
    "calibration": {"interval_coverage": {"test": {"utkface": {"overall": {"coverage": 0.804}}}}},
}


def test_the_age_error_is_quoted_for_the_faces_with_exact_ages_and_the_interval_for_what_it_held():
    page = how_to_read(card_summary(CARD))
    assert "On 4,264 held-out faces with exact ages" in page and "on all 8,264 held-out faces" in page
    assert "bias +0.21 years" in page and "0-12: 2.0 (+0.4)" in page and "asian -1.2" in page
    assert "80% interval" in page and "80.4% (utkface)" in page
    assert "agebatch adapt" in page  # what to do about a population unlike the training faces


def test_an_adapted_model_says_so_instead_of_the_generic_advice():
    card = dict(
        CARD,
        adaptation={
            "faces": 300,
            "cross_validated_before": {"age_mae": 6.75},
            "cross_validated_after": {"age_mae": 5.63},
        },
    )
    words = plain_caveat(card_summary(card))
    assert "adapted on 300 labelled faces" in words and "6.75 to 5.63 years" in words
    assert "agebatch adapt refits" not in words
    page = how_to_read(card_summary({"name": "mine", "adaptation": card["adaptation"]}))  # an adapted card
    assert "No model card" not in page and "6.75 to 5.63 years" in page


def test_without_a_card_the_caveats_still_stand():
    assert "apparent age" in plain_caveat(None) and "80% interval" in plain_caveat(None)
    assert "No model card was found" in how_to_read(None)
