"""The report's calibration section: per arm over seeds, and for the arm's seed ensemble.

Per run the numbers are the job's own (results.json ``test/ece``, ``test/ece_ts``, ``test/brier``,
``test/nll``, ``calibration/temperature``: ``tunelab.calibration.job``, computed from unrounded
probabilities). Per arm they are summarised as mean and sd over its ok runs. The arm's
mean-probability seed ensemble (the ensemble of the example-level section) is scored with the
same functions on the runs' ``predictions.npz`` (float16 probabilities); its temperature is fitted
on the ensemble's mean validation probabilities where every seed kept them.

The reliability diagram of an arm pools every seed's test predictions into the 15 bins (what a
single run's calibration looks like) and shows the ensemble's bins beside them.
Nothing is dropped silently: runs without probabilities or on other examples are named in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from tunelab import calibration as C
from tunelab import predictions as P
from tunelab.report.examples import read_predictions
from tunelab.report.jobs import Job

# report key -> results.json metric, in the order of the table
RUN_KEYS = {"ece": "test/ece", "ece_ts": "test/ece_ts", "brier": "test/brier", "nll": "test/nll",
            "temperature": "calibration/temperature"}


@dataclass
class Bins:
    """A reliability diagram's bins (``tunelab.calibration.Reliability`` as lists for report.json)."""

    edges: list[float]
    count: list[int]
    confidence: list[float]
    accuracy: list[float]

    @classmethod
    def of(cls, r: C.Reliability) -> Bins:
        return cls(r.edges.tolist(), r.count.tolist(), r.confidence.tolist(), r.accuracy.tolist())


@dataclass
class ArmCalibration:
    """One arm: mean and sd over its runs of each ``RUN_KEYS`` metric, and its seed ensemble."""

    n_runs: int
    mean: dict[str, float]
    sd: dict[str, float]
    n_ensemble: int = 0  # seeds in the ensemble (0: no predictions with probabilities)
    ensemble: dict[str, float] = field(default_factory=dict)  # ece, brier, nll (+ ece_ts, temperature)
    pooled_bins: Optional[Bins] = None
    ensemble_bins: Optional[Bins] = None


@dataclass
class CalibrationSection:
    """report.json ``calibration``."""

    n_bins: int = C.N_BINS
    arms: dict[str, ArmCalibration] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _load(jobs: Sequence[Job], group: str, notes: list[str]) -> list[P.Predictions]:
    """The ok runs' sequence-classification predictions with probabilities, on one shared test set."""
    out: list[P.Predictions] = []
    for job in (j for j in jobs if j.state == "ok"):
        p = read_predictions(job, notes)
        if p is None or p.kind != "seq_cls" or p.probs is None:
            continue
        if out and not P.same_examples(p, out[0]):
            notes.append(f"run {job.name} ({group}) was tested on other examples than its group's first run: "
                         f"left out of the ensemble")
            continue
        out.append(p)
    return out


def _ensemble(preds: list[P.Predictions], group: str = "", notes: Optional[list[str]] = None
              ) -> tuple[dict[str, float], C.Reliability]:
    probs = np.mean([p.probs.astype(np.float64) for p in preds], axis=0)
    probs /= probs.sum(axis=1, keepdims=True)
    gold = preds[0].gold
    out = {"ece": C.ece(probs, gold), "brier": C.brier(probs, gold), "nll": C.nll(probs, gold)}
    vals = [p.other.get("val") for p in preds]
    if all(v is not None and v.probs is not None and len(v) for v in vals):
        # The mean of the seeds' validation probabilities is an ensemble only on shared examples:
        # seeds with their own validation split (data.split_seed following the seed beside a fixed
        # test file) have equal row numbers over other examples, and vals[0]'s gold fits none but its own.
        if all(P.same_examples(v, vals[0]) for v in vals):
            t = C.fit_temperature(np.mean([v.probs.astype(np.float64) for v in vals], axis=0), vals[0].gold)
            out.update({"temperature": t, "ece_ts": C.ece(C.scaled(probs, t), gold)})
        elif notes is not None:
            notes.append(f"{group}: the seeds were validated on other examples or labels: no temperature for "
                         f"the seed ensemble")
    return out, C.reliability(probs, gold)


def arm_calibration(jobs: Sequence[Job], group: str, notes: list[str]) -> Optional[ArmCalibration]:
    """One arm's calibration; None when none of its runs has calibration metrics or probabilities."""
    ok = [j for j in jobs if j.state == "ok"]
    values = {k: [j.metrics[m] for j in ok if np.isfinite(j.metrics.get(m, np.nan))] for k, m in RUN_KEYS.items()}
    preds = _load(ok, group, notes)
    if not values["ece"] and not preds:
        return None
    stats = {k: _mean_sd(v) for k, v in values.items()}
    arm = ArmCalibration(n_runs=len(values["ece"]), mean={k: s[0] for k, s in stats.items()},
                         sd={k: s[1] for k, s in stats.items()})
    if preds:
        arm.n_ensemble = len(preds)
        arm.ensemble, ens_bins = _ensemble(preds, group, notes)
        arm.ensemble_bins = Bins.of(ens_bins)
        pooled = C.reliability(np.concatenate([p.probs.astype(np.float64) for p in preds]),
                               np.concatenate([p.gold for p in preds]))
        arm.pooled_bins = Bins.of(pooled)
    return arm


def calibration_section(groups: dict[str, list[Job]]) -> Optional[CalibrationSection]:
    """The section over every group with calibration numbers; None when no group has any."""
    out = CalibrationSection()
    for g, jobs in groups.items():
        arm = arm_calibration(jobs, g, out.notes)
        if arm is not None:
            out.arms[g] = arm
    missing = [g for g in groups if g not in out.arms]
    if not out.arms:
        return None
    if missing:
        out.notes.append("no calibration numbers (no class probabilities: token classification, zero-shot "
                         "scores, or runs made before calibration was recorded): " + ", ".join(missing))
    return out
