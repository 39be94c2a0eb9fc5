"""Resume after a kill: the job's own last checkpoint, and what Lightning does not save.

``ResumeStateCallback`` puts the training sampler's position in the epoch and the RNG states
(torch, numpy, python) into every checkpoint and restores them, so a resumed run continues bit
for bit where the checkpoint was taken.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Optional

import lightning as L
import numpy as np
import torch

log = logging.getLogger("tunelab")

LAST_CKPT = "last.ckpt"


def last_checkpoint(out_dir: Path, subdir: str = "checkpoints") -> Optional[Path]:
    p = Path(out_dir) / subdir / LAST_CKPT
    return p if p.is_file() else None


def _rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # numpy's state as plain ints/tensors: loadable with weights_only=True.
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


class ResumeStateCallback(L.Callback):
    """Saves the RNG states and the training sampler's position in every checkpoint and
        restores them on resume (see module doc).

        The training loader (``ResumableDataLoader``) also hands its position to Lightning, but
        Lightning 2.6 drops it on resume whenever ``configure_optimizers`` has read
        ``trainer.estimated_stepping_batches`` (our linear schedule does): that sets up the loader
        before the checkpoint is restored, and the stashed state is then never applied (Lightning
        issue #20550, open). A run resumed mid-epoch then re-trained on epoch 0's batch order: the
        final val/loss was 1e-5..4e-5 off an uninterrupted run. So this callback carries the
        position itself and applies it in ``on_train_start``: after the restore, before the first
        batch is drawn (the sampler reads its position lazily, at the first batch).
        """

    def __init__(self, identity: Optional[str] = None):
        # The job identity (tunelab.ops.identity) goes into every checkpoint; a checkpoint of
        # another config is refused instead of being continued as if it were this job's.
        self.identity = identity
        # And the digest of the job's plan (tunelab.models.plan: what trains), read from the
        # module at setup: a checkpoint of another plan is refused too.
        self.plan: Optional[str] = None
        self._plan_as_before: Optional[str] = None  # the digest an older tunelab wrote (Plan.legacy_digest)
        self._pending: Optional[dict] = None
        self._trainer = None

    @property
    def state_key(self) -> str:
        return "tunelab.ResumeState"

    def setup(self, trainer, pl_module, stage):
        self._trainer = trainer
        plan = getattr(pl_module, "plan", None)
        self.plan = getattr(plan, "digest", None)
        self._plan_as_before = getattr(plan, "legacy_digest", None)

    def state_dict(self) -> dict:
        from tunelab.cost import job_cpu_so_far, job_wall_so_far

        # cpu_s, wall_s: what the job has spent so far, so a resumed run's cost is the whole run's
        state = {"rng": _rng_state(), "identity": self.identity, "plan": self.plan,
                 "cpu_s": job_cpu_so_far(), "wall_s": job_wall_so_far()}
        loader = _train_loader(self._trainer)
        if loader is not None:
            state["train_loader"] = loader.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("identity")
        if saved and self.identity and saved != self.identity:
            from tunelab.errors import ConfigError

            raise ConfigError(f"the checkpoint being resumed was written by a job with another config "
                              f"(identity {saved[:12]}, this job {self.identity[:12]}): refusing to continue "
                              f"it; delete the job dir's checkpoints/ or choose another resume.name.")
        plan = state.get("plan")
        if plan and self.plan and plan not in (self.plan, self._plan_as_before):
            from tunelab.errors import ConfigError

            raise ConfigError(f"the checkpoint being resumed was trained under another plan (what trains: "
                              f"{plan}, this job {self.plan}; a model or tunelab version change): refusing to "
                              f"continue it; delete the job dir's checkpoints/ to start over.")
        self._pending = state

    def on_train_start(self, trainer, pl_module):
        # After the restore and before the first batch is drawn. The RNG states go back
        # here, not at the first training step: drawing a batch may itself use torch's RNG
        # (the masked-LM collator picks its masks then), and the saved state is the one that
        # draw saw in the uninterrupted run. (Nothing else draws from the global RNG in
        # between: every loader has its own generator.) The fit loop calls
        # set_epoch(<next epoch>) after this, so a position saved at the end of an epoch is
        # discarded by the sampler, as it should be.
        if self._pending is None:
            return
        if "cpu_s" in self._pending:  # here, not at load: a test-time restore must not carry
            from tunelab.cost import carry

            carry(self._pending["cpu_s"], self._pending.get("wall_s"))
        _close_resumed_epoch(trainer.fit_loop)
        loader = _train_loader(trainer)
        if loader is not None and "train_loader" in self._pending:
            loader.load_state_dict(self._pending["train_loader"])
        _set_rng_state(self._pending["rng"])
        log.info(f"[tunelab] resumed at step {trainer.global_step} (epoch {trainer.current_epoch})")
        self._pending = None


def _close_resumed_epoch(fit_loop) -> None:
    """Resuming from a checkpoint taken at an epoch's end (after its last batch, e.g. at the
    validation that ends it): Lightning 2.6 marks that epoch processed and completed in
    ``FitLoop.reset`` but keeps its "restarted mid-epoch" stage, so ``on_advance_start`` neither
    counts the next epoch as ready/started nor calls ``on_train_epoch_start`` for it. A second
    resume, from a checkpoint in that next epoch, then found ready == processed, took the epoch
    for finished and ended training early (no validation of the last epoch; found by the seeded
    kill test, kills at steps 8 and 11). Clearing the stage here, after ``reset`` and before the
    next epoch starts, lets the new epoch start as in an uninterrupted run.
    """
    p = fit_loop.epoch_progress.current
    if fit_loop.restarted_mid_epoch and p.ready == p.started == p.processed == p.completed:
        fit_loop.reset_restart_stage()


def _train_loader(trainer) -> Optional[Any]:
    """The training loader if it can save its position (``ResumableDataLoader``), else None."""
    loader = trainer.train_dataloader if trainer is not None else None  # None before fit sets it up
    return loader if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict") else None
