"""A real SLURM cluster (scripts/slurm/up.sh: slurmctld + slurmd + slurmdbd on this machine)
runs a 4-job sweep through Hydra's submitit launcher (marker ``slurm``); the submitit_local
preset runs a sweep in separate processes on this machine (no marker)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import FAST, ROOT, load_results, run_cli

@pytest.fixture(scope="session")
def slurm():
    """Start (or find running) the one-node cluster; skip only if it cannot be installed/started."""
    if os.geteuid() != 0 and not shutil.which("sbatch"):
        pytest.skip("SLURM is not installed and scripts/slurm/up.sh needs root to install it")
    if os.geteuid() != 0:
        r = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
        if r.returncode != 0 or not r.stdout.strip():
            pytest.skip("not root, and no running SLURM found (run: sudo bash scripts/slurm/up.sh)")
        return
    r = subprocess.run(["bash", str(ROOT / "scripts/slurm/up.sh")], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        msg = r.stderr[-1500:]
        if "apt-get install failed" in msg:
            pytest.skip(f"SLURM packages cannot be installed here (no Debian mirror):\n{msg}")
        pytest.fail(f"scripts/slurm/up.sh failed:\n{r.stdout[-1500:]}\n{msg}")


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
@pytest.mark.slurm
def test_sweep_on_slurm_through_submitit(slurm, tmp_path):
    t0 = time.time()
    r = run_cli(["-m", *FAST, "hydra/launcher=slurm", "hydra.launcher.partition=debug",
                 "hydra.launcher.timeout_min=10", "hydra.launcher.signal_delay_s=5",
                 "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
                 "freeze=none,all", "seed=range(2)"], tmp_path, timeout=900,
                env={"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")})
    wall = time.time() - t0
    print(f"\nSLURM sweep of 4 jobs: {wall:.1f} s wall")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    runs = {p.parent.name: load_results(p) for p in sweep.glob("*/results.json")}
    assert sorted(runs) == ["0", "1", "2", "3"]
    assert all(x["status"] == "ok" for x in runs.values()), {k: x["error"] for k, x in runs.items()}
    assert {(x["freeze"], x["seed"]) for x in runs.values()} == {(f, s) for f in ("none", "all") for s in (0, 1)}
    # the jobs really ran under SLURM: submitit's per-job folders with SLURM job ids
    # (a job array: <array id>_<task>, plus a folder for the array itself)
    job_ids = sorted(p.name for p in (sweep / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(job_ids) == 4, job_ids
    acct = ""
    for _ in range(20):  # sacct lags a second or two behind the end of a job
        acct = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                              capture_output=True, text=True).stdout
        if acct.count("COMPLETED") >= 4:
            break
        time.sleep(1)
    assert acct.count("COMPLETED") == 4, acct
    report = (sweep / "report.md").read_text()
    assert "`freeze=none`" in report and "`freeze=all`" in report
    (tmp_path / "wall_s.txt").write_text(f"{wall:.1f}\n")


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_sweep_through_submitit_local(tmp_path):
    r = run_cli(["-m", *FAST, "hydra/launcher=local", "hydra.launcher.timeout_min=10", "seed=0,1"],
                tmp_path, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    runs = [load_results(p) for p in sorted(sweep.glob("*/results.json"))]
    assert [x["status"] for x in runs] == ["ok", "ok"] and {x["seed"] for x in runs} == {0, 1}
    assert (sweep / ".submitit").is_dir() and (sweep / "report.md").is_file()


@pytest.mark.slurm
@pytest.mark.study  # ~5 min, most of it SLURM's clock: make test-study, CI
def test_a_job_past_its_time_limit_is_checkpointed_requeued_and_ends_like_an_uninterrupted_run(slurm, tmp_path):
    # 128 examples / batch 16 = 8 steps an epoch, 3 epochs. In its first allocation the job sleeps
    # 4 s after each step (TUNELAB_FAULT_SLOW_STEP_S: the numbers are unchanged), so it trains
    # from ~20 s to ~115 s after its start. SLURM asks for the signal 30 s before the 2-minute
    # limit, but sends it "up to 60 s earlier" (sbatch --signal: slurmctld checks periodically),
    # i.e. 30..90 s after the start: inside that window. The requeued allocation runs at full
    # speed and finishes well inside its limit.
    base = ["model=tiny", "logger=none", "data.max_train_samples=128", "data.max_eval_samples=32",
            "optim.epochs=3", "optim.batch_size=16", "trainer.enable_progress_bar=false",
            "optim.early_stopping_patience=null", "seed=3"]
    ref = run_cli([*base, f"hydra.run.dir={tmp_path / 'ref'}"], tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]
    want = load_results(tmp_path / "ref" / "results.json")

    t0 = time.time()
    # resume.every_n_steps=0: the only mid-epoch checkpoint is the one the signal makes
    r = run_cli(["-m", *base, "resume=auto", "resume.name=tl", "resume.every_n_steps=0",
                 "hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=2",
                 "hydra.launcher.signal_delay_s=30", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"],
                tmp_path, timeout=900,
                env={"TUNELAB_FAULT_SLOW_STEP_S": "4",
                     "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")})
    wall = time.time() - t0
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    logs = "\n".join(p.read_text(errors="replace") for p in sweep.rglob("*") if p.is_file()
                     and p.suffix in (".out", ".err", ".log"))
    saved = [int(x.split("at step ")[1].split(";")[0]) for x in logs.splitlines() if "; handing over to submitit" in x]
    resumed = [int(x.split("resumed at step ")[1].split()[0]) for x in logs.splitlines() if "resumed at step" in x]
    print(f"\nSLURM time-limit test: {wall:.1f} s wall (reference run {want['duration_s']:.1f} s); "
          f"checkpointed at step(s) {saved}, resumed at step(s) {resumed}")
    assert saved and resumed and resumed[0] == saved[0] and 0 < saved[0] < 24, logs[-4000:]
    got = load_results(sweep / "0" / "results.json")
    assert got["status"] == "ok"
    assert int(got["environment"]["slurm"]["SLURM_RESTART_COUNT"]) >= 1
    assert got["extra"]["steps_run"] == want["extra"]["steps_run"] == 24
    for k, v in want["metrics"].items():
        assert got["metrics"][k] == pytest.approx(v, rel=1e-7, abs=1e-9), k
    assert got["pred_class_counts"] == want["pred_class_counts"]
    jid = _slurm_job(got)
    acct = ""
    for _ in range(20):
        acct = subprocess.run(["sacct", "-n", "-P", "-D", "-X", "-o", "JobID,State", "-j", jid],
                              capture_output=True, text=True).stdout
        if "COMPLETED" in acct:
            break
        time.sleep(1)
    assert "REQUEUED" in acct and "COMPLETED" in acct, acct  # -D: every allocation of the job
    (tmp_path / "timings.txt").write_text(f"wall {wall:.1f} s; saved {saved}; resumed {resumed}\n")


def _slurm_job(record) -> str:
    s = record["environment"]["slurm"]
    return f"{s['SLURM_ARRAY_JOB_ID']}_{s['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_JOB_ID" in s else s["SLURM_JOB_ID"]
