"""Finding a sweep's job dirs, reading each one, and grouping them by what was swept.

A job is found by its ``results.json`` or its ``.hydra/overrides.yaml``, so a job that died
before writing results is still found (and named as missing). Groups are the override values
that differ between jobs, except the seed: seeds are the replicates within a group.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from tunelab.ops.identity import is_bookkeeping
from tunelab.ops.lock import recorded_process_alive
from tunelab.report.baseline import degenerate_reasons
# The job record and its override helpers live below collect and baseline (``jobs``); importers
# of collect still find them here.
from tunelab.report.jobs import SEED_KEYS, Job, fixed_overrides, job_value, natural_key, parse_overrides

# The label of the one group when nothing but seeds varies and no override was fixed either.
SINGLE_GROUP = "default config"


# =============================================================================== discovery


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Every dir holding ``results.json`` or ``.hydra/overrides.yaml``.

    Hidden dirs (``.hydra``, ``.submitit``) and the inside of a job dir (checkpoints, logs) are
    not searched, so a job is found once however its launcher nests it.
    """
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if "results.json" in files or (here / ".hydra" / "overrides.yaml").is_file():
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.relative_to(sweep_dir).as_posix()))


def _read_hydra_overrides(job_dir: Path) -> list[str] | None:
    """The job's ``.hydra/overrides.yaml`` list, or None when absent/unreadable."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        return None
    return [str(x) for x in data] if isinstance(data, list) else None


def load_job(job_dir: Path, sweep_dir: Path) -> Job:
    """Read one job dir; never raises — what cannot be read becomes a named problem."""
    name = job_dir.relative_to(sweep_dir).as_posix()
    hydra_overrides = _read_hydra_overrides(job_dir)
    path = job_dir / "results.json"
    if not path.is_file():
        return Job(name, job_dir, "missing", hydra_overrides,
                   problem="no results.json (the job died before writing it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Job(name, job_dir, "corrupt", hydra_overrides,
                   problem=f"results.json unreadable: {type(exc).__name__}: {exc}")
    if isinstance(data, dict) and data.get("status") == "running":
        # A kill (SIGKILL, OOM, node loss, scancel) leaves the record a job writes at its start. A
        # job whose process still runs on this host is no problem, only not a result yet (a report
        # read while the sweep goes on); one on another host cannot be told here (``tunelab status``
        # asks SLURM).
        alive = recorded_process_alive(data)
        if alive:
            return Job(name, job_dir, "running", _overrides_of(data, hydra_overrides), result=data,
                       problem=f"still running (started {data.get('started_at')}): not a result yet")
        return Job(name, job_dir, "interrupted", _overrides_of(data, hydra_overrides), result=data,
                   problem=f"results.json still says running (started {data.get('started_at')}): the job "
                           + ("was killed before it finished (its process is gone)" if alive is False else
                              "was killed before it finished, or is still running on another host"))
    if not isinstance(data, dict) or data.get("status") not in ("ok", "failed", "interrupted"):
        return Job(name, job_dir, "corrupt", hydra_overrides,
                   problem="results.json has no status 'ok', 'failed' or 'interrupted'")
    job = Job(name, job_dir, data["status"], _overrides_of(data, hydra_overrides), result=data)
    if job.state != "ok":  # failed, or stopped by SIGINT/SIGTERM (tunelab.ops.interrupt)
        job.problem = _error_text(data.get("error"))
    elif (bad := _not_a_result(data.get("metrics"))) is not None:
        job.state, job.problem = "corrupt", f"results.json says ok, but {bad}"
    return job


def _not_a_result(metrics: Any) -> str | None:
    """Why an ok record's metrics are no result (not a dict, a value that is not a number), or
    None. Such a run is listed under Problems, not counted ok with no value. (null is a value
    the JSON writer leaves for NaN/inf: the report notes those per metric.)"""
    if not isinstance(metrics, dict):
        return f"its metrics are {type(metrics).__name__}, not a dict"
    for k, v in metrics.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"its metric {k} is {v!r}, not a number"
    return None


def _overrides_of(data: dict, hydra_overrides: list[str] | None) -> list[str] | None:
    overrides = data.get("overrides")
    return [str(x) for x in overrides] if isinstance(overrides, list) else hydra_overrides


def _error_text(error: Any) -> str:
    """``Type: message`` of a failed run's error record, whatever shape it came in."""
    if isinstance(error, dict):
        kind, msg = error.get("type") or "error", error.get("message") or ""
        return f"{kind}: {msg}".strip().rstrip(":")
    return str(error) if error else "failed (no error recorded)"


# =============================================================================== grouping


def swept_keys(jobs: Sequence[Job], seed_keys: Sequence[str] = SEED_KEYS) -> list[str]:
    """Override keys whose values differ between jobs (a key absent from some jobs differs too),
    bookkeeping aside (tunelab.ops.identity: ``resume``, ``logger``, progress, …): a study whose
    later seeds were run with ``resume=auto`` is one study, not two arms per arm.

    Jobs whose overrides are unknown (corrupt results.json without .hydra/) do not vote: one
    unreadable job must not split every other job into its own group.
    """
    known = [(j, parse_overrides(j.overrides)) for j in jobs if j.overrides is not None]
    keys = sorted(k for k in {k for _, p in known for k in p} - set(seed_keys) if not is_bookkeeping(k))
    return [k for k in keys if len({job_value(j, k, p) for j, p in known}) > 1]


def group_label(job: Job, keys: Sequence[str], single: str = SINGLE_GROUP) -> str:
    """``freeze=last2`` or ``method=sparse,method.features=tfidf``; ``single`` when nothing is swept."""
    if not keys:
        return single
    if job.overrides is None:
        return "(unknown overrides)"
    parsed = parse_overrides(job.overrides)
    return ",".join(f"{k}={job_value(job, k, parsed) or '<unset>'}" for k in keys)


def collect(sweep_dir: Path, seed_keys: Sequence[str] = SEED_KEYS) -> tuple[list[Job], dict[str, list[Job]], list[str]]:
    """Load all jobs and group them; returns (jobs, groups in natural order, swept keys)."""
    return group_jobs([load_job(d, sweep_dir) for d in find_job_dirs(sweep_dir)], seed_keys)


def group_jobs(jobs: list[Job], seed_keys: Sequence[str] = SEED_KEYS, keys: Sequence[str] | None = None,
               single: str | None = None) -> tuple[list[Job], dict[str, list[Job]], list[str]]:
    """Group loaded jobs by the swept keys (see :func:`collect`), or by ``keys`` when given (a
    tuning study's arms: its jobs also differ in the values each arm chose, which are not groups).

    Ok runs also get their ``degenerate`` reasons here, so every reader of a group (statistics,
    plots, the curriculum summary) sees the same flags. With nothing swept, the one group is
    named by the overrides every job shared (``freeze=last2``), so the report says what ran.
    """
    keys = swept_keys(jobs, seed_keys) if keys is None else list(keys)
    single = single or ",".join(fixed_overrides(jobs, seed_keys)) or SINGLE_GROUP
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        job.group = group_label(job, keys, single)
        if job.state == "ok":
            job.degenerate = degenerate_reasons(job)
        groups.setdefault(job.group, []).append(job)
    ordered = {g: groups[g] for g in sorted(groups, key=natural_key)}
    return jobs, ordered, keys
