"""Operations: resume after a kill, atomic and safe checkpoints, fault detection, DDP under Hydra.

* ``AtomicCheckpointIO``: Lightning's checkpoint writer, but a checkpoint is written to a temp
  file in the same dir, fsynced and ``os.replace``d (a kill or a full disk leaves the old file or
  nothing, never a truncated one), and every checkpoint is *loaded* with
  ``torch.load(weights_only=True)`` (a checkpoint cannot run code when it is opened).
* ``ResumeStateCallback``: puts what Lightning does not save into the checkpoint: the training
  sampler's position in the epoch and the RNG states (torch, numpy, python), and restores them
  so a resumed run continues bit for bit where the checkpoint was taken.
* ``NonFiniteLossError``: a NaN/inf training loss, reported as a user error (exit 2).
* ``child_argv_for_ddp``: Lightning's ``ddp`` strategy re-launches ``sys.argv`` for ranks > 0;
  under Hydra that must be *this job* in *this dir*, not the whole sweep again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
from pathlib import Path
from typing import Any, Callable, Optional

from tunelab.errors import TunelabError

log = logging.getLogger("tunelab")


LAST_CKPT = "last.ckpt"


class NonFiniteLossError(TunelabError):
    """The training loss became NaN or inf; the run was stopped."""


class CheckpointWriteError(TunelabError):
    """A checkpoint could not be written (disk full, unwritable dir)."""


class UnsafeCheckpointError(TunelabError):
    """A checkpoint holds objects that only an unrestricted (code-running) unpickler could load."""


# --------------------------------------------------------------------------- checkpoints


def _atomic_torch_save(obj: Any, path: Path) -> None:
    import torch

    from tunelab.io import atomic_write

    atomic_write(path, lambda f: torch.save(obj, f), binary=True, error=CheckpointWriteError,
                 what="checkpoint ", fix="Free disk space, choose another output dir, or set "
                                         "trainer.enable_checkpointing=false.")


def safe_torch_load(path: Any, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with a clear error for checkpoints that need more."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as e:  # garbage bytes fail in many ways (IndexError, EOFError, ...)
        if not (isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower()):
            raise TunelabError(f"{path} is not a readable PyTorch checkpoint (truncated or not a "
                               f"checkpoint at all): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains Python objects that only an unrestricted "
            f"unpickler could load (which would let the file run code). Only checkpoints written "
            f"by tunelab/Lightning or plain state dicts are accepted. ({str(e).splitlines()[0]})") from None


def atomic_checkpoint_io():
    """A ``CheckpointIO`` plugin: atomic, fsynced writes; weights_only loads."""
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            _atomic_torch_save(checkpoint, Path(path))

        def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
            if not Path(path).exists():
                raise TunelabError(f"checkpoint not found: {path}")
            return safe_torch_load(path, map_location=map_location)

    return AtomicCheckpointIO()


# --------------------------------------------------------------------------- resume


def job_already_ok(out_dir: Path) -> Optional[dict]:
    """The job's results.json if it says ok (resume=auto skips such jobs), else None."""
    p = Path(out_dir) / "results.json"
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") == "ok" else None


def last_checkpoint(out_dir: Path, subdir: str = "checkpoints") -> Optional[Path]:
    p = Path(out_dir) / subdir / LAST_CKPT
    return p if p.is_file() else None


def _rng_state() -> dict:
    import numpy as np
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # numpy's state as plain ints/tensors: loadable with weights_only=True.
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def resume_callback():
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
    import lightning as L

    class ResumeStateCallback(L.Callback):
        def __init__(self):
            self._pending: Optional[dict] = None
            self._trainer = None

        @property
        def state_key(self) -> str:
            return "tunelab.ResumeState"

        def setup(self, trainer, pl_module, stage):
            self._trainer = trainer

        def state_dict(self) -> dict:
            state = {"rng": _rng_state()}
            loader = _train_loader(self._trainer)
            if loader is not None:
                state["train_loader"] = loader.state_dict()
            return state

        def load_state_dict(self, state: dict) -> None:
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
            loader = _train_loader(trainer)
            if loader is not None and "train_loader" in self._pending:
                loader.load_state_dict(self._pending["train_loader"])
            _set_rng_state(self._pending["rng"])
            log.info(f"[tunelab] resumed at step {trainer.global_step} (epoch {trainer.current_epoch})")
            self._pending = None

    return ResumeStateCallback()


def _train_loader(trainer) -> Optional[Any]:
    """The training loader if it can save its position (``ResumableDataLoader``), else None."""
    loader = trainer.train_dataloader if trainer is not None else None  # None before fit sets it up
    return loader if hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict") else None


# --------------------------------------------------------------------------- fault injection


def fault_injection_callback() -> Optional[Any]:
    """Tests only: ``TUNELAB_FAULT_SIGKILL_AT_STEP=n`` kills this process with SIGKILL when
    global step n starts (no cleanup runs: the same as ``kill -9`` or an OOM kill)."""
    at = os.environ.get("TUNELAB_FAULT_SIGKILL_AT_STEP")
    if not at:
        return None
    import lightning as L

    target = int(at)
    # Optional: only in the job whose output dir ends with this (one job of a sweep).
    only = os.environ.get("TUNELAB_FAULT_ONLY_DIR")

    class _Kill(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == target and (not only or str(trainer.default_root_dir).endswith(only)):
                os.kill(os.getpid(), signal.SIGKILL)

    return _Kill()


# --------------------------------------------------------------------------- DDP under Hydra


def prepare_ddp_children(out_dir: Path, overrides: list[str]) -> None:
    """Make Lightning's ``ddp`` re-launch of ranks > 0 run *this job* in *this dir*.

    Lightning (``_hydra_subprocess_cmd``) starts each extra rank as ``python train.py
    <sys.argv[1:]> hydra.run.dir=<HydraConfig run.dir> hydra.output_subdir=null``. In a sweep
    that would re-run the whole sweep (``-m`` and the comma lists are in sys.argv), and with a
    time-stamped run dir each rank could create its own dir. So before ``fit`` the rank-0
    process points sys.argv at this job's own overrides and the Hydra run dir at this job's
    output dir; the children then write nothing of their own (no .hydra, no log file: see
    ``ddp_child_overrides``) and rank 0 alone writes results.json and logs.
    """
    import sys

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict, read_write

    if not HydraConfig.initialized():
        return
    keep = [a for a in overrides if not a.startswith(("hydra.run.dir=", "hydra.output_subdir="))]
    sys.argv = [sys.argv[0], *keep, *ddp_child_overrides()]
    hc = HydraConfig.get()
    with read_write(hc), open_dict(hc):
        hc.run.dir = str(out_dir)


def ddp_child_overrides() -> list[str]:
    # Ranks > 0 log to the console only: Hydra's file handler would create
    # train_ddp_process_<n>.log next to rank 0's log.
    return ["hydra.job_logging.handlers.file.filename=/dev/null", "hydra/hydra_logging=none"]


# Strategies that Lightning starts with multiprocessing (spawn/fork) from inside the call: the
# calling process keeps running and no script is re-run.
FORKING_STRATEGIES = ("ddp_spawn", "ddp_fork", "ddp_notebook")


def requested_devices(trainer_cfg: Any) -> Optional[int]:
    """The devices per node that ``trainer.devices`` asks for: a count, -1 for all, None for auto.

    Read as Lightning reads it: an int or a digit string is a count, a string with a comma lists
    device ids (``"0,1"``; ``"1,"`` is device 1 alone), a list names the devices to use.
    """
    d = trainer_cfg.devices
    if isinstance(d, bool):
        raise ValueError(f"trainer.devices={d} is not a device count or list")
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        d = d.strip()
        if "," in d:
            return len([x for x in d.split(",") if x.strip()])
        try:
            return int(d)
        except ValueError:
            return None  # "auto": Lightning decides
    return len(d)  # list, tuple or ListConfig of device ids


def is_multi_device(trainer_cfg: Any) -> bool:
    """The job runs more than one process: several devices, all of them (-1), or several nodes."""
    n = requested_devices(trainer_cfg)
    return (n is not None and (n > 1 or n == -1)) or int(trainer_cfg.num_nodes) > 1


def is_multiprocess_strategy(trainer_cfg: Any) -> bool:
    """Lightning will start the extra ranks by re-running this script (``ddp``'s subprocess
    launcher, also what ``strategy=auto`` picks for several devices): see prepare_ddp_children."""
    strategy = str(trainer_cfg.strategy)
    n = requested_devices(trainer_cfg)
    if strategy == "auto":
        return n is not None and (n > 1 or n == -1)
    # devices=auto under ddp may mean several: prepare the children (harmless for one)
    return strategy.startswith("ddp") and not strategy.startswith(FORKING_STRATEGIES) and (n is None or n > 1 or n == -1)


def strategy_with_unused_parameters(trainer_cfg: Any) -> str:
    """``trainer.strategy`` for a model some of whose parameters get no gradient in a step (the
    curriculum's per-task heads and inactive adapters): DDP must then look for unused
    parameters, or it fails at the next step. Other strategies are returned unchanged."""
    strategy = str(trainer_cfg.strategy)
    if strategy in ("ddp", *FORKING_STRATEGIES):
        return f"{strategy}_find_unused_parameters_true"
    if strategy == "auto" and is_multi_device(trainer_cfg):
        return "ddp_find_unused_parameters_true"
    return strategy
