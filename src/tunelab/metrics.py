"""The one implementation of every score tunelab reports: accuracy, F1, entity F1.

Every method scores through these functions — the fine-tuning modules at the end of each
validation/test pass, the sparse and frozen-feature baselines, zero-shot, the curriculum's
accuracy matrix and the report's majority-class baseline — so "accuracy" means the same number
everywhere. They are numpy-only (the report must run without torch) and follow scikit-learn
exactly, including ``zero_division=0``: a class with no true and no predicted examples, or a
positive class never predicted nor present, scores 0 (checked against scikit-learn in tests).

For binary tasks ``f1`` is the positive class's F1 (``data.positive_label``, default the second
label); for more classes it is the macro F1. Entity-level scores for NER come from seqeval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Metric names (last part) for which lower is better: the report's direction of every claim and
# the direction task.monitor must be watched in (tunelab.validation).
LOWER_IS_BETTER = ("loss", "ece", "brier", "nll", "perplexity")


def higher_is_better(metric: str) -> bool:
    last = metric.rsplit("/", 1)[-1]
    return not (last.startswith(LOWER_IS_BETTER) or metric.startswith("params/"))


def best_mode(metric: str) -> str:
    """"max" or "min": what the best value of ``metric`` is (Lightning's monitor mode, "best of n runs")."""
    return "max" if higher_is_better(metric) else "min"


def _labels_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays as 1-d numpy arrays; refuse what scikit-learn refuses (empty, ragged)."""
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("empty input: a metric needs at least one example")
    return t, p


def _f1_from_counts(tp, fp, fn):
    """2TP / (2TP + FP + FN), elementwise over arrays of counts; 0 where the class is absent from
    both the truth and the predictions (zero_division=0)."""
    tp = np.asarray(tp)
    denom = 2 * tp + fp + fn
    return np.where(denom == 0, 0.0, 2.0 * tp / np.maximum(denom, 1))


def _f1_of(t: np.ndarray, p: np.ndarray, label) -> float:
    """F1 of one class of two label vectors."""
    tp = int(np.sum((t == label) & (p == label)))
    fp = int(np.sum((t != label) & (p == label)))
    fn = int(np.sum((t == label) & (p != label)))
    return float(_f1_from_counts(tp, fp, fn))


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches (= ``sklearn.metrics.accuracy_score``)."""
    t, p = _labels_pair(y_true, y_pred)
    return float(np.mean(t == p))


def f1_score_binary(y_true, y_pred, pos_label=1) -> float:
    """F1 of the positive class (= ``sklearn f1_score(average='binary', zero_division=0)``).

    Like scikit-learn it refuses more than two distinct labels, and a ``pos_label`` that is not
    one of two labels present, so a multi-class mistake cannot pass as a binary score.
    """
    t, p = _labels_pair(y_true, y_pred)
    present = np.union1d(t, p)
    if present.size > 2:
        raise ValueError(f"binary F1 needs at most 2 labels, got {present.size}: {present.tolist()}")
    if present.size == 2 and pos_label not in present.tolist():
        raise ValueError(f"pos_label={pos_label!r} is not one of the labels {present.tolist()}")
    return _f1_of(t, p, pos_label)


def f1_macro(y_true, y_pred, labels: Sequence | None = None) -> float:
    """Unweighted mean of per-class F1 (= ``sklearn f1_score(average='macro', zero_division=0)``).

    The classes are those present in ``y_true`` or ``y_pred`` unless ``labels`` names them; a named
    class absent from both then counts as 0, as in scikit-learn.
    """
    t, p = _labels_pair(y_true, y_pred)
    classes = np.union1d(t, p) if labels is None else list(labels)
    if len(classes) == 0:
        raise ValueError("f1_macro: no classes")
    return float(np.mean([_f1_of(t, p, c) for c in classes]))


def classification_scores(y_true, y_pred, n_classes: int, positive_index: int = 1,
                          prefix: str = "test") -> dict[str, float]:
    """``{prefix}/acc``, ``{prefix}/f1`` (positive class if binary, else macro), ``{prefix}/f1_macro``."""
    labels = list(range(n_classes))
    macro = f1_macro(y_true, y_pred, labels=labels)
    if n_classes == 2:
        t, p = _labels_pair(y_true, y_pred)
        f1 = _f1_of(t, p, positive_index)
    else:
        f1 = macro
    return {f"{prefix}/acc": accuracy(y_true, y_pred), f"{prefix}/f1": f1, f"{prefix}/f1_macro": macro}


def classification_scores_batch(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                                positive_index: int = 1, prefix: str = "test") -> dict[str, np.ndarray]:
    """:func:`classification_scores` of every row of ``(B, n)`` class indices at once, from B
    confusion matrices (one ``bincount``): the paired bootstrap scores a thousand resamples of every
    seed pair, which one call per resample made the slowest part of a report."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape or t.ndim != 2 or t.shape[1] == 0:
        raise ValueError(f"want two (B, n) arrays with n > 0, got {t.shape} and {p.shape}")
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= n_classes:
        raise ValueError(f"class indices must lie in 0..{n_classes - 1}")
    k, b = n_classes, t.shape[0]
    codes = (t * k + p) + (np.arange(b) * k * k)[:, None]
    cm = np.bincount(codes.ravel(), minlength=b * k * k).reshape(b, k, k)  # [row, true, predicted]
    tp = np.diagonal(cm, axis1=1, axis2=2)
    f1 = _f1_from_counts(tp, cm.sum(axis=1) - tp, cm.sum(axis=2) - tp)   # (B, K)
    macro = np.mean(f1, axis=1)
    return {f"{prefix}/acc": tp.sum(axis=1) / t.shape[1],
            f"{prefix}/f1": f1[:, positive_index] if k == 2 else macro, f"{prefix}/f1_macro": macro}


def predicted_counts(y_pred, names: Sequence[str]) -> dict[str, int]:
    """How often each class was predicted: a model that always says one class shows here."""
    counts = np.bincount(np.asarray(y_pred, dtype=int).ravel(), minlength=len(names))
    return {str(n): int(c) for n, c in zip(names, counts)}


def entity_scores(y_true: list[list[str]], y_pred: list[list[str]], prefix: str = "test") -> dict[str, float]:
    """Entity-level F1/precision/recall (micro over entities) and macro F1 over entity types
    (seqeval, BIO tags), plus token accuracy, for tag sequences aligned word by word."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    kw = dict(zero_division=0)
    return {
        f"{prefix}/f1": float(f1_score(y_true, y_pred, **kw)),
        f"{prefix}/precision": float(precision_score(y_true, y_pred, **kw)),
        f"{prefix}/recall": float(recall_score(y_true, y_pred, **kw)),
        f"{prefix}/f1_macro": float(f1_score(y_true, y_pred, average="macro", **kw)),
        f"{prefix}/acc": float(accuracy_score(y_true, y_pred)),
    }
