"""Faults: a non-finite loss as a user error; for tests only, a SIGKILL at a step or slow steps
in a SLURM job's first allocation (the time-limit test)."""

from __future__ import annotations

import os
import signal
import time
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


class SlowFirstAllocation(L.Callback):
    """Sleeps ``seconds`` after every training batch, only in a SLURM job's first allocation
    (``SLURM_RESTART_COUNT`` unset or 0): a run that outlasts its time limit once, and whose
    requeued part is quick. Sleeping changes no number the run computes."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
            time.sleep(self.seconds)


def fault_injection_callback() -> Optional[Any]:
    """Tests only: ``TUNELAB_FAULT_SIGKILL_AT_STEP=n`` (and optionally ``TUNELAB_FAULT_ONLY_DIR``,
    one job of a sweep) adds :class:`SigkillAtStep`; ``TUNELAB_FAULT_SLOW_STEP_S=s`` adds
    :class:`SlowFirstAllocation`."""
    slow = os.environ.get("TUNELAB_FAULT_SLOW_STEP_S")
    if slow:
        return SlowFirstAllocation(float(slow))
    at = os.environ.get("TUNELAB_FAULT_SIGKILL_AT_STEP")
    if not at:
        return None
    return SigkillAtStep(int(at), os.environ.get("TUNELAB_FAULT_ONLY_DIR"))
