"""Expected calibration error (ECE) and the reliability diagram it summarises.

Top-label ECE as in Guo et al. 2017 ("On Calibration of Modern Neural Networks"): each example's
confidence is its largest class probability and it is correct when that class is the gold one;
the confidences fall into ``N_BINS`` equal-width bins ``(0, 1/15], (1/15, 2/15], ..., (14/15, 1]``
and ECE is the average gap between a bin's accuracy and its mean confidence, weighted by the
share of examples in the bin. 15 bins is the convention of Guo et al. and Desai & Durrett 2020,
so the numbers are comparable to theirs (ECE depends on the binning).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 15


@dataclass
class Reliability:
    """Per confidence bin: how many examples, their mean confidence and their accuracy (NaN
    where the bin is empty). ``edges`` has ``n_bins + 1`` values from 0 to 1."""

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def ece(self) -> float:
        n = self.count.sum()
        if n == 0:
            return float("nan")
        full = self.count > 0
        gaps = np.abs(self.accuracy[full] - self.confidence[full])
        return float((self.count[full] * gaps).sum() / n)


def reliability(probs, labels, n_bins: int = N_BINS) -> Reliability:
    """Bin the top-label confidences of ``probs`` (n x classes) against ``labels`` (n class ids)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = p.max(axis=1) if p.size else np.zeros(0)
    correct = (p.argmax(axis=1) == y) if p.size else np.zeros(0, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # right=True: bin b holds edges[b] < conf <= edges[b + 1]; a confidence of 0 joins bin 0.
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=conf, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct.astype(np.float64), minlength=n_bins) / count
    return Reliability(edges, count, confidence, accuracy)


def ece(probs, labels, n_bins: int = N_BINS) -> float:
    """Top-label expected calibration error with ``n_bins`` equal-width bins (0 is calibrated)."""
    return reliability(probs, labels, n_bins).ece
