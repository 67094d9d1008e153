"""The k-fold judgement behind ``adapt``: which pull towards the shipped heads fits a user's sample
best, whether the refit beats the shipped read-out on faces it was not fitted on, and the interval
shares that hold on those faces.

Every figure ``adapt`` reports comes from out-of-fold estimates: each face is estimated by a read-out
fitted without it, so the before/after comparison is what a user can expect on the rest of their
population, not how well the sample was memorised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agebatch.modelfile import intervals
from agebatch.training import agedist, readout


@dataclass
class CrossValidation:
    """The outcome: chosen strengths (None: the shipped head is kept), figures before and after."""

    folds: int
    age_strength: float | None
    gender_strength: float | None
    before: dict
    after: dict
    interval_shares: dict
    tried: dict = field(default_factory=dict)

    def final_readout(self, prior: readout.Readout, features: np.ndarray, frame: pd.DataFrame) -> readout.Readout:
        """The read-out to ship: each head refitted on every face with its chosen strength, or the prior's
        (one fit per distinct strength: both heads come out of each)."""
        chosen = {self.age_strength, self.gender_strength} - {None}
        fits = {strength: readout.fit(prior, features, *_labels(frame), strength) for strength in chosen}
        age, gender = fits.get(self.age_strength, prior), fits.get(self.gender_strength, prior)
        return readout.Readout(age.age_kernel, age.age_bias, gender.gender_kernel, gender.gender_bias)

    @property
    def _gender_kept(self) -> str:
        return (
            "kept (no genders given)" if self.before.get("gender_accuracy") is None else "kept (the refit did not help)"
        )

    def record(self) -> dict:
        """What the card keeps."""
        return {
            "folds": self.folds,
            "age_head": "refitted" if self.age_strength is not None else "kept (the refit did not help)",
            "gender_head": "refitted" if self.gender_strength is not None else self._gender_kept,
            "strengths": {"age": self.age_strength, "gender": self.gender_strength},
            "cross_validated_before": self.before,
            "cross_validated_after": self.after,
            "tried": self.tried,
        }

    def sentence(self) -> str:
        """One plain sentence of what changed, in cross-validated figures."""
        b, a = self.before, self.after
        parts = []
        if b.get("age_mae") is not None:
            parts.append(
                f"age error {b['age_mae']:.2f} -> {a['age_mae']:.2f} years (bias {b['age_bias']:+.2f} -> {a['age_bias']:+.2f})"
            )
        if b.get("age_band_accuracy") is not None:
            parts.append(f"right age band {100 * b['age_band_accuracy']:.1f}% -> {100 * a['age_band_accuracy']:.1f}%")
        parts.append(f"age-band distribution off by {100 * b['band_distance']:.1f}% -> {100 * a['band_distance']:.1f}%")
        if b.get("gender_accuracy") is not None:
            parts.append(f"gender {100 * b['gender_accuracy']:.1f}% -> {100 * a['gender_accuracy']:.1f}%")
        parts.append(f"80% interval holds {100 * b['interval_coverage']:.0f}% -> {100 * a['interval_coverage']:.0f}%")
        heads = {
            (True, True): "both heads refitted",
            (True, False): "age head refitted, gender head kept (its refit did not help)",
            (False, True): "gender head refitted, age head kept (its refit did not help)",
            (False, False): "the shipped read-out kept: refitting did not help on these faces",
        }[(self.age_strength is not None, self.gender_strength is not None)]
        if self.before.get("gender_accuracy") is None:  # no genders given: nothing was tried for that head
            heads = heads.replace("gender head kept (its refit did not help)", "gender head kept (no genders given)")
        return f"{heads}; {self.folds}-fold cross-validated on the sample: " + "; ".join(parts) + "."


def _labels(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        frame["age_low"].to_numpy(float),
        frame["age_high"].to_numpy(float),
        frame["gender"].to_numpy(int),
    )


def _age_loss(distributions: np.ndarray, age_low: np.ndarray, age_high: np.ndarray) -> float:
    """Mean negative log-likelihood of the age labels, as training measures it (soft label or band mass)."""
    return float(agedist.loss_numpy(distributions, agedist.targets(age_low, age_high)).mean())


def _gender_loss(females: np.ndarray, genders: np.ndarray) -> float | None:
    known = genders >= 0
    if not known.any():
        return None
    p = np.clip(np.where(genders[known] == 1, females[known], 1 - females[known]), 1e-7, 1.0)
    return float(-np.log(p).mean())


def cross_validate(
    prior: readout.Readout, features: np.ndarray, frame: pd.DataFrame, options, base_shares
) -> CrossValidation:
    """Out-of-fold estimates for every strength in ``options.strengths``; the best strength per head,
    kept only where it beats the shipped head on the loss and on the figures a user reads."""
    age_low, age_high, genders = _labels(frame)
    fold_of = np.random.default_rng(options.seed).permutation(len(frame)) % options.folds
    shipped = readout.outputs(prior, features)
    before = readout.figures(shipped, age_low, age_high, genders, base_shares)
    candidates = {}
    for strength in options.strengths:
        candidates[strength] = _out_of_fold(prior, features, age_low, age_high, genders, fold_of, strength)
    age_losses = {s: _age_loss(o.distributions, age_low, age_high) for s, o in candidates.items()}
    gender_losses = {s: _gender_loss(o.females, genders) for s, o in candidates.items()}
    age_strength = min(age_losses, key=age_losses.get)
    if not _age_helped(candidates[age_strength], shipped, age_losses[age_strength], age_low, age_high, genders):
        age_strength = None
    gender_strength = None
    if _gender_loss(shipped.females, genders) is not None:
        best = min(gender_losses, key=gender_losses.get)
        if _gender_helped(candidates[best], shipped, gender_losses[best], genders):
            gender_strength = best
    ages_from = candidates[age_strength] if age_strength is not None else shipped
    females = (candidates[gender_strength] if gender_strength is not None else shipped).females
    combined = readout.Outputs(ages_from.distributions, ages_from.ages, females)
    shares, coverage = _cross_fitted_intervals(combined, age_low, age_high, fold_of)
    after = readout.figures(combined, age_low, age_high, genders, shares)
    after["interval_coverage"] = coverage
    tried = {str(s): {"age_loss": age_losses[s], "gender_loss": gender_losses[s]} for s in options.strengths}
    tried["shipped"] = {
        "age_loss": _age_loss(shipped.distributions, age_low, age_high),
        "gender_loss": _gender_loss(shipped.females, genders),
    }
    return CrossValidation(options.folds, age_strength, gender_strength, before, after, shares, tried)


def _out_of_fold(prior, features, age_low, age_high, genders, fold_of, strength) -> readout.Outputs:
    """Every face estimated by heads fitted on the other folds."""
    distributions = np.zeros((len(features), prior.age_bias.shape[0]))
    females = np.zeros(len(features))
    for fold in range(fold_of.max() + 1):
        held = fold_of == fold
        fitted = readout.fit(prior, features[~held], age_low[~held], age_high[~held], genders[~held], strength)
        out = readout.outputs(fitted, features[held])
        distributions[held], females[held] = out.distributions, out.females
    return readout.Outputs(distributions, agedist.expected_age(distributions), females)


def _age_helped(candidate, shipped, candidate_loss, age_low, age_high, genders) -> bool:
    """Lower loss, and neither the age error (exact ages) nor the right-band share (bands) worse."""
    if candidate_loss >= _age_loss(shipped.distributions, age_low, age_high):
        return False
    new = readout.figures(candidate, age_low, age_high, genders)
    old = readout.figures(shipped, age_low, age_high, genders)
    if old["age_mae"] is not None and new["age_mae"] > old["age_mae"]:
        return False
    return old["age_band_accuracy"] is None or new["age_band_accuracy"] >= old["age_band_accuracy"]


def _gender_helped(candidate, shipped, candidate_loss, genders) -> bool:
    """Lower log-loss on the known genders and no fewer of them called right."""
    known = genders >= 0
    if candidate_loss >= _gender_loss(shipped.females, genders):
        return False
    right = lambda females: np.mean((females[known] >= 0.5).astype(int) == genders[known])  # noqa: E731
    return right(candidate.females) >= right(shipped.females)


def _cross_fitted_intervals(out: readout.Outputs, age_low, age_high, fold_of) -> tuple[dict, float]:
    """Shares calibrated on all out-of-fold estimates (what ships), and the coverage of shares calibrated
    without each fold, checked on it (what a user can expect: the shares never saw those faces)."""
    hits = np.zeros(len(age_low), bool)
    for fold in range(fold_of.max() + 1):
        held = fold_of == fold
        shares = intervals.calibrate(out.distributions[~held], out.ages[~held], age_low[~held], age_high[~held])
        low, high = intervals.interval(out.distributions[held], out.ages[held], shares)
        hits[held] = intervals.covered(low, high, age_low[held], age_high[held])
    return intervals.calibrate(out.distributions, out.ages, age_low, age_high), float(hits.mean())
