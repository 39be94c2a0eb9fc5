"""What a job cost: CPU seconds and compute threads, recorded in results.json (``cost``).

Wall time alone misleads on a shared machine: a job slowed by other processes shows more
wall time but not more CPU time. So every job records the CPU seconds (user + system) of its
process and of the child processes it waited for (data-loader workers, DDP ranks), and the
thread count torch ran with; the report shows both per arm (:mod:`tunelab.report.cost`).
"""

from __future__ import annotations

import resource
import sys


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children, so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def job_cost(cpu_start: float) -> dict:
    """The ``cost`` field: CPU seconds since ``cpu_start`` and torch's thread count (if loaded)."""
    torch = sys.modules.get("torch")
    return {"cpu_s": round(cpu_seconds() - cpu_start, 3),
            "threads": torch.get_num_threads() if torch is not None else None}
