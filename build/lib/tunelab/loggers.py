"""Experiment loggers: W&B (default, offline unless the user set W&B up), CSV, or none.

W&B must never block a run: no login prompt, no network wait. ``mode=auto`` goes online only
when credentials already exist (WANDB_API_KEY or a netrc entry); otherwise it writes an offline
run under the job's dir, which ``wandb sync`` can upload later. The API key is never put into
a config or file by tunelab.
"""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any, Optional


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        rc = netrc.netrc(os.path.expanduser("~/.netrc"))
        return rc.authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_mode(cfg_mode: str) -> str:
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if cfg_mode != "auto":
        return cfg_mode
    return "online" if _wandb_credentials() else "offline"


def build_logger(logger_cfg: Any, out_dir: Path, *, run_name: str, group: Optional[str],
                 tags: list[str], config: dict, job_type: Optional[str] = None):
    """Return a Lightning logger (or False for none)."""
    kind = logger_cfg.name
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(out_dir), name="csv", version="")
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    return WandbLogger(
        project=logger_cfg.project, entity=logger_cfg.entity, save_dir=str(out_dir),
        name=run_name, group=logger_cfg.group or group, tags=list(logger_cfg.tags) + tags,
        job_type=job_type, mode=wandb_mode(logger_cfg.mode), config=config,
        settings=_wandb_settings(),
    )


def _wandb_settings():
    import wandb

    # No console capture thread and no code saving: faster start and nothing sensitive uploaded.
    return wandb.Settings(console="off", save_code=False, silent=True)


def finish_logger(logger, summary: Optional[dict] = None, exit_code: int = 0) -> None:
    """Close the W&B run inside the job: in a multirun, an unfinished run swallows the next job."""
    if not logger:
        return
    try:
        from lightning.pytorch.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return
    if isinstance(logger, WandbLogger):
        import wandb

        run = wandb.run
        if run is not None:
            if summary:
                for k, v in summary.items():
                    run.summary[k] = v
            wandb.finish(exit_code=exit_code)
