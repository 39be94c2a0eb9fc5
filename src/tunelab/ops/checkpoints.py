"""Checkpoints written atomically and loaded safely.

A checkpoint is written to a temp file in the same dir, fsynced and ``os.replace``d (a kill or a
full disk leaves the old file or nothing, never a truncated one), and every checkpoint is
*loaded* with ``torch.load(weights_only=True)`` (a checkpoint cannot run code when it is opened).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from tunelab.errors import TunelabError
from tunelab.io import atomic_write


class CheckpointWriteError(TunelabError):
    """A checkpoint could not be written (disk full, unwritable dir)."""


class UnsafeCheckpointError(TunelabError):
    """A checkpoint holds objects that only an unrestricted (code-running) unpickler could load."""


def _atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), binary=True, error=CheckpointWriteError,
                 what="checkpoint ", fix="Free disk space, choose another output dir, or set "
                                         "trainer.enable_checkpointing=false.")


def safe_torch_load(path: Any, map_location: Any = "cpu") -> Any:
    """``torch.load(weights_only=True)`` with a clear error for checkpoints that need more."""
    import pickle

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


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic, fsynced writes and weights_only loads."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        _atomic_torch_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        if not Path(path).exists():
            raise TunelabError(f"checkpoint not found: {path}")
        return safe_torch_load(path, map_location=map_location)
