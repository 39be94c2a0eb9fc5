"""Experiment loggers: W&B (default, offline unless the user set W&B up), CSV, or none.

W&B must never block a run: no login prompt, no network wait. ``mode=auto`` goes online only
when credentials already exist (WANDB_API_KEY or a netrc entry); otherwise it writes an offline
run under the job's dir, which ``wandb sync`` can upload later (one log line says where and
gives the command). The API key is never put into a config or file by tunelab.

A job keeps one W&B run: its id is derived from the job identity and dir
(:func:`wandb_run_id`) and W&B resumes it (``resume="allow"``), so a job resumed after a kill
or requeued by SLURM continues its own run instead of opening a second one. Tags are the swept
keys only (``freeze=all``), each at most 64 characters (W&B's limit); every value is in the
run's config anyway, so a long one (``curriculum.stages=[...]``) is left out of the tags.
"""

from __future__ import annotations

import hashlib
import logging
import netrc
import os
from pathlib import Path
from typing import Any, Iterable, Optional

log = logging.getLogger("tunelab")

MAX_TAG_LEN = 64  # W&B rejects longer tags


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


def wandb_run_id(identity: Optional[str], out_dir: Path) -> Optional[str]:
    """The same job (identity) in the same dir is the same W&B run; a new dir is a new run."""
    if not identity:
        return None
    return hashlib.sha256(f"{identity}:{Path(out_dir).resolve()}".encode()).hexdigest()[:32]


def sweep_keys(sweep_dir: Optional[Path]) -> set[str]:
    """Keys a sweep varies: the sweep overrides of its command (``freeze=none,all``,
    ``seed=range(3)``) and ``hydra.sweeper.params``, as Hydra saved them in multirun.yaml."""
    path = Path(sweep_dir) / "multirun.yaml" if sweep_dir else None
    if path is None or not path.is_file():
        return set()
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep

    try:
        hydra = (yaml.safe_load(path.read_text()) or {}).get("hydra") or {}
        parsed = OverridesParser.create().parse_overrides(list((hydra.get("overrides") or {}).get("task") or []))
    except Exception:  # an unreadable file costs the tags, never the run
        return set()
    params = (hydra.get("sweeper") or {}).get("params") or {}
    # A one-value choice(v) varies nothing: tunelab.overrides writes key=v that way in a multirun
    # when a swept group chooses the node holding the key.
    varied = [o for o in parsed if o.is_sweep_override()
              and not (isinstance(o.value(), ChoiceSweep) and len(o.value().list) == 1)]
    return {o.key_or_group for o in varied} | set(params)


def swept_tags(overrides: Iterable[str], swept: set[str], exclude: tuple[str, ...] = ("seed",)) -> list[str]:
    """``key=value`` of the job's overrides whose key is swept (not the seed: replicates share
    a group), each at most :data:`MAX_TAG_LEN` characters."""
    tags = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key in swept and key not in exclude and len(o) <= MAX_TAG_LEN:
            tags.append(o)
    return tags


def build_logger(logger_cfg: Any, out_dir: Path, *, run_name: str, group: Optional[str],
                 tags: list[str], config: dict, job_type: Optional[str] = None, run_id: Optional[str] = None):
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
    logger = WandbLogger(
        project=logger_cfg.project, entity=logger_cfg.entity, save_dir=str(out_dir),
        name=run_name, group=logger_cfg.group or group,
        tags=[t for t in list(logger_cfg.tags) + tags if len(t) <= MAX_TAG_LEN],
        job_type=job_type, mode=wandb_mode(logger_cfg.mode), config=config, id=run_id, resume="allow",
        settings=_wandb_settings(),
    )
    # Lightning always passes ``anonymous`` (None unless asked) and wandb >= 0.19 warns "The
    # anonymous setting has no effect" for any value: a line that only confuses a user.
    logger._wandb_init.pop("anonymous", None)
    return logger


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
            offline = bool(getattr(run.settings, "_offline", False)) or run.settings.mode == "offline"
            run_dir = getattr(run.settings, "sync_dir", None)
            wandb.finish(exit_code=exit_code)
            if offline and run_dir:
                log.info(f"[tunelab] W&B run {run.id} is offline, saved in {run_dir}; upload it with: "
                         f"wandb sync {run_dir}")
