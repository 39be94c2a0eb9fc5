"""hydra/launcher=parallel: k jobs at a time, each in its own process with its thread count."""

from __future__ import annotations

import pytest

from datetime import datetime

from conftest import FAST, load_results, run_cli


def test_threads_split_between_jobs():
    from hydra_plugins.tunelab_launcher.parallel import threads_for

    assert threads_for(2, 0, cpus=2) == 1
    assert threads_for(3, 0, cpus=16) == 5
    assert threads_for(4, 0, cpus=2) == 1      # never zero threads
    assert threads_for(2, 3, cpus=2) == 3      # an explicit count wins


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_sweep_runs_two_jobs_at_a_time_with_their_threads(tmp_path):
    # 3 threads per job: neither the test's OMP_NUM_THREADS=1 nor torch's default on this machine.
    r = run_cli(["-m", *FAST, "hydra/launcher=parallel", "hydra.launcher.jobs=2",
                 "hydra.launcher.threads_per_job=3", "seed=0,1,2"], tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    runs = {p.parent.name: load_results(p) for p in sweep.glob("*/results.json")}
    assert sorted(runs) == ["0", "1", "2"]
    assert all(x["status"] == "ok" for x in runs.values())
    assert sorted(x["seed"] for x in runs.values()) == [0, 1, 2]
    assert all(x["cost"]["threads"] == 3 and x["cost"]["cpu_s"] > 0 for x in runs.values())
    # Each job its own process: one submitit folder (named by the job's pid) per job.
    assert len([p for p in (sweep / ".submitit").iterdir() if p.name.isdigit()]) == 3
    # At most two at a time, and two did overlap (timestamps are whole seconds: strict overlaps).
    spans = [(datetime.fromisoformat(x["started_at"]), datetime.fromisoformat(x["finished_at"]))
             for x in runs.values()]
    def running_at(t):
        return sum(s <= t < f for s, f in spans)
    peak = max(running_at(s) for s, _ in spans)
    assert peak == 2, spans
