"""What a job ran on, for results.json: library versions, Python, hardware, git state, SLURM ids.

A number in a study is only reproducible with the software and hardware that made it: a torch
or transformers upgrade changes kernels and defaults, a GPU changes float reduction order. So
every results.json carries this record (``environment``), and a dirty git tree says so.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Optional

# tokenizers, sentencepiece and protobuf make the token ids (a SentencePiece-only checkpoint's fast
# tokenizer is converted at load time); peft and adapters the modules of the PEFT arms.
LIBRARIES = ("tunelab", "torch", "transformers", "tokenizers", "sentencepiece", "protobuf", "peft", "adapters",
             "lightning", "torchmetrics", "seqeval", "hydra-core", "omegaconf", "datasets", "numpy", "scipy",
             "scikit-learn", "wandb", "submitit")
SLURM_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT")


def _version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Python and the installed versions of the libraries a result depends on (report headers
    compare them across jobs); a library that is not installed is left out."""
    out = {"python": platform.python_version()}
    out.update({name: v for name in LIBRARIES if (v := _version(name)) is not None})
    if "tunelab" not in out:  # run from a source tree without installing
        from tunelab import __version__

        out["tunelab"] = __version__
    return out


def cpu_model() -> Optional[str]:
    """``model name`` of /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_bf16_units() -> list[str]:
    """The CPU's bf16 instruction sets (``amx_bf16``, ``avx512_bf16`` in /proc/cpuinfo's flags).

    Where there are none, bf16 autocast (``trainer=cpu_bf16``) is emulated and slower than fp32.
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return sorted(flags & {"amx_bf16", "avx512_bf16"})


def gpus() -> Optional[dict]:
    """CUDA devices this process sees (count and names; an empty list without CUDA), or None
    before torch is loaded: a job records its environment before its config is checked, and a
    config error must not wait seconds for torch (run.py fills this in once torch is loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        available = torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - torch half imported (a Ctrl-C during its import): not known
        return None

    if not available:
        return {"count": 0, "names": []}
    n = torch.cuda.device_count()
    return {"count": n, "names": [torch.cuda.get_device_name(i) for i in range(n)]}


@lru_cache(maxsize=1)
def git_state() -> dict:
    """HEAD of the repository this code runs from and whether tracked files have local changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def environment_record() -> dict:
    """The ``environment`` field of results.json (schema: docs/RESULTS_SCHEMA.md)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpus(),
        "git": git_state(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm": {k: os.environ[k] for k in SLURM_VARS if k in os.environ} or None,
    }
