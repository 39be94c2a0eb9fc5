"""Which sweep a sweep dir holds: one sweep per dir, and the list of jobs it defines.

A multirun writes every job into ``hydra.sweep.dir``. Pointed at a dir that holds something
else (another study's results, a report, a home folder), it used to write into it: the report
there was replaced and a foreign ``results.json`` counted as "already ok". So when a multirun
starts (``tunelab.hydra_callbacks.OutputDirCallback``), a non-empty sweep dir must hold *this
same sweep*, else the command stops with exit 2 and the dir is left byte for byte as it was.

The same sweep: what the dir's last launch recorded in :data:`DEFINITION` (``.tunelab-sweep.json``,
or Hydra's ``multirun.yaml`` for sweeps made before it existed) has the same sweeper and the same
*fixed* settings. Swept keys may differ: ``resume=auto`` reuses a sweep dir for the same command
run again, for a sweep that grew (more seeds, another arm, a new swept key) or was reordered, and
the job identity (:mod:`tunelab.ops.identity`) then decides which jobs are done. A fixed setting
that differs (``optim.lr=1e-4`` there, ``3e-5`` here; ``data=csv`` here, unset there) is another
study. Bookkeeping keys (:data:`tunelab.ops.identity.BOOKKEEPING`: ``resume.*``, ``logger``, ...)
are not compared, as they are not part of a job's identity either.

The definition also lets ``tunelab status`` list the jobs a grid sweep defines that never
started (:func:`defined_jobs`), not only those that left a dir.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from tunelab.errors import ConfigError

DEFINITION = ".tunelab-sweep.json"
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# Left behind by nothing, but tolerated: OutputDirCallback's write probe.
_IGNORED = {".tunelab-write-test"}


def definition_of(config: Any) -> dict:
    """What defines the sweep of a multirun config: its task overrides and its sweeper."""
    from omegaconf import OmegaConf

    hc = config.hydra
    params = hc.sweeper.get("params") if "params" in hc.sweeper else None
    return {
        "task_overrides": [str(o) for o in OmegaConf.to_container(hc.overrides.task, resolve=False)],
        "sweeper": str(hc.sweeper.get("_target_", "")),
        "params": {str(k): str(v) for k, v in (OmegaConf.to_container(params, resolve=False) or {}).items()}
        if params is not None else {},
    }


def read_definition(sweep_dir: Path) -> Optional[dict]:
    """The definition its last launch recorded, or None (no sweep, or an unreadable record)."""
    p = Path(sweep_dir) / DEFINITION
    try:
        data = json.loads(p.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        pass
    legacy = Path(sweep_dir) / "multirun.yaml"  # written by Hydra's grid sweeper
    if not legacy.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        return definition_of(OmegaConf.load(legacy))
    except Exception:  # noqa: BLE001 - an unreadable file is "no definition", and said so by the caller
        return None


def write_definition(sweep_dir: Path, defn: dict) -> None:
    from tunelab.io import write_json

    write_json(Path(sweep_dir) / DEFINITION, defn)


def _bookkeeping(key: str) -> bool:
    from tunelab.ops.identity import BOOKKEEPING

    key = key.replace("/", ".")
    return any(key == b or key.startswith(b + ".") for b in (*BOOKKEEPING, "hydra"))


def _parsed(defn: dict) -> list:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = [f"{k}={v}" for k, v in (defn.get("params") or {}).items()]
    return OverridesParser.create().parse_overrides(params + list(defn.get("task_overrides") or []))


def _fixed_and_swept(defn: dict) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """{key: (value as Hydra reads it, the override as typed)} of the fixed overrides, and the
    swept keys."""
    fixed, swept = {}, set()
    for o in _parsed(defn):
        if _bookkeeping(o.key_or_group):
            continue
        if o.is_sweep_override():
            swept.add(o.key_or_group)
        else:
            fixed[o.key_or_group] = ("~" if o.is_delete() else o.get_value_element_as_str(), o.input_line)
    return fixed, swept


def difference(old: dict, new: dict) -> Optional[str]:
    """How the sweep ``new`` differs from the sweep ``old`` recorded (module doc), or None."""
    if old.get("sweeper") != new.get("sweeper"):
        return f"its sweeper is {old.get('sweeper') or 'unknown'}, this one's {new.get('sweeper')}"
    (f_old, s_old), (f_new, s_new) = _fixed_and_swept(old), _fixed_and_swept(new)
    for key in sorted(set(f_old) | set(f_new)):
        there, here = f_old.get(key), f_new.get(key)
        if (there and here and there[0] == here[0]) or (there is None and key in s_old) or (
                here is None and key in s_new):
            continue
        return f"{there[1] if there else key + '=<not set>'} there, {here[1] if here else key + '=<not set>'} here"
    return None


def check_sweep_dir(sweep_dir: Path, new: dict) -> None:
    """Raise ConfigError unless ``sweep_dir`` is absent, empty or holds this same sweep."""
    d = Path(sweep_dir)
    if not d.is_dir():
        return
    entries = sorted(e.name for e in d.iterdir() if e.name not in _IGNORED)
    if not entries:
        return
    fix = ("choose a new or empty dir (resume.name=<new name> or hydra.sweep.dir=<new dir>), or delete that "
           "one to start over; nothing was written there")
    old = read_definition(d)
    if old is None:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise ConfigError(f"hydra.sweep.dir={d} is not empty and holds no tunelab sweep ({shown}): {fix}.")
    diff = difference(old, new)
    if diff is not None:
        raise ConfigError(f"hydra.sweep.dir={d} holds another sweep ({diff}): {fix}.")


def defined_jobs(defn: dict) -> Optional[list[list[str]]]:
    """Every job's overrides, in job-number order, for a grid (basic) sweeper; None for other
    sweepers (Optuna chooses its jobs as it goes)."""
    if defn.get("sweeper") != BASIC_SWEEPER:
        return None
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    try:
        batches = BasicSweeper.split_arguments(_parsed(defn), None)
    except Exception:  # noqa: BLE001 - a definition Hydra cannot expand lists no jobs
        return None
    return [list(job) for batch in batches for job in batch]
