"""Evaluating one task of a curriculum: its test split through ``trainer.test``, scored by
:mod:`tunelab.metrics` (the scorer of every method).

The runner evaluates every task after every stage, each with its own head and adapter, so it
needs the logits of one task's test split for whatever head/adapter is active. A
``LogitsCollector`` wraps the curriculum model for ``trainer.test``: Lightning moves it to the
device and runs it in eval mode under inference; each rank runs its shard of the split (the
evaluation sampler shards without padding, see ``tunelab.data.sampler``) and the shards are
gathered, so every rank ends up with the logits of every example exactly once.

``trainer.test`` rather than ``trainer.predict``: predict rebuilds every dataloader around an
index-tracking sampler, which our length-grouped batch sampler cannot be re-instantiated into.
"""

from __future__ import annotations

from typing import Callable, Sequence

import lightning as L
import numpy as np
import torch

from tunelab import metrics
from tunelab.models.modules import gathered_lists


class LogitsCollector(L.LightningModule):
    """``trainer.test`` over ``loader_fn()``; afterwards ``logits`` and ``labels`` hold every example."""

    def __init__(self, model: torch.nn.Module, loader_fn: Callable[[], object]):
        super().__init__()
        self.model = model
        self._loader_fn = loader_fn
        self._logits: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self.logits = self.labels = None

    def test_dataloader(self):
        # Built here, once the trainer has set up DDP: the sampler reads the world size then.
        return self._loader_fn()

    def test_step(self, batch, batch_idx):
        batch = dict(batch)
        labels = batch.pop("labels")
        self._logits.append(self.model(**batch).logits.float().cpu())
        self._labels.append(labels.cpu())

    def on_test_epoch_end(self) -> None:
        logits, labels = gathered_lists(self._logits, self._labels)
        self._logits, self._labels = [], []
        self.logits = torch.cat(logits) if logits else torch.empty(0)
        self.labels = torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


def collect_logits(trainer, model: torch.nn.Module, loader_fn: Callable[[], object]):
    """(logits, labels) of the model on ``loader_fn()``'s examples, from every rank."""
    collector = LogitsCollector(model, loader_fn)
    trainer.test(collector, verbose=False)
    return collector.logits, collector.labels


def task_scores(logits: torch.Tensor, labels: torch.Tensor, names: Sequence[str]) -> dict:
    """Accuracy, macro F1 and the predicted-class counts of one task's predictions."""
    y_true = labels.numpy()
    y_pred = logits.argmax(-1).numpy().astype(np.int64)
    s = metrics.classification_scores(y_true, y_pred, len(names), prefix="test")
    return {"acc": s["test/acc"], "f1_macro": s["test/f1_macro"],
            "pred_counts": metrics.predicted_counts(y_pred, names)}
