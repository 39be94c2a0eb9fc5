"""Temperature scaling (Guo et al. 2017): one scalar T, fitted on validation predictions.

Dividing every logit by the same T > 0 keeps each prediction (the arg max) and only makes the
probabilities softer (T > 1) or sharper (T < 1), so accuracy is unchanged and the calibration
error that remains after it says how much of a model's miscalibration is a simple scale.

The probabilities a job keeps are a softmax of its logits, so ``log p`` equals the logits up to a
constant per example, which softmax ignores: scaling ``log p`` is scaling the logits. T minimises
the validation NLL; the search runs over ``log T`` in ``LOG_T_BOUNDS`` (T from 0.007 to 148) with
scipy's bounded scalar minimiser (the NLL is convex in 1/T, so there is one minimum).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

LOG_T_BOUNDS = (-5.0, 5.0)
# log(0) is -inf; a probability below this is treated as this (float32's smallest normal number).
TINY = float(np.finfo(np.float32).tiny)


def _logits(probs) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), TINY, 1.0))


def fit_temperature(probs, labels) -> float:
    """The T that minimises the NLL of ``labels`` under ``softmax(log(probs) / T)``."""
    z = _logits(probs)
    y = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y))

    def loss(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[rows, y].mean())

    res = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-6})
    return float(np.exp(res.x))


def scaled(probs, t: float) -> np.ndarray:
    """``probs`` with their logits divided by ``t``."""
    return softmax(_logits(probs) / float(t), axis=1)
