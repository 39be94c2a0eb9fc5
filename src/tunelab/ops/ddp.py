"""DDP under Hydra: which trainer settings start several processes, and how ranks > 0 run.

Lightning's ``ddp`` strategy re-launches ``sys.argv`` for ranks > 0; under Hydra that must be
*this job* in *this dir*, not the whole sweep again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional


def is_rank_zero() -> bool:
    """This process is rank 0 (it writes results.json and holds the job dir's lock).

    Lightning's ``rank_zero_only.rank`` once Lightning is loaded (a Trainer may set it), else
    the environment variables Lightning reads it from, in its order: a job checks its config
    before Lightning is imported (run.py), and must not import it just to know its rank.
    """
    rz = sys.modules.get("lightning_utilities.core.rank_zero")
    rank = getattr(getattr(rz, "rank_zero_only", None), "rank", None)
    if rank is None:
        keys = ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")
        rank = next((int(os.environ[k]) for k in keys if os.environ.get(k) is not None), 0)
    return rank == 0


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
