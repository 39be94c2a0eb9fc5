"""hydra/sweeper=adaptive: jobs as the basic sweeper builds them, rounds until decided, state on
disk, kill-and-rerun without redoing finished jobs, failures, the report section; one real sweep
of the tiny model killed mid-round and run again."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import FAST, load_results, run_cli
from tunelab.errors import ConfigError
from tunelab.replay import run_rule
from tunelab.report.collect import Job, group_label, swept_keys
from tunelab.sequential import Design, Run
from tunelab.sweeps.adaptive import STATE_FILE, AdaptiveSweep
from tunelab.sweeps.space import parse_space, seed_list


def _space(args, seed_key="seed"):
    return parse_space(OverridesParser.create().parse_overrides(args), seed_key)


def test_jobs_are_the_basic_sweepers_and_arms_the_reports_groups():
    args = ["model=tiny", "freeze=none,all", "optim.lr=1e-5,2e-5", "seed=range(3)", "+notes=x"]
    space = _space(args)
    ours = [space.job_overrides(arm, s) for arm in space.arms for s in seed_list(space, None)]
    basic = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(args), None)[0]
    assert sorted(ours) == sorted(basic) and len(ours) == 12  # same lists, same order inside each
    jobs = [Job(str(i), Path("."), "ok", o) for i, o in enumerate(ours)]
    keys = swept_keys(jobs)
    assert {group_label(j, keys) for j in jobs} == {a.label for a in space.arms}
    assert space.fixed() == ["model=tiny", "+notes=x"]
    # a tuning trial's values (the tune sweeper): in place for a swept key, appended otherwise
    extra = space.job_overrides(space.arms[0], "0", {"optim.lr": "3e-5", "optim.epochs": "2"})
    assert extra == ["model=tiny", "freeze=none", "optim.lr=3e-5", "seed=0", "+notes=x", "optim.epochs=2"]


def test_seed_lists():
    assert seed_list(_space(["freeze=none,all"]), None) == [str(i) for i in range(10)]
    assert seed_list(_space(["freeze=none,all", "seed=4,7,9"]), 2) == ["4", "7"]
    with pytest.raises(ConfigError, match="single seed"):
        seed_list(_space(["freeze=none,all", "seed=3"]), None)
    with pytest.raises(ConfigError, match="sweeps only 3 seeds"):
        seed_list(_space(["freeze=none,all", "seed=range(3)"]), 5)


# =============================================================================== a fake launcher

# arm -> (mean, sd) of test/acc; sd 0: a deterministic arm (every seed the same run)
ARMS = {"big": (0.90, 0.004), "mid": (0.875, 0.004), "flat": (0.853, 0.0)}


def _value(arm, seed):
    mean, sd = ARMS[arm]
    return mean + sd * float(np.random.default_rng([sum(map(ord, arm)), int(seed)]).standard_normal())


class FakeLauncher:
    """Writes each job's results.json as a finished job would (no training); ``fail``: (arm, seed)
    pairs that fail; ``die_after``: jobs after which the sweeper's process 'dies' (the next job
    is left running, as a kill leaves it)."""

    def __init__(self, sweep, fail=(), die_after=None):
        self.sweep, self.fail, self.die_after, self.launched = Path(sweep), set(fail), die_after, []

    def __call__(self, batch, first_num):
        for i, ov in enumerate(batch):
            kv = dict(o.split("=", 1) for o in ov)
            arm, seed, d = kv["arm"], kv["seed"], self.sweep / str(first_num + i)
            d.mkdir(parents=True, exist_ok=True)
            rec = {"status": "running", "overrides": ov, "seed": int(seed), "finished_at": None}
            if self.die_after is not None and len(self.launched) == self.die_after:
                (d / "results.json").write_text(json.dumps(rec))
                raise KeyboardInterrupt
            v = _value(arm, seed)
            ok = (arm, seed) not in self.fail
            rec.update(status="ok" if ok else "failed", finished_at="2026-01-01T00:00:00+00:00",
                       metrics={"test/acc": v, "test/loss": 1 - v} if ok else {},
                       error=None if ok else {"type": "RuntimeError", "message": "boom"},
                       cost={"cpu_s": {"big": 100.0, "mid": 30.0, "flat": 5.0}[arm]}, duration_s=1.0)
            (d / "results.json").write_text(json.dumps(rec))
            self.launched.append((arm, seed, first_num + i))
        return []


def _sweep(tmp_path, **design):
    space = _space(["logger=none", "arm=big,mid,flat", "seed=range(10)"])
    return AdaptiveSweep(tmp_path / "sweep", space, Design(**{"max_seeds": 10, **design}), "test/acc",
                         seed_list(space, None))


def test_rounds_until_decided_with_the_rules_decisions(tmp_path):
    launch = FakeLauncher(tmp_path / "sweep")
    study = _sweep(tmp_path).run(launch, say=lambda s: None)
    # the same rule driven by replay's loop over the same per-seed values
    ref = run_rule(study.design, {f"arm={a}": [Run(_value(a, str(s)), key=(a, s) if ARMS[a][1] else None)
                                               for s in range(10)] for a in ARMS})
    assert study.decisions() == ref.decisions() and study.seeds_run() == ref.seeds_run()
    assert study.decisions() == {"arm=big vs arm=mid": "greater", "arm=big vs arm=flat": "greater",
                                 "arm=mid vs arm=flat": "greater"}
    assert study.seeds_run()["arm=flat"] == 3 and study.arms["arm=flat"].constant
    # job numbers 0, 1, 2, ... in launch order, each arm's seeds 0, 1, 2, ... in order
    assert [n for *_, n in launch.launched] == list(range(len(launch.launched)))
    for arm in ARMS:
        assert [int(s) for a, s, _ in launch.launched if a == arm] == list(range(study.seeds_run()[f"arm={arm}"]))
    state = json.loads((tmp_path / "sweep" / STATE_FILE).read_text())
    assert all(r["complete"] for r in state["rounds"]) and state["analysis"]["done"]
    assert len(state["rounds"]) == study.round


def test_killed_mid_round_then_rerun_redoes_no_finished_job(tmp_path):
    whole = FakeLauncher(tmp_path / "ref" / "sweep")
    want = _sweep(tmp_path / "ref").run(whole, say=lambda s: None)
    first = FakeLauncher(tmp_path / "sweep", die_after=4)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path).run(first, say=lambda s: None)
    assert json.loads((tmp_path / "sweep" / "4" / "results.json").read_text())["status"] == "running"
    again = FakeLauncher(tmp_path / "sweep")
    got = _sweep(tmp_path).run(again, say=lambda s: None)
    done_before = {(a, s) for a, s, _ in first.launched}
    assert not done_before & {(a, s) for a, s, _ in again.launched}          # nothing finished ran again
    assert again.launched[0][2] == 4                                          # the killed job: its own number
    assert sorted(first.launched + again.launched) == sorted(whole.launched)  # the same jobs in the same dirs
    assert got.decisions() == want.decisions() and got.seeds_run() == want.seeds_run()
    # a finished study run again launches nothing
    idle = FakeLauncher(tmp_path / "sweep")
    assert _sweep(tmp_path).run(idle, say=lambda s: None).decisions() == want.decisions() and not idle.launched


def test_failed_jobs_are_recorded_not_data_and_the_report_says_so(tmp_path):
    from tunelab.report import build_report

    launch = FakeLauncher(tmp_path / "sweep", fail={("mid", "1")})
    study = _sweep(tmp_path).run(launch, say=lambda s: None)
    mid = study.arms["arm=mid"]
    assert mid.failures == 1 and mid.values.size == len(mid.runs) - 1
    assert _value("mid", "1") not in mid.values.tolist()
    rep = build_report(tmp_path / "sweep")
    a = rep.adaptive
    assert a is not None and a.done and a.arms["arm=mid"].failed == 1
    assert any("arm=mid seed=1: failed" in f for r in a.rounds for f in r.failed)
    # CPU: 100, 30 and 5 CPU s per run; the fixed design is 10 seeds of each arm
    used = sum(n * c for n, c in zip((study.seeds_run()[f"arm={x}"] for x in ARMS), (100.0, 30.0, 5.0)))
    assert a.cpu_s == pytest.approx(used) and a.fixed_cpu_s == pytest.approx(10 * 135.0)
    md = (tmp_path / "sweep" / "report.md").read_text()
    assert "## Adaptive study" in md and "decided: A > B" in md and f"{100 * used / 1350:.1f} %" in md


def test_another_setup_in_the_same_dir_is_refused_and_a_bad_metric_named(tmp_path):
    _sweep(tmp_path).run(FakeLauncher(tmp_path / "sweep"), say=lambda s: None)
    with pytest.raises(ConfigError, match="another setup \\(design differ"):
        _sweep(tmp_path, alpha=0.01).run(FakeLauncher(tmp_path / "sweep"), say=lambda s: None)
    space = _space(["arm=big,mid", "seed=range(4)"])
    bad = AdaptiveSweep(tmp_path / "other", space, Design(max_seeds=4), "test/acc_typo", seed_list(space, None))
    with pytest.raises(ConfigError, match="metric=test/acc_typo is not a metric .* test/acc, test/loss"):
        bad.run(FakeLauncher(tmp_path / "other"), say=lambda s: None)


def test_unknown_sweeper_key_is_one_sentence():
    from hydra_plugins.tunelab_sweepers.adaptive import AdaptiveSweeper

    with pytest.raises(ConfigError, match="hydra.sweeper has no key bogus .*its keys are: metric, alpha"):
        AdaptiveSweeper(bogus=1)._study([])


def test_conf_defaults_are_the_designs(compose):
    cfg = compose(["hydra/sweeper=adaptive"], return_hydra_config=True).hydra.sweeper
    d = Design()
    for k in ("alpha", "contrasts", "reference", "margin", "min_seeds", "seeds_per_round", "spending", "max_failures"):
        assert cfg[k] == getattr(d, k), k
    assert cfg.max_seeds is None and cfg.metric == "test/acc" and cfg.seed_key == "seed"


# =============================================================================== the real thing


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_tiny_sweep_killed_mid_round_resumes_and_stops_early(tmp_path):
    """Fine-tuning vs a sparse baseline on test/loss (the baseline is the same run every seed):
    decided after the first round of 3 seeds of 10. Killed inside round 1's second job (SIGKILL,
    the sweep's own process); the same command again runs only the jobs that did not finish."""
    args = ["-m", "hydra/sweeper=adaptive", "hydra.sweeper.metric=test/loss", *FAST, "method=finetune,sparse",
            "hydra.callbacks.report.metrics=[test/loss]"]
    r = run_cli(args, tmp_path, env={"TUNELAB_FAULT_SIGKILL_AT_STEP": "1", "TUNELAB_FAULT_ONLY_DIR": "/1"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    first = (sweep / "0" / "results.json").read_text()
    assert json.loads(first)["status"] == "ok" and load_results(sweep / "1" / "results.json")["status"] == "running"
    r = run_cli(args, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (sweep / "0" / "results.json").read_text() == first  # not run again
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")) == list("012345")
    runs = [load_results(sweep / str(i) / "results.json") for i in range(6)]
    assert [x["status"] for x in runs] == ["ok"] * 6 and [x["seed"] for x in runs] == [0, 1, 2] * 2
    state = json.loads((sweep / STATE_FILE).read_text())
    assert [c["decision"] for c in state["analysis"]["contrasts"]] == ["greater"]
    assert "continuing" in r.stdout and "adaptive: done after 1 round(s)" in r.stdout
    assert "## Adaptive study" in (sweep / "report.md").read_text()
