"""The multi-class Brier score (Brier 1950): the mean over examples of the squared distance between
the probability vector and the one-hot gold label, summed over classes.

A proper score: unlike ECE it cannot be gamed by predicting the base rate, and it rewards
sharpness as well as calibration. Ranges from 0 (certain and right) to 2 (certain and wrong).
For two classes it is twice the binary Brier score that scikit-learn reports by default.
"""

from __future__ import annotations

import numpy as np


def brier(probs, labels) -> float:
    """Mean over examples of sum over classes of (p_c - [c == gold])^2."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if len(y) == 0:
        return float("nan")
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(((p - onehot) ** 2).sum(axis=1).mean())
