"""Schemas for non-fine-tuning baselines: sparse features and frozen-encoder features."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SparseConfig:
    # tfidf | count | hash (scikit-learn vectorisers) + logistic regression
    features: str = "tfidf"
    # k-fold cross-validation on the training data in addition to the holdout (0 = off)
    cv: int = 0


@dataclass
class FeaturesConfig:
    # cls | mean | concat_last4
    pooling: str = "cls"
    # logreg | linear (a single dense layer)
    classifier: str = "logreg"
