"""What a job cost: CPU seconds and compute threads, recorded in results.json (``cost``).

Wall time alone misleads on a shared machine: a job slowed by other processes shows more
wall time but not more CPU time. So every job records the CPU seconds (user + system) of its
process and of the child processes it waited for (data-loader workers, DDP ranks), and the
thread count torch ran with; the report shows both per arm (:mod:`tunelab.report.cost`).

A job resumed from its last checkpoint after a kill counts what the killed attempts had spent up
to that checkpoint too (carried in the checkpoint by ``tunelab.ops.resume``): its ``cpu_s`` is
then what the run cost, not only its last piece (a resumed run recorded 55 of its ~300 CPU s,
and ``tunelab replay`` and the report price runs with it). Work done after the checkpoint and
lost in the kill is not counted; ``cpu_s_before_resume`` says how much was carried.
"""

from __future__ import annotations

import resource
import sys


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children, so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# The running job's CPU clock: its start reading and the CPU seconds carried from the attempts
# before a resume. One job at a time per process (a multirun's basic launcher runs them in turn).
_job = {"cpu0": None, "carried": 0.0}


def begin_job() -> None:
    """Start the job's CPU clock (tunelab.run, once per job)."""
    _job.update(cpu0=cpu_seconds(), carried=0.0)


def job_cpu_so_far() -> float:
    """The job's CPU seconds so far, the carried ones included (saved in each checkpoint)."""
    start = _job["cpu0"] if _job["cpu0"] is not None else cpu_seconds()
    return cpu_seconds() - start + _job["carried"]


def carry(cpu_s: float) -> None:
    """The job resumed from a checkpoint saved after ``cpu_s`` CPU seconds of its earlier attempts."""
    _job["carried"] = max(0.0, float(cpu_s))


def job_cost() -> dict:
    """The ``cost`` field: the job's CPU seconds (:func:`job_cpu_so_far`: those carried from before
    a resume included) and torch's thread count (if loaded)."""
    torch = sys.modules.get("torch")
    out = {"cpu_s": round(job_cpu_so_far(), 3),
           "threads": torch.get_num_threads() if torch is not None else None}
    if _job["carried"]:
        out["cpu_s_before_resume"] = round(_job["carried"], 3)
    return out
