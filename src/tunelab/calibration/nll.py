"""Negative log-likelihood of the gold class: the cross-entropy a classifier is trained on.

The mean of ``-log p(gold)`` over examples. Probabilities are clipped at ``EPS`` first, so one
confident mistake in a rounded (float16) probability file costs ``-log(EPS)`` instead of
infinity; a job's own value comes from unrounded float32 probabilities.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12


def nll(probs, labels) -> float:
    """Mean negative log-likelihood of ``labels`` under ``probs`` (n x classes), natural log."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return float("nan")
    return float(-np.log(np.clip(p[np.arange(len(y)), y], EPS, 1.0)).mean())
