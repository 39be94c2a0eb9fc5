"""The part of results.json a runner fills in (``tunelab.run`` adds the rest and writes it).

Two shapes, with the same keys, so a report puts every row of a study side by side: a trained
encoder's (:func:`encoder_record`) and a classifier that fine-tunes nothing
(:func:`baseline_record`: sparse features, frozen features, zero-shot).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from omegaconf import DictConfig

from tunelab.methods.shared.data import label_counts


def encoder_record(cfg: DictConfig, *, metrics: dict, splits, module, trainer, dm, report, **extra) -> dict:
    """A trained encoder's record (``extra`` adds runner-specific keys to ``extra``)."""
    from tunelab.data.splits import majority_rate

    return {
        "metrics": metrics,
        "majority_rate": majority_rate(splits) if cfg.task.name == "seq_cls" else None,
        "pred_class_counts": module.test_outputs.get("pred_class_counts"),
        # Per-example test predictions: run.py writes them to predictions.npz.
        "predictions": module.test_outputs.get("predictions"),
        "label_names": splits.label_names,
        "n_examples": splits.sizes(),
        "params": module.param_counts(),
        "plan": module.plan.record(),
        "extra": {
            "dropped_rows": splits.dropped,
            **label_counts(splits),
            "data_notes": splits.notes,
            "tokenization_cache_hits": dm.cache_hits,
            "model_load": {"missing": report.missing, "notes": report.notes} if report else None,
            "epochs_run": trainer.current_epoch,
            "steps_run": trainer.global_step,
            **extra,
        },
    }


def baseline_record(splits, metrics: dict, y_pred, n_params: int, extra: dict, total: Optional[int] = None,
                    proba: Optional[np.ndarray] = None, others: Optional[dict] = None) -> dict:
    """The record of a method that fine-tunes nothing (``predictions``: the per-example test
    predictions, with the other splits' (``val``, ``test_ood``) from
    :func:`tunelab.methods.shared.shallow.evaluate`, that run.py writes to predictions.npz)."""
    from tunelab import predictions
    from tunelab.data.splits import majority_rate
    from tunelab.metrics import predicted_counts

    preds = predictions.for_classes(np.arange(len(splits.test)), splits.test["label"].to_numpy(), y_pred,
                                    splits.label_names, proba)
    for name, p in (others or {}).items():
        preds.with_split(name, p)
    return {
        "predictions": preds,
        "metrics": metrics,
        "majority_rate": majority_rate(splits),
        "pred_class_counts": predicted_counts(y_pred, splits.label_names),
        "label_names": splits.label_names,
        "n_examples": splits.sizes(),
        "params": {"trainable": int(n_params), "total": int(total if total is not None else n_params)},
        "extra": {"dropped_rows": splits.dropped, **label_counts(splits), "data_notes": splits.notes, **extra},
    }
