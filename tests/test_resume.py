"""resume=auto: a job killed with SIGKILL mid-training, started again with the same command,
continues from its last checkpoint and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import random
import signal

import pytest

from conftest import load_results, run_cli

# 64 training examples / batch 16 = 4 steps per epoch, 3 epochs = 12 steps.
BASE = ["model=tiny", "logger=none", "data.max_train_samples=64", "data.max_eval_samples=32",
        "optim.epochs=3", "optim.batch_size=16", "trainer.enable_progress_bar=false",
        "optim.early_stopping_patience=null", "seed=3"]
RESUME = ["resume=auto", "resume.name=t", "resume.every_n_steps=2"]


def _train(tmp_path, name, extra=(), env=None):
    return run_cli([*BASE, *extra, f"hydra.run.dir={tmp_path / name}"], tmp_path, env=env)


# last.ckpt is written every 2 steps and, at steps 4 and 8, rewritten after the epoch's
# validation, so kills at 1..11 cover: no checkpoint yet (1), a mid-epoch checkpoint (2, 3, 6,
# 7, 10, 11) and an epoch-end one (4, 5, 8, 9).
KILL_STEPS = range(1, 12)


def kill_rng() -> random.Random:
    """Kill steps drawn from a seeded RNG: the seed is printed (pytest shows it on failure) and
    ``TUNELAB_KILL_SEED=<seed>`` replays the same steps."""
    seed = int(os.environ.get("TUNELAB_KILL_SEED") or random.SystemRandom().randrange(2 ** 31))
    print(f"kill steps drawn with TUNELAB_KILL_SEED={seed}")
    return random.Random(seed)


def _killed_and_resumed(tmp_path, kills, extra=()):
    ref = _train(tmp_path, "ref", extra)
    assert ref.returncode == 0, ref.stderr[-3000:]
    want = load_results(tmp_path / "ref" / "results.json")
    for step in kills:
        r = _train(tmp_path, "job", [*RESUME, *extra], env={"TUNELAB_FAULT_SIGKILL_AT_STEP": str(step)})
        assert r.returncode == -signal.SIGKILL, (step, r.returncode, r.stderr[-3000:])
        assert load_results(tmp_path / "job" / "results.json")["status"] == "running"
        assert (tmp_path / "job" / "checkpoints" / "last.ckpt").is_file() or step < 2
        # atomic checkpoint writes: no temp file survives the kill as a checkpoint
        assert not list((tmp_path / "job" / "checkpoints").glob("*.ckpt.tmp"))
    r = _train(tmp_path, "job", [*RESUME, *extra])
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "resume=auto: continuing from" in out and "resumed at step" in out, out[-3000:]
    got = load_results(tmp_path / "job" / "results.json")
    assert got["status"] == "ok"
    epochs = int(next((a.split("=")[1] for a in reversed([*BASE, *extra]) if a.startswith("optim.epochs=")), 0))
    assert got["extra"]["steps_run"] == want["extra"]["steps_run"] == 4 * epochs
    assert set(got["metrics"]) == set(want["metrics"])
    for k, v in want["metrics"].items():
        # the last epoch's val/loss depends on every step's weights: equal only if the resumed
        # run trained on the same batches with the same dropout (and MLM) masks. The tolerance
        # is float32 rounding; a wrong batch order or RNG state gave 1e-5..4e-5.
        assert got["metrics"][k] == pytest.approx(v, rel=1e-7, abs=1e-9), (k, kills)
    assert got["pred_class_counts"] == want["pred_class_counts"]
    # the run's cost includes what the killed attempts spent up to the checkpoint it resumed from
    if max(kills) >= 2:
        assert 0 < got["cost"]["cpu_s_before_resume"] < got["cost"]["cpu_s"], got["cost"]
        assert 0 < got["cost"]["wall_s_before_resume"] < got["cost"]["wall_s"], got["cost"]
        assert got["cost"]["wall_s"] > got["duration_s"], (got["cost"], got["duration_s"])  # the last attempt only


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_killed_twice_at_random_steps_resumes_to_the_same_metrics(tmp_path):
    kills = sorted(kill_rng().sample(KILL_STEPS, 2))
    print("SIGKILL at steps", kills)
    _killed_and_resumed(tmp_path, kills)


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
@pytest.mark.parametrize("kills", [[4, 6], [8, 11]])
def test_resumed_from_an_epoch_end_then_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path, kills):
    # Found by the seeded test (TUNELAB_KILL_SEED=811896258): a run resumed from an epoch-end
    # checkpoint and killed in the next epoch used to end training early on the second resume
    # (Lightning's epoch counters; tunelab.ops.resume._close_resumed_epoch).
    _killed_and_resumed(tmp_path, kills)


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
@pytest.mark.parametrize("schedule,kills", [("stage", [7]), ("epoch", [5, 7])])
def test_gradual_unfreezing_killed_after_a_thaw_resumes_to_the_same_metrics(tmp_path, schedule, kills):
    # The tiny BERT thaws 3 groups: in stages at steps 3, 6 and 9; per epoch at steps 4 and 8. A
    # checkpoint saved after a thaw holds an optimizer with one more param group per thawed
    # block; loading it into a fresh start's head-only optimizer failed ("loaded state dict has
    # a different number of parameter groups") until the resumed run rebuilt those groups first.
    _killed_and_resumed(tmp_path, kills, ["freeze=gradual", f"freeze.unfreeze_every={schedule}"])


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_masked_lm_killed_at_a_random_step_resumes_to_the_same_metrics(tmp_path):
    # MLM draws its training masks from torch's RNG when a batch is collated, before the step:
    # the RNG must be restored before the resumed run draws its first batch.
    kill = kill_rng().choice(range(2, 8))
    print("SIGKILL at step", kill)
    _killed_and_resumed(tmp_path, [kill], ["task=mlm", "optim.epochs=2"])


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_rerun_sweep_skips_ok_jobs_and_resumes_the_killed_one(tmp_path):
    # (run_cli passes hydra.sweep.dir=<tmp_path>/sweep: the same dir both times)
    sweep = ["-m", *BASE, "optim.epochs=2", *RESUME, "seed=0,1"]
    r = run_cli(sweep, tmp_path, env={"TUNELAB_FAULT_SIGKILL_AT_STEP": "5", "TUNELAB_FAULT_ONLY_DIR": "/1"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    assert load_results(tmp_path / "sweep" / "0" / "results.json")["status"] == "ok"
    assert load_results(tmp_path / "sweep" / "1" / "results.json")["status"] == "running"
    ok0 = (tmp_path / "sweep" / "0" / "results.json").read_text()

    r = run_cli(sweep, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    # job 0 skipped; job 1 continues from its last.ckpt (step 4: saved every 2 steps, killed at 5)
    assert out.count("already says ok; skipping") == 1 and "resumed at step 4" in out, out[-3000:]
    assert (tmp_path / "sweep" / "0" / "results.json").read_text() == ok0
    res1 = load_results(tmp_path / "sweep" / "1" / "results.json")
    assert res1["status"] == "ok" and res1["extra"]["steps_run"] == 8
    assert (tmp_path / "sweep" / "report.md").is_file()


def test_a_resumed_job_counts_the_cpu_seconds_spent_before_its_checkpoint(monkeypatch):
    # A job killed after 40 CPU s of training and resumed from that checkpoint, then spending 10
    # more: its cost is 50 CPU s, not 10 (a resumed study run recorded 55 of ~300 s, and replay
    # prices runs with it). Clock readings by hand; no training.
    from types import SimpleNamespace

    import tunelab.cost as cost
    from tunelab.ops.resume import ResumeStateCallback, _rng_state

    clock = iter([100.0, 140.0, 1000.0, 1010.0])  # attempt 1: start, save; attempt 2: start, end
    monkeypatch.setattr(cost, "cpu_seconds", lambda: next(clock))
    wall = iter([5.0, 65.0, 900.0, 930.0])         # the same four moments, on the wall clock
    monkeypatch.setattr(cost, "wall_seconds", lambda: next(wall))
    cost.begin_job()
    saved = ResumeStateCallback(identity="job").state_dict()
    assert (saved["cpu_s"], saved["wall_s"]) == (40.0, 60.0)
    cost.begin_job()
    cb = ResumeStateCallback(identity="job")
    cb.load_state_dict({**saved, "rng": _rng_state()})
    progress = SimpleNamespace(ready=0, started=0, processed=0, completed=0)
    trainer = SimpleNamespace(fit_loop=SimpleNamespace(restarted_mid_epoch=False,
                                                       epoch_progress=SimpleNamespace(current=progress)),
                              train_dataloader=None, global_step=4, current_epoch=1)
    cb.on_train_start(trainer, None)
    got = cost.job_cost()
    assert (got["cpu_s"], got["cpu_s_before_resume"]) == (50.0, 40.0)
    assert (got["wall_s"], got["wall_s_before_resume"]) == (90.0, 60.0)
    # the next job in the same process starts from nothing carried
    monkeypatch.setattr(cost, "cpu_seconds", lambda: 7.0)
    monkeypatch.setattr(cost, "wall_seconds", lambda: 7.0)
    cost.begin_job()
    assert not {"cpu_s_before_resume", "wall_s_before_resume"} & set(cost.job_cost())
    # a checkpoint written before wall seconds were saved carries CPU seconds only
    cost.carry(40.0, None)
    assert "wall_s_before_resume" not in cost.job_cost() and cost.job_cost()["cpu_s_before_resume"] == 40.0
