"""SLURM time limits and preemption: checkpoint at once, let submitit requeue, resume exactly.

Who does what (hydra/launcher=slurm, i.e. submitit):

* SLURM sends submitit's signal (``USR2``; ``hydra.launcher.signal_delay_s`` before the time
  limit, or at preemption). submitit's handler asks the launcher for a resubmission
  (``checkpoint()``), runs ``scontrol requeue`` while ``max_num_timeout`` allows, and exits.
* :class:`PreemptCheckpoint` runs first: it only marks the signal, and at the next safe point
  (the end of a training batch, or of a validation) writes ``last.ckpt`` (model, optimiser,
  scheduler, sampler position, RNG states: tunelab.ops.resume), then hands over to submitit's
  handler. Saving inside the signal handler itself could catch an optimiser step half done.
* The requeued job runs the same command; with ``resume=auto`` it finds its dir (same job
  identity) and continues from that checkpoint: the final metrics equal an uninterrupted run's.
  Without ``resume=auto`` a requeued job starts over.
* Lightning's own SLURM requeue (``SLURMEnvironment(auto_requeue=True)``, its default: an
  ``hpc_ckpt_*.ckpt`` and a second ``scontrol requeue`` on USR1) is switched off under SLURM
  (:func:`slurm_plugins`), so exactly one party requeues and one checkpoint format is resumed.

The job's results.json stays ``running`` across a requeue (``requeued_at`` notes it), since
the job is not over; ``tunelab status`` shows SLURM's state next to it.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any, Callable, Optional

import lightning as L

from tunelab.ops.interrupt import mark_requeue_started

log = logging.getLogger("tunelab")


def submitit_signal() -> Optional[int]:
    """The signal submitit handles in this process (USR2 unless SUBMITIT_PREEMPT_SIGNAL says
    otherwise), when this process is a submitit job whose handler is installed; else None."""
    try:
        from submitit import JobEnvironment
    except ImportError:  # pragma: no cover - submitit ships with the launcher plugin
        return None
    sig = getattr(signal, f"SIG{JobEnvironment.USR_SIG}", None)
    handler = signal.getsignal(sig) if sig is not None else None
    owner = getattr(handler, "__self__", None)
    return sig if owner is not None and type(owner).__module__.startswith("submitit") else None


def slurm_plugins() -> list:
    """``[SLURMEnvironment(auto_requeue=False)]`` when running under SLURM, else ``[]``: submitit
    owns requeueing (module doc), Lightning keeps reading ranks and nodes from SLURM."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


class PreemptCheckpoint(L.Callback):
    """On submitit's signal: ``last.ckpt`` at the next batch or validation end, then requeue."""

    def __init__(self, ckpt_path: Path):
        self.ckpt_path = Path(ckpt_path)
        self._sig: Optional[int] = None
        self._submitit: Optional[Callable] = None
        self._pending: Optional[tuple[int, Any]] = None

    def on_fit_start(self, trainer, pl_module):
        self._sig = submitit_signal()
        if self._sig is not None:
            self._submitit = signal.getsignal(self._sig)
            signal.signal(self._sig, self._mark)

    def _mark(self, signum, frame):
        log.warning(f"[tunelab] got {signal.Signals(signum).name} (SLURM time limit or preemption): "
                    f"checkpointing at the end of this batch, then requeueing")
        self._pending = (signum, frame)

    def _checkpoint_and_requeue(self, trainer) -> None:
        signum, frame = self._pending
        self._pending = None
        trainer.save_checkpoint(str(self.ckpt_path))
        log.warning(f"[tunelab] saved {self.ckpt_path} at step {trainer.global_step}; handing over to "
                    f"submitit to requeue the job")
        mark_requeue_started()  # the job's results.json stays running (tunelab.ops.interrupt)
        self._submitit(signum, frame)  # requeues and exits (SystemExit), or raises if it may not

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._pending:
            self._checkpoint_and_requeue(trainer)

    def on_validation_end(self, trainer, pl_module):
        if self._pending and trainer.state.fn == "fit" and not trainer.sanity_checking:
            self._checkpoint_and_requeue(trainer)

    def teardown(self, trainer, pl_module, stage):
        # After fit (or on an error) submitit's handler is back; a signal not acted on yet is
        # passed on now: the requeued job finds the fit finished in last.ckpt and only tests.
        if self._sig is None:
            return
        signal.signal(self._sig, self._submitit)
        self._sig = None
        if self._pending:
            signum, frame = self._pending
            self._pending = None
            mark_requeue_started()
            self._submitit(signum, frame)
