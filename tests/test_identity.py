"""Job identity: resume=auto skips or resumes a job only in a dir that recorded the same config.

A changed config never gets another config's result: a single run is refused (exit 2) and its
dir left as it was; a sweep that grew or was reordered reuses exactly the finished jobs with an
identical config and runs the others in their own dirs."""

from __future__ import annotations

import pytest
import hashlib
import json
import os

from conftest import FAST, load_results, run_cli

RESUME = ["resume=auto", "resume.name=t"]


def test_identity_is_the_hash_of_the_config_without_bookkeeping(compose):
    from omegaconf import OmegaConf

    from tunelab.ops.identity import BOOKKEEPING, PLAN_RULES, identity_payload, job_identity

    base = compose(FAST)
    ident = job_identity(base)
    # an independent reference: sha256 of the sorted JSON of the resolved config minus bookkeeping
    plain = OmegaConf.to_container(base, resolve=True)
    for key in ("resume", "logger", "cache_dir", "notes", "search", "study"):
        plain.pop(key)
    for key in ("enable_progress_bar", "log_every_n_steps", "progress_every_n_steps", "keep_checkpoints",
                "feature_cache"):
        plain["trainer"].pop(key)
    plain["plan_rules"] = PLAN_RULES
    assert identity_payload(base) == plain and len(BOOKKEEPING) == 11
    assert ident == hashlib.sha256(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    # bookkeeping does not change it ...
    for extra in (["logger=csv"], ["resume=auto", "resume.name=x", "resume.every_n_steps=7"],
                  ["notes=hello", "trainer.enable_progress_bar=true", "trainer.keep_checkpoints=all"],
                  ["study.phase=tune", "study.trial=2"]):
        assert job_identity(compose([*FAST, *extra])) == ident, extra
    # an arm's search space (read by the tune sweeper only) does not either
    assert compose([*FAST, "+arm=bert_none"]).search and job_identity(compose([*FAST, "+arm=bert_none"])) == ident
    # ... what a job computes does
    for extra in (["optim.lr=1e-3"], ["seed=1"], ["freeze=all"], ["data.max_train_samples=65"]):
        assert job_identity(compose([*FAST, *extra])) != ident, extra



def test_the_feature_cache_is_part_of_the_identity_where_it_changes_the_numbers(compose):
    """fp32 with a float32 store: the cached route computes the uncached route's numbers, so the
    cache switch is bookkeeping. Under bf16-mixed, or with a bfloat16 store, the two routes give
    other numbers (test loss 0.6919988 vs 0.6920102 measured on a tiny encoder): a finished run
    with the cache on must not be skipped as ok for a request with it off."""
    from tunelab.ops.identity import job_identity

    def pair(*extra):
        on, off = (job_identity(compose([*FAST, *extra, f"trainer.feature_cache={v}"])) for v in ("true", "false"))
        return on, off

    on, off = pair()
    assert on == off
    for extra in (["trainer.precision=bf16-mixed"], ["trainer.feature_cache_dtype=bfloat16"]):
        on, off = pair(*extra)
        assert on != off, extra


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_a_changed_single_run_is_refused_and_its_dir_left_alone(tmp_path):
    run_dir = tmp_path / "job"
    args = [*FAST, *RESUME, f"hydra.run.dir={run_dir}"]
    r = run_cli(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    files = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file() and p.suffix != ".log"}
    first = load_results(run_dir / "results.json")
    assert first["status"] == "ok" and len(first["identity"]) == 64
    # the record says what it ran on (reference: this interpreter's own view)
    import platform
    from importlib.metadata import version

    env = first["environment"]
    assert env["python"] == platform.python_version() and env["cpu"] and env["cpu_count"] == os.cpu_count()
    for lib in ("torch", "transformers", "tokenizers", "sentencepiece", "peft", "lightning", "hydra-core"):
        assert env["libraries"][lib] == version(lib), lib
    assert env["gpu"]["count"] == len(env["gpu"]["names"]) and env["git"]["dirty"] in (True, False, None)
    assert first["git_commit"] is None or first["git_commit"].startswith(env["git"]["commit"])
    # results and checkpoints get the mode the umask gives (0644 under 022), not mkstemp's 0600
    mask = os.umask(0o022)
    os.umask(mask)
    for f in (run_dir / "results.json", run_dir / "checkpoints" / "best.ckpt"):
        assert f.stat().st_mode & 0o777 == 0o666 & ~mask, f

    r = run_cli([*args, "freeze=all", "optim.lr=1e-3"], tmp_path)
    assert r.returncode == 2, r.stderr[-3000:]
    err = r.stderr.strip().splitlines()
    assert err[-1].startswith("error: resume=auto:") and "another config" in err[-1], r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "test metrics" not in r.stdout + r.stderr
    # nothing rewritten: results.json and .hydra/overrides.yaml still agree with each other
    assert {p: p.read_bytes() for p in files} == files
    assert "freeze=all" not in (run_dir / ".hydra" / "overrides.yaml").read_text()

    r = run_cli(args, tmp_path)  # the same config again: skipped, the first result is kept
    assert r.returncode == 0 and "already says ok; skipping" in r.stdout + r.stderr
    assert load_results(run_dir / "results.json") == first


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_a_grown_and_reordered_sweep_reuses_exactly_the_identical_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", *FAST, *RESUME, "seed=0,1"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    before = {d.name: (d / "results.json").read_text() for d in sweep.iterdir() if (d / "results.json").is_file()}
    assert {n: json.loads(t)["seed"] for n, t in before.items()} == {"0": 0, "1": 1}

    # seed 2 first: job 0 is now seed 2, and seed 0 became job 2
    r = run_cli(["-m", *FAST, *RESUME, "seed=2,1,0"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "3 jobs: 1 ok, 2 skipped (already ok), 0 failed" in r.stdout, r.stdout[-2000:]
    after = {d.name: load_results(d / "results.json") for d in sweep.iterdir() if (d / "results.json").is_file()}
    assert len(after) == 3 and sorted(x["seed"] for x in after.values()) == [0, 1, 2]
    for name, text in before.items():  # the finished jobs untouched, each with its own seed
        assert (sweep / name / "results.json").read_text() == text
    new = [n for n in after if n not in before]
    assert len(new) == 1 and new[0].startswith("0-") and after[new[0]]["seed"] == 2
    for name, rec in after.items():  # every dir's .hydra agrees with its results.json
        assert f"seed={rec['seed']}" in (sweep / name / ".hydra" / "overrides.yaml").read_text()
        assert rec["config"]["seed"] == rec["seed"]
