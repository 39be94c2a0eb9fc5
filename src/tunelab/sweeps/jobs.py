"""Jobs of tunelab's own sweepers: what to launch, launching a wave, and reading what each job did.

A sweeper that decides what to run next from what finished (adaptive seeds, per-arm tuning) must
know each job's outcome whatever launcher ran it (in-process, submitit, SLURM) and whether the
launching process survived. Return values do not survive a kill and are not the record anyway:
a job's ``results.json`` is (``ok`` with metrics and cost, ``failed`` with the error, ``running``
while it runs or after it was killed). So outcomes are read from the job dirs, found by the
override list each job records (``overrides`` in results.json, ``.hydra/overrides.yaml`` before
that): the same lookup finds a job's dir under any ``hydra.sweep.subdir``, including the
identity-named dirs of ``resume=auto`` (``tunelab.ops.identity``).

A wave is one ``launcher.launch`` call. Every job has a number fixed when it is planned (its
``hydra.job.num``, so its dir under the default subdir): run again after a kill, a job that did
not finish is launched with its own number, into its own dir (continued from its checkpoint
under ``resume=auto``), and a job that finished is not launched again. Numbers of the jobs still
to run are usually one run of consecutive numbers; after a kill mid-wave they may not be, and
each run of consecutive numbers is then launched as a wave of its own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from tunelab.report.collect import Job, find_job_dirs, load_job

FINISHED = ("ok", "failed")
# the better record of one job when several dirs hold it (a rerun without resume=auto)
_RANK = {"ok": 0, "failed": 1, "interrupted": 2, "corrupt": 3, "missing": 4}


@dataclass
class JobSpec:
    """One planned job: a key unique in the sweep, its number and overrides, and tags for the
    sweeper's own bookkeeping (arm, seed, round; the tune sweeper: phase, trial)."""

    key: str
    num: int
    overrides: list[str]
    tags: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Outcome:
    """What a job's dir says: ``status`` ok | failed | interrupted (still ``running``: killed, or
    running now) | missing (no dir found) | corrupt; the record itself when readable."""

    status: str
    dir: Optional[str] = None
    result: Optional[dict] = None
    problem: str = ""

    def metric(self, name: str) -> Optional[float]:
        """A finite numeric metric of an ok job, else None."""
        v = ((self.result or {}).get("metrics") or {}).get(name) if self.status == "ok" else None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        return float(v)

    @property
    def metric_names(self) -> list[str]:
        return sorted(((self.result or {}).get("metrics") or {}))

    @property
    def cpu_s(self) -> Optional[float]:
        v = ((self.result or {}).get("cost") or {}).get("cpu_s")
        return float(v) if isinstance(v, (int, float)) else None

    def fingerprint(self) -> Optional[tuple]:
        """All numeric metrics of an ok run: two runs with equal fingerprints are the same run."""
        if self.status != "ok":
            return None
        m = (self.result or {}).get("metrics") or {}
        return tuple(sorted((k, float(v)) for k, v in m.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)))


def _key(overrides: Sequence[str]) -> tuple:
    return tuple(sorted(str(o) for o in overrides))


def read_outcomes(sweep_dir: Path, specs: Sequence[JobSpec]) -> dict[str, Outcome]:
    """Each spec's outcome, from the job dirs below ``sweep_dir`` that record its overrides."""
    sweep_dir = Path(sweep_dir)
    found: dict[tuple, list[Job]] = {}
    if sweep_dir.is_dir():
        for d in find_job_dirs(sweep_dir):
            job = load_job(d, sweep_dir)
            if job.overrides is not None:
                found.setdefault(_key(job.overrides), []).append(job)
    out = {}
    for spec in specs:
        jobs = found.get(_key(spec.overrides), [])
        if not jobs:
            out[spec.key] = Outcome("missing", problem="no job dir records these overrides")
            continue
        best = min(jobs, key=lambda j: (_RANK.get(j.state, 9), -_finished(j)))
        out[spec.key] = Outcome(best.state, best.name, best.result, best.problem)
    return out


def _finished(job: Job) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str((job.result or {}).get("finished_at"))).timestamp()
    except ValueError:
        return 0.0


def consecutive_runs(specs: Sequence[JobSpec]) -> list[list[JobSpec]]:
    """Specs split where their numbers stop being consecutive (each part: one launch)."""
    runs: list[list[JobSpec]] = []
    for s in sorted(specs, key=lambda s: s.num):
        if runs and s.num == runs[-1][-1].num + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


Launch = Callable[[list, int], Any]  # (override lists, initial job number) -> launcher's returns


def run_wave(launch: Launch, sweep_dir: Path, specs: Sequence[JobSpec],
             validate: Optional[Callable[[list], None]] = None) -> dict[str, Outcome]:
    """Launch the specs that have not finished (one launch per run of consecutive numbers), then
    read every spec's outcome. ``validate``: composes the jobs first (the sweeper's
    ``validate_batch_is_legal``), so a bad override stops the sweep before anything runs."""
    before = read_outcomes(sweep_dir, specs)
    _refuse_stale(sweep_dir, before.values())
    todo = [s for s in specs if before[s.key].status not in FINISHED]
    for part in consecutive_runs(todo):
        batch = [list(s.overrides) for s in part]
        if validate is not None:
            validate(batch)
        launch(batch, part[0].num)
    return read_outcomes(sweep_dir, specs) if todo else before


def _refuse_stale(sweep_dir: Path, outcomes) -> None:
    """A finished job is read, not relaunched: if a file it was made from now holds other content
    (tunelab.ops.inputs), the sweep would decide from, and report, two data sets as one."""
    from tunelab.errors import ConfigError
    from tunelab.ops import inputs

    for o in outcomes:
        if o.status == "ok" and (moved := inputs.stale(o.result)):
            raise ConfigError(f"job {Path(sweep_dir) / str(o.dir)} finished ok while "
                              f"{inputs.say(moved, o.result['inputs'])} held other content: continuing would mix "
                              f"two data sets in one sweep; start it in a new dir (another resume.name), or "
                              f"delete the job dirs made from the old files.")


def first_free_num(sweep_dir: Path) -> int:
    """The first job number above every numbered dir already in the sweep dir, so a new job never
    writes into another study's job dir."""
    sweep_dir = Path(sweep_dir)
    nums = [int(p.name.split("-")[0]) for p in sweep_dir.iterdir()
            if p.is_dir() and p.name.split("-")[0].isdigit()] if sweep_dir.is_dir() else []
    return 1 + max(nums, default=-1)
