"""``hydra/launcher=parallel``: k jobs of a sweep at once on this machine, cores split between them.

Why: a small model on all cores of a small machine leaves them partly idle (start-up imports,
evaluation and data steps are mostly single-threaded), so two jobs with one thread each finish
a sweep sooner than one job at a time with two threads. submitit's local executor starts *every*
job of a sweep at once; this launcher keeps at most ``jobs`` running: ``jobs`` worker threads
here each take the next job of the sweep and hand it to submitit's ``LocalLauncher`` (so every
job is still its own process, with its own run dir, results.json, W&B run and submitit log
under ``<sweep dir>/.submitit``), waiting for it before taking the next.

Each job sets its compute threads first (``torch.set_num_threads`` and ``OMP_NUM_THREADS``/
``MKL_NUM_THREADS`` for its children): ``threads_per_job``, or the machine's cores divided by
``jobs`` when 0. A job's own ``trainer.num_threads`` (if set) still wins inside training.

Hydra instantiates launchers only from the ``hydra_plugins`` package, hence this location; the
config names the class (``_target_`` in ``conf/hydra/launcher/parallel.yaml``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher

log = logging.getLogger(__name__)


def threads_for(jobs: int, threads_per_job: int, cpus: int | None = None) -> int:
    """Compute threads of one job: as configured, else an equal share of the cores (>= 1)."""
    if threads_per_job > 0:
        return threads_per_job
    return max(1, (cpus or os.cpu_count() or 1) // max(1, jobs))


class ParallelLocalLauncher(LocalLauncher):
    def __init__(self, jobs: int = 2, threads_per_job: int = 0, **params: Any) -> None:
        super().__init__(**params)
        if int(jobs) < 1:
            raise ValueError(f"hydra.launcher.jobs={jobs}: run at least one job at a time")
        self.jobs, self.threads = int(jobs), threads_for(int(jobs), int(threads_per_job))

    def __call__(self, sweep_overrides, job_dir_key, job_num, job_id, singleton_state) -> JobReturn:
        # In the job's own process, before anything starts a thread pool.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(self.threads)
        import torch

        torch.set_num_threads(self.threads)
        # Hydra configures the job's logging inside run_job: this line goes to submitit's log.
        print(f"[tunelab] hydra/launcher=parallel: job #{job_num} runs with {self.threads} thread(s), "
              f"{self.jobs} job(s) at a time", file=sys.stderr, flush=True)
        return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        log.info(f"parallel launcher: {len(job_overrides)} jobs, {self.jobs} at a time, "
                 f"{self.threads} thread(s) each")
        results: list = [None] * len(job_overrides)
        errors: list[BaseException] = []
        todo = iter(range(len(job_overrides)))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None or errors:
                    return
                try:
                    # One job per call: submitit starts it and this thread waits for its result.
                    results[i] = super(ParallelLocalLauncher, self).launch([job_overrides[i]], initial_job_idx + i)[0]
                except BaseException as e:  # the sweep stops taking jobs; the error is raised below
                    errors.append(e)

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(self.jobs, len(job_overrides)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return results
