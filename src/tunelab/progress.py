"""Progress lines for batch jobs: a SLURM log shows how far a run is, not only its start and end.

Lightning's progress bar redraws one terminal line with carriage returns; in a file (a SLURM
job's stdout, ``nohup``, CI) that is either nothing or thousands of fragments. When stdout is
not a terminal, ``tunelab.training.build_trainer`` adds :class:`BatchProgress` instead: a plain
log line every ``trainer.progress_every_n_steps`` optimiser steps and after every validation::

    [tunelab] progress: step 50/300 (17%) epoch 1/3 loss 0.6931 samples/s 123.4 ETA 0:02:05
    [tunelab] validation: step 100/300 epoch 1/3 val/loss 0.6123 val/acc 0.7500
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Optional

import lightning as L

from tunelab.cost import hms

log = logging.getLogger("tunelab")


def _batch_size(batch: Any) -> int:
    """Examples in a batch: the first dimension of its first tensor (dict, list or tensor)."""
    if isinstance(batch, Mapping):  # a dict, or transformers' BatchEncoding (a UserDict)
        batch = next(iter(batch.values()), None)
    elif isinstance(batch, (list, tuple)):
        batch = batch[0] if batch else None
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if shape else 0


class BatchProgress(L.Callback):
    """One plain line every ``every_n_steps`` optimiser steps and after each validation (rank 0)."""

    def __init__(self, every_n_steps: int):
        self.every = int(every_n_steps)
        self._t0: Optional[float] = None
        self._step0 = 0
        self._samples = 0
        self._last_logged = -1

    def on_train_start(self, trainer, pl_module):
        # after a resume global_step starts > 0: rates count only what this process trained
        self._t0, self._step0, self._samples = time.time(), trainer.global_step, 0

    def _total(self, trainer) -> Optional[int]:
        try:
            total = trainer.estimated_stepping_batches
        except Exception:  # an unsized loader: no total, no ETA
            return None
        return int(total) if total and total != float("inf") else None

    def _where(self, trainer) -> str:
        total = self._total(trainer)
        step = trainer.global_step
        of = f"/{total} ({100 * step / total:.0f}%)" if total else ""
        epochs = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        return f"step {step}{of} epoch {trainer.current_epoch + 1}{epochs}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._samples += _batch_size(batch)
        step = trainer.global_step
        if not trainer.is_global_zero or step == self._last_logged or step % self.every:
            return
        self._last_logged = step
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        elapsed = max(time.time() - (self._t0 or time.time()), 1e-9)
        done = step - self._step0
        total = self._total(trainer)
        eta = f" ETA {hms((total - step) * elapsed / done)}" if total and done > 0 else ""
        loss_text = f" loss {float(loss):.4f}" if loss is not None else ""
        log.info(f"[tunelab] progress: {self._where(trainer)}{loss_text} samples/s "
                 f"{self._samples / elapsed:.1f}{eta}")

    def on_validation_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        vals = " ".join(f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items())
                        if k.startswith("val/"))
        log.info(f"[tunelab] validation: {self._where(trainer)} {vals}".rstrip())
