"""Faults: a non-finite loss as a user error, and a SIGKILL injected at a step (tests only)."""

from __future__ import annotations

import os
import signal
from typing import Any, Optional

import lightning as L

from tunelab.errors import TunelabError


class NonFiniteLossError(TunelabError):
    """The training loss became NaN or inf; the run was stopped."""


class SigkillAtStep(L.Callback):
    """Kills this process with SIGKILL when global step ``step`` starts (no cleanup runs: the
    same as ``kill -9`` or an OOM kill); only in the job whose output dir ends with ``only``."""

    def __init__(self, step: int, only: Optional[str] = None):
        self.step, self.only = step, only

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step and (not self.only or str(trainer.default_root_dir).endswith(self.only)):
            os.kill(os.getpid(), signal.SIGKILL)


def fault_injection_callback() -> Optional[Any]:
    """Tests only: ``TUNELAB_FAULT_SIGKILL_AT_STEP=n`` (and optionally ``TUNELAB_FAULT_ONLY_DIR``,
    one job of a sweep) adds :class:`SigkillAtStep`."""
    at = os.environ.get("TUNELAB_FAULT_SIGKILL_AT_STEP")
    if not at:
        return None
    return SigkillAtStep(int(at), os.environ.get("TUNELAB_FAULT_ONLY_DIR"))
