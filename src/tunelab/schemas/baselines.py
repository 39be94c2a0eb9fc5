"""Schemas for non-fine-tuning baselines: sparse features and frozen-encoder features.

Both are methods (``method=sparse``, ``method=features``; see ``tunelab.schemas.methods``); they
are trained on exactly the train split the encoder runs train on and tested on the same test
split, so their rows in a report are comparable with the fine-tuned ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from tunelab.errors import ConfigError
from tunelab.schemas.checks import bounded, choice


@dataclass
class SparseConfig:
    # tfidf | count | hash (scikit-learn vectorisers) + logistic regression
    features: str = choice("tfidf", "tfidf", "count", "hash")
    # k-fold stratified cross-validation on the training data in addition to the holdout
    # (0 = off); per-fold metrics in extra.cv, means in metrics as cv/acc_mean etc.
    cv: int = bounded(0, 0)
    # Vectoriser: word n-grams [min, max]; lowercase; min_df/max_df (int = count, float =
    # fraction of documents; not used by hash); max_features (tfidf/count, null = all).
    ngram_range: List[int] = field(default_factory=lambda: [1, 1])
    lowercase: bool = True
    min_df: Any = 1
    max_df: Any = 1.0
    max_features: Optional[int] = None
    # tfidf only
    sublinear_tf: bool = False
    # hash only: number of buckets and whether to use signed hashing (scikit-learn's default)
    n_features: int = bounded(1048576, 1)
    alternate_sign: bool = True
    # Logistic regression (L2; C = inverse regularisation strength), random_state = run seed.
    C: float = bounded(1.0, 0, lo_open=True)
    max_iter: int = 1000
    solver: str = "lbfgs"
    class_weight: Optional[str] = None


@dataclass
class FeaturesConfig:
    # cls | mean | concat_last4 (the four top layers' CLS vectors, concatenated) | pooler
    pooling: str = choice("mean", "cls", "mean", "concat_last4", "pooler")
    # logreg | linear (a single dense layer trained with Adam on the frozen features)
    classifier: str = choice("logreg", "logreg", "linear")
    # Standardise features (mean 0, sd 1 on train) before the classifier.
    standardize: bool = True
    # Feature extraction batch size (inference only).
    batch_size: int = 64
    # Seed of a randomly initialised encoder (model.random_init, e.g. model=tiny): fixed so the
    # frozen encoder is the same function in every run and seeds vary only the classifier (one
    # cache entry for all seeds). null = the run seed. Pretrained encoders ignore it.
    encoder_seed: Optional[int] = 0
    # logreg: inverse L2 strength; null = chosen from Cs by cv-fold stratified CV (log loss) on
    # the training split, as freeze=all's probe does (tunelab.schemas.probe).
    C: Optional[float] = bounded(None, 0, lo_open=True)
    Cs: List[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])
    cv: int = bounded(5, 2)
    max_iter: int = 2000
    # linear: full-softmax dense layer, cross-entropy, Adam
    lr: float = bounded(1e-3, 0, lo_open=True, hint=" (the Adam step of method.classifier=linear)")
    epochs: int = bounded(50, 1, hint=" (the epochs of method.classifier=linear)")
    train_batch_size: int = 64
    weight_decay: float = 0.0


def check_sparse(node: Any) -> None:
    """The ``method=sparse`` rules that no single field's declared choice or range can say.

    Run by :func:`tunelab.validation.validate` before any data load; what needs the data (k-fold
    CV with more folds than the smallest class has examples) is checked by the method itself.
    """
    ngram = [int(x) for x in node.ngram_range]
    if len(ngram) != 2 or ngram[0] < 1 or ngram[1] < ngram[0]:
        raise ConfigError(f"method.ngram_range={ngram} must be [min, max] with 1 <= min <= max.")
    if node.cv == 1:
        raise ConfigError("method.cv=1: k-fold cross-validation needs k >= 2 (0 turns it off).")
    for key in ("min_df", "max_df"):
        # Any-typed because scikit-learn reads an int as a document count, a float as a fraction.
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"method.{key}={value!r} must be a number (int = count, float = fraction).")
