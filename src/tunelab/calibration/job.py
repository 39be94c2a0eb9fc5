"""What a job records about calibration: from its predictions, at the end of the job.

``tunelab.run`` calls :func:`job_metrics` on the predictions a runner returns, so every method
that has class probabilities (fine-tuning through the Lightning modules, the cached heads, the
logistic-regression probe, ``method=features``, ``method=sparse``) is measured by the same code.
Methods without probabilities (zero-shot similarity scores) and token classification record none.

Keys (docs/RESULTS_SCHEMA.md): ``<split>/ece``, ``<split>/brier``, ``<split>/nll`` of each scored
split with probabilities (``test``; ``test_ood`` where a job scores an out-of-domain split), and
when the job kept its validation predictions, ``calibration/temperature`` fitted on them with
``<split>/ece_ts``, ``<split>/brier_ts``, ``<split>/nll_ts`` after scaling by it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tunelab.calibration.brier import brier
from tunelab.calibration.ece import ece
from tunelab.calibration.nll import nll
from tunelab.calibration.temperature import fit_temperature, scaled

# Splits scored for calibration besides the main (test) one, when the predictions carry them.
EVAL_SPLITS = ("test_ood",)


def scores(probs, labels, prefix: str, suffix: str = "") -> dict[str, float]:
    """``{prefix}/ece{suffix}``, ``/brier{suffix}``, ``/nll{suffix}`` of one split."""
    return {f"{prefix}/ece{suffix}": ece(probs, labels), f"{prefix}/brier{suffix}": brier(probs, labels),
            f"{prefix}/nll{suffix}": nll(probs, labels)}


def _normalised(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return p / p.sum(axis=1, keepdims=True)


def job_metrics(preds) -> dict[str, float]:
    """Calibration metrics of a job's predictions (``tunelab.predictions.Predictions``, or None)."""
    if preds is None or preds.probs is None or preds.kind != "seq_cls" or len(preds) == 0:
        return {}
    splits = [(preds.split, preds)] + [(s, preds.other[s]) for s in EVAL_SPLITS if s in preds.other]
    splits = [(s, p) for s, p in splits if p.probs is not None and len(p)]
    out: dict[str, float] = {}
    for name, p in splits:
        out.update(scores(_normalised(p.probs), p.gold, name))
    t = temperature_of(preds.other.get("val"))
    if t is not None:
        out["calibration/temperature"] = t
        for name, p in splits:
            out.update(scores(scaled(p.probs, t), p.gold, name, "_ts"))
    return out


def temperature_of(val) -> Optional[float]:
    """T fitted on validation predictions; None without them (no val split, no probabilities)."""
    if val is None or val.probs is None or len(val) == 0:
        return None
    return fit_temperature(val.probs, val.gold)
