"""How the classifiers that fine-tune nothing are fitted and scored.

``method=sparse``, ``method=features``, ``method=zeroshot`` and the frozen probe are comparison
rows for the fine-tuned encoders, so they must be measured on the same ground:

* the same data: :func:`tunelab.methods.shared.data.load_splits` gives exactly the split an
  encoder run of the same ``data`` config uses;
* the same scores: :func:`evaluate` scores through :mod:`tunelab.metrics` (``test/acc``,
  ``test/f1``: positive class if binary, else macro; ``test/f1_macro``), plus ``test/loss``, the
  log loss of the predicted probabilities, which only probabilistic classifiers have;
* the same record: :func:`tunelab.methods.shared.record.baseline_record` has the fields a
  trained encoder's record has, so a report puts the rows side by side.

The classifier of sparse and features is an L2 logistic regression (:func:`make_logreg`),
fitted by :func:`fit_quietly`, which turns scikit-learn's stream of convergence warnings into one
log line and a ``converged`` flag for the record.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Optional

import numpy as np

from tunelab.metrics import classification_scores

log = logging.getLogger("tunelab")


def make_logreg(C: float, max_iter: int, seed: int, solver: str = "lbfgs", class_weight=None):
    """L2 logistic regression; ``C > 0`` is declared on the schema fields (``method.C``)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=float(C), max_iter=int(max_iter), solver=solver, class_weight=class_weight,
                              random_state=int(seed))


def fit_quietly(model, X, y) -> bool:
    """Fit; a ConvergenceWarning is logged once (raise method.max_iter) instead of spamming.
    Returns whether the fit converged."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning("[tunelab] logistic regression did not converge; raise max_iter")
        return False
    return True


def predict(model, X, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels and probabilities over all ``n_classes`` classes.

    A model fitted on a subset (a CV fold) may have seen fewer classes than the data have; its
    probability columns are spread onto the full class axis so the log loss covers every class.
    """
    proba = model.predict_proba(X)
    classes = np.asarray(model.classes_ if hasattr(model, "classes_") else model[-1].classes_)
    pred = classes[proba.argmax(1)]
    if proba.shape[1] != n_classes:
        full = np.zeros((proba.shape[0], n_classes))
        full[:, classes.astype(int)] = proba
        proba = full
    return pred, proba


def scores(y_true, y_pred, proba: Optional[np.ndarray], n_classes: int, pos: int, prefix: str) -> dict[str, float]:
    """The shared scores of :mod:`tunelab.metrics` and, given probabilities, ``<prefix>/loss``."""
    out = classification_scores(y_true, y_pred, n_classes, pos, prefix)
    if proba is not None:
        from sklearn.metrics import log_loss

        out[f"{prefix}/loss"] = float(log_loss(np.asarray(y_true), proba, labels=list(range(n_classes))))
    return out


def evaluate(model, splits, inputs: dict[str, Any], n_classes: int, pos: int):
    """Scores of a fitted model on the test split and on the other evaluation splits ``inputs``
    has (``val``; ``test_ood``, the out-of-domain test of :mod:`tunelab.data.ood`).

    ``inputs`` maps a split name to what the model reads (texts, or feature rows). Returns the
    metrics, the test predictions (for the record's prediction counts), their probabilities
    (for predictions.npz) and the other splits' predictions by name: ``val`` is what temperature
    scaling is fitted on (``tunelab.calibration``), ``test_ood`` is kept for the paired OOD tests.
    """
    from tunelab import predictions

    metrics: dict[str, float] = {}
    test_pred = test_proba = None
    others = {}
    for split in ("test", "val", "test_ood"):
        if split in inputs:
            pred, proba = predict(model, inputs[split], n_classes)
            gold = getattr(splits, split)["label"].to_numpy()
            metrics.update(scores(gold, pred, proba, n_classes, pos, split))
            if split == "test":
                test_pred, test_proba = pred, proba
            else:
                others[split] = predictions.for_classes(np.arange(len(gold)), gold, pred, splits.label_names, proba)
    return metrics, test_pred, test_proba, others


def log_final(logger, metrics: dict) -> None:
    """The final numbers to the experiment logger (one step: nothing is trained over steps)."""
    if logger:
        logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=0)
        if hasattr(logger, "save"):
            logger.save()
