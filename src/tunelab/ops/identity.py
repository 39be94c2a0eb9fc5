"""A job's identity: the hash of what decides its results, and the job dir that goes with it.

``resume=auto`` reuses a job dir (skips a job whose results.json says ok, continues one from its
``last.ckpt``). A dir found by name or job number alone is not enough: a rerun with another
learning rate, or a sweep that grew or was reordered, would be handed another config's results.
So every job has an identity, the SHA-256 of its resolved config without bookkeeping, stored in
results.json (``identity``) and in every checkpoint, and a dir is reused only when they match.

What is hashed: the whole resolved config (model, data, task, method, freeze, optim, trainer,
seed, ckpt_path, the method groups), minus :data:`BOOKKEEPING`: keys that say where and how a
job is recorded, never what it computes. ``hydra.*`` is never part of a job config.

When the identity does not match:

* a sweep job (``-m resume=auto``) gets a new dir: its usual ``<job num>`` if that is free or
  holds the same identity, else the dir of the sweep that holds its identity (a reordered or
  grown sweep reuses exactly the finished jobs with an identical config), else
  ``<job num>-<identity[:8]>``. :func:`sweep_subdir` is the ``hydra.sweep.subdir`` resolver.
* a single run (``resume.name`` or an explicit ``hydra.run.dir``) is refused with exit 2 and one
  sentence: the name was chosen by the user, and silently running elsewhere would surprise.
  :func:`hydra_output_subdir` keeps Hydra from rewriting that dir's ``.hydra/`` before the
  refusal, so the dir never contradicts its results.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

# Dotted keys left out of the identity: they change where or how a job is recorded, not its
# numbers. resume.* (the same job resumed is the same job), logger.* (W&B/CSV), cache_dir (a
# cache gives identical inputs), notes, progress and checkpoint bookkeeping, and the frozen
# feature cache where it computes the same numbers (tunelab.models.cache.frozen: fp32 and a
# float32 store; see :func:`_cache_exact`, which keeps it in the identity otherwise); the tune sweeper's
# search space and the job's phase in it (tunelab.schemas.study: read by no code that trains).
BOOKKEEPING = ("resume", "logger", "cache_dir", "notes", "search", "study", "trainer.enable_progress_bar",
               "trainer.log_every_n_steps", "trainer.progress_every_n_steps", "trainer.keep_checkpoints",
               "trainer.feature_cache")


def is_bookkeeping(key: str) -> bool:
    """Whether an override key (``resume``, ``resume.name``, ``logger.project``) is bookkeeping:
    jobs that differ only in such keys computed the same thing (the report groups them together)."""
    key = key.lstrip("+~")
    return any(key == b or key.startswith(b + ".") for b in BOOKKEEPING)


# The version of the rules that turn a config into what trains (tunelab.models.plan, which
# records it in every plan). Bump it when they change what a config trains: a job's identity
# includes it, so a job planned under other rules is never skipped or resumed as this one.
# 3: base weights outside the layers belong to the lowest block that uses them (models.freezing).
PLAN_RULES = 3
# The same for one ``peft`` method, where a change alters only what that method trains: its jobs
# become other jobs and every other job keeps its identity (so a long study of other arms goes on).
# ia3 2: its scaling vectors get no weight decay (tunelab.models.freezing.NO_DECAY_PARTS).
PEFT_RULES = {"ia3": 2}
RESOLVER_SUBDIR = "tunelab_job_subdir"
RESOLVER_HYDRA_SUBDIR = "tunelab_hydra_subdir"


def _cache_exact(trainer: Any) -> bool:
    """Whether the frozen-feature cache's route computes exactly what the uncached route does:
    only in full fp32 with a float32 store. Under mixed precision the cached route runs the frozen
    part in fp32 outside autocast, and a bfloat16 store rounds the cached states: the same config
    with the cache on and off then gives other numbers (test loss 0.6919988 vs 0.6920102 on a tiny
    encoder), so ``trainer.feature_cache`` is part of the identity there."""
    if not isinstance(trainer, dict):
        return True
    return (str(trainer.get("precision", "32-true")) in ("32-true", "32")
            and str(trainer.get("feature_cache_dtype", "float32")) == "float32")


def identity_payload(cfg: Any) -> dict:
    """The resolved config that is hashed: plain data, ``hydra`` and :data:`BOOKKEEPING` removed,
    and the version of the rules that turn a config into what trains (``plan_rules``:
    :data:`PLAN_RULES`; ``peft_rules``: :data:`PEFT_RULES` of its peft method, if any), so a job
    planned under other rules is another job."""
    if isinstance(cfg, DictConfig):
        data = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
                for k in cfg if k != "hydra"}
    else:
        data = {k: v for k, v in dict(cfg).items() if k != "hydra"}
    kept = {} if _cache_exact(data.get("trainer")) else {"feature_cache": data["trainer"].get("feature_cache")}
    for dotted in BOOKKEEPING:
        *parents, leaf = dotted.split(".")
        node = data
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    if kept and isinstance(data.get("trainer"), dict):
        data["trainer"].update(kept)
    data["plan_rules"] = PLAN_RULES
    peft = data.get("peft")
    if isinstance(peft, dict) and peft.get("name") in PEFT_RULES:
        data["peft_rules"] = PEFT_RULES[peft["name"]]
    return data


def job_identity(cfg: Any) -> str:
    """SHA-256 (hex) of :func:`identity_payload`, keys sorted: equal configs, equal identities."""
    text = json.dumps(identity_payload(cfg), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_identity(job_dir: Path) -> tuple[bool, Optional[str]]:
    """(results.json exists, the identity it records or None)."""
    p = Path(job_dir) / "results.json"
    if not p.is_file():
        return False, None
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return True, None
    return True, rec.get("identity") if isinstance(rec, dict) else None


def job_already_ok(out_dir: Path) -> Optional[dict]:
    """The job's results.json if it says ok (resume=auto skips such jobs), else None. Here, not
    in ops/resume.py, so that a skip imports no torch (run.py)."""
    p = Path(out_dir) / "results.json"
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("status") == "ok" else None


def dir_fits(job_dir: Path, identity: str) -> bool:
    """A dir may hold this job: nothing recorded yet, or a record of the same identity."""
    exists, ident = recorded_identity(job_dir)
    return not exists or ident == identity


def sweep_subdir(num: Any, *, _root_: DictConfig) -> str:
    """``hydra.sweep.subdir`` under resume=auto: the job dir of this identity (module doc)."""
    identity = job_identity(_root_)
    sweep = Path(str(_root_.hydra.sweep.dir))
    own = sweep / str(num)
    if own.is_dir() and recorded_identity(own) == (True, identity):
        return str(num)
    if sweep.is_dir():
        for d in sorted(sweep.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and recorded_identity(d) == (True, identity):
                return d.name
    return str(num) if dir_fits(own, identity) else f"{num}-{identity[:8]}"


def hydra_output_subdir(*, _root_: DictConfig) -> Optional[str]:
    """``hydra.output_subdir`` under resume=auto: ``.hydra``, or None (Hydra writes nothing)
    when the job dir records another identity, whose run is then refused (module doc)."""
    out = _root_.hydra.runtime.output_dir
    if out and not dir_fits(Path(str(out)), job_identity(_root_)):
        return None
    return ".hydra"


def register_resolvers() -> None:
    """Called by ``tunelab.config.register_configs`` (explicitly, before Hydra composes)."""
    for name, fn in ((RESOLVER_SUBDIR, sweep_subdir), (RESOLVER_HYDRA_SUBDIR, hydra_output_subdir)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=False)


def mismatch_message(job_dir: Path, recorded: Optional[str], identity: str) -> str:
    what = f"identity {recorded[:12]}" if recorded else "no recorded identity (an older tunelab)"
    return (f"resume=auto: {job_dir} holds a job with another config ({what}; this run's identity is "
            f"{identity[:12]}), so it is neither skipped nor resumed there: choose another resume.name "
            f"(or hydra.run.dir), or delete that dir to start over.")
