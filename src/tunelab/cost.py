"""What a job cost: CPU seconds and compute threads, recorded in results.json (``cost``).

Wall time alone misleads on a shared machine: a job slowed by other processes shows more
wall time but not more CPU time. So every job records the CPU seconds (user + system) of its
process and of the child processes it waited for (data-loader workers, DDP ranks), and the
thread count torch ran with; the report shows both per arm (:mod:`tunelab.report.cost`).

A job resumed from its last checkpoint after a kill counts what the killed attempts had spent up
to that checkpoint too (carried in the checkpoint by ``tunelab.ops.resume``): its ``cpu_s`` is
then what the run cost, not only its last piece (a resumed run recorded 55 of its ~300 CPU s,
and ``tunelab replay`` and the report price runs with it). Work done after the checkpoint and
lost in the kill is not counted; ``cpu_s_before_resume`` says how much was carried. The same holds
for the job's running wall time, ``wall_s`` (``wall_s_before_resume``): ``duration_s`` of
results.json is the last attempt's only, so a resumed run's samples per second read from it would
count the whole run's samples over part of its time.
"""

from __future__ import annotations

import resource
import sys
import time


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children, so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def wall_seconds() -> float:
    return time.monotonic()


# The running job's clocks: each one's start reading, and the seconds carried from the attempts before
# a resume. One job at a time per process (a multirun's basic launcher runs them in turn).
_job = {"cpu0": None, "wall0": None, "cpu_carried": 0.0, "wall_carried": 0.0}


def begin_job() -> None:
    """Start the job's CPU and wall clocks (tunelab.run, once per job)."""
    _job.update(cpu0=cpu_seconds(), wall0=wall_seconds(), cpu_carried=0.0, wall_carried=0.0)


def _this_attempt(clock, start: str) -> float:
    """Seconds on ``clock`` since this attempt began (0 before :func:`begin_job`)."""
    now = clock()
    return now - (_job[start] if _job[start] is not None else now)


def attempt_wall_s() -> float:
    """This attempt's wall seconds (results.json's ``duration_s``)."""
    return _this_attempt(wall_seconds, "wall0")


def job_cpu_so_far() -> float:
    """The job's CPU seconds so far, the carried ones included (saved in each checkpoint)."""
    return _this_attempt(cpu_seconds, "cpu0") + _job["cpu_carried"]


def job_wall_so_far() -> float:
    """The job's running wall seconds so far, the carried ones included (saved in each checkpoint)."""
    return attempt_wall_s() + _job["wall_carried"]


def carry(cpu_s: float, wall_s: float | None = None) -> None:
    """The job resumed from a checkpoint saved after ``cpu_s`` CPU seconds and ``wall_s`` wall
    seconds of its earlier attempts (a checkpoint written by an older tunelab carries CPU seconds only)."""
    _job["cpu_carried"] = max(0.0, float(cpu_s))
    _job["wall_carried"] = max(0.0, float(wall_s)) if wall_s is not None else 0.0


def job_cost() -> dict:
    """The ``cost`` field: the job's CPU and running wall seconds (those carried from before a resume
    included) and torch's thread count (if loaded)."""
    torch = sys.modules.get("torch")
    out = {"cpu_s": round(job_cpu_so_far(), 3), "wall_s": round(job_wall_so_far(), 3),
           "threads": torch.get_num_threads() if torch is not None else None}
    if _job["cpu_carried"]:
        out["cpu_s_before_resume"] = round(_job["cpu_carried"], 3)
    if _job["wall_carried"]:
        out["wall_s_before_resume"] = round(_job["wall_carried"], 3)
    return out


def hms(seconds) -> str:
    """Seconds as h:mm:ss (whole seconds, never negative); "-" when unknown. The one duration format
    of the job table, the tuning progress and the batch progress lines."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def run_wall_s(result: dict):
    """A run's running wall seconds read from its results.json: ``cost.wall_s`` (every attempt of a
    resumed run, up to the checkpoint it resumed from) where recorded, else ``duration_s`` (its last
    attempt's). ``tunelab status``, the report and checklist.md all read it here."""
    wall = (result.get("cost") or {}).get("wall_s")
    return wall if wall is not None else result.get("duration_s")
