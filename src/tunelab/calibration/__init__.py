"""Calibration: do a classifier's probabilities mean what they say?

A model that is right 80 % of the time when it says 0.8 is calibrated; fine-tuned transformers
are often over-confident, and how much differs between ways of training (Desai & Durrett 2020,
"Calibration of Pre-trained Transformers"). Accuracy cannot show this, so every job that has
class probabilities records, from its test predictions (``tunelab.calibration.job``):

* ``ece``: expected calibration error, 15 equal-width bins of the top-label confidence
  (Guo et al. 2017) — one number, and per bin the reliability diagram (``ece.reliability``);
* ``brier``: the multi-class Brier score, a proper score of the whole probability vector;
* ``nll``: the negative log-likelihood of the true class, the other proper score;
* temperature scaling (``temperature``): one scalar T fitted on the validation split's
  predictions of the same weights, which changes no prediction, only the confidence; the
  calibrated scores are recorded beside the raw ones.

One metric per module (the Avalanche ``evaluation/metrics`` layout), numpy and scipy only, so
the report computes the seed ensemble's calibration with the same functions.
"""

from tunelab.calibration.brier import brier
from tunelab.calibration.ece import N_BINS, Reliability, ece, reliability
from tunelab.calibration.nll import nll
from tunelab.calibration.temperature import fit_temperature, scaled

__all__ = ["N_BINS", "Reliability", "brier", "ece", "fit_temperature", "nll", "reliability", "scaled"]
