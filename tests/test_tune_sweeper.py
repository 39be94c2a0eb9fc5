"""hydra/sweeper=tune: the pruning rule and the expected best over trials against hand-computed cases,
the search space syntax, draws that are a function of the disk state, the study loop with a fake
launcher (pruning, repeats, best, tests, kill-and-rerun), and one real tiny sweep killed and run
again, checked against the trials' recorded validation means."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import scipy.stats
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import CONF, FAST, load_results, run_cli
from tunelab.errors import ConfigError
from tunelab.report.expected_max import best_curve
from tunelab.schemas.search import check_search, default_value, override_value, parse_dimension, parse_search
from tunelab.sweeps.prune import prune_look
from tunelab.sweeps.sampler import Finished, propose, trial_seed
from tunelab.sweeps.space import parse_space
from tunelab.sweeps.tune import STATE_FILE, ArmSearch, TuneSettings, TuneSweep


# =============================================================================== the rule, by hand


def test_pruning_rule_against_a_hand_computed_case():
    # two finished trials of 2 seeds: means 0.82 and 0.71; pooled variance
    # ((0.02^2 + 0.02^2) + (0.01^2 + 0.01^2)) / (1 + 1) = 0.0005, sd 0.0223607 on 2 degrees of freedom.
    # z = 2 is the one-sided level p = Phi(2) = 0.9772499; Student's t with 2 df has the closed form
    # t = (2p - 1) * sqrt(2 / (4p(1 - p))) = 0.9544997 * sqrt(2 / 0.0889303) = 4.526537;
    # margin after 1 of 2 seeds: 4.526537 * 0.0223607 * sqrt(1/1 + 1/2) = 0.1239643
    ref = [[0.80, 0.84], [0.70, 0.72]]
    look = prune_look([0.69], ref, n=2, z=2.0)
    assert look.best == pytest.approx(0.82) and look.sd == pytest.approx(math.sqrt(0.0005)) and look.df == 2
    assert look.t == pytest.approx(4.526537, abs=1e-5)
    assert look.margin == pytest.approx(0.1239643, abs=1e-6)
    assert look.pruned                                    # 0.82 - 0.69 = 0.13 > 0.1240
    assert not prune_look([0.70], ref, n=2, z=2.0).pruned  # 0.12 < 0.1240
    assert not prune_look([0.76], ref, n=2, z=2.0).pruned  # what the normal quantile (margin 0.0548) pruned
    assert not prune_look([0.69], ref, n=2, z=3.0).pruned  # a wider margin: t = 19.206, 0.526
    # one degree of freedom: t is the Cauchy quantile tan(pi (p - 1/2)) = 13.96773. The fair fight's
    # LoRA default ran seeds 0.88200 and 0.88264 (s = 0.0004525): margin 13.96773 * 0.0004525 * 1.2247 =
    # 0.00775, so a trial 0.0044 below stays (the normal quantile's margin, 0.0011, pruned it)
    lora = prune_look([0.8779], [[0.88200, 0.88264]], n=2, z=2.0)
    assert lora.t == pytest.approx(13.96773, abs=1e-4) and lora.margin == pytest.approx(0.00775, abs=2e-5)
    assert not lora.pruned and prune_look([0.8740], [[0.88200, 0.88264]], n=2, z=2.0).pruned
    # minimised objective (a loss): the best is the lowest mean, worse is higher; sd 0.1414 on 1 df,
    # margin 13.96773 * 0.141421 * 1.224745 = 2.4193
    assert prune_look([3.30], [[1.0, 1.2]], n=2, z=2.0, maximize=False).pruned is False
    assert prune_look([3.60], [[1.0, 1.2]], n=2, z=2.0, maximize=False).pruned is True
    # nothing to compare with, no degree of freedom, all seeds run: never pruned
    assert not prune_look([0.1], [], n=2, z=2.0).pruned
    assert not prune_look([0.1], [[0.9]], n=2, z=2.0).pruned
    assert not prune_look([0.1, 0.1], ref, n=2, z=2.0).pruned
    # a deterministic arm (sd 0): anything below the best stops, a tie does not
    assert prune_look([0.799], [[0.8, 0.8]], n=2, z=2.0).pruned
    assert not prune_look([0.8], [[0.8, 0.8]], n=2, z=2.0).pruned


def test_expected_best_over_trials_by_hand():
    # three trials 0.7, 0.8, 0.9: E[max of 1] = mean = 0.8; of 2 (pairs without replacement, Tang
    # et al. 2020): (0.8 + 0.9 + 0.9) / 3; of 3: 0.9. The minimum of 2: (0.7 + 0.7 + 0.8) / 3.
    c = best_curve("val/x", [0.9, 0.7, 0.8], True, 0.95, 200)
    assert c.n == [1, 2, 3] and np.allclose(c.mean, [0.8, 2.6 / 3, 0.9])
    c = best_curve("val/loss", [0.9, 0.7, 0.8], False, 0.95, 200)
    assert np.allclose(c.mean, [0.8, 2.2 / 3, 0.7]) and all(lo <= hi for lo, hi in zip(c.low, c.high))


# =============================================================================== the space and the draws


def test_search_syntax_bounds_and_errors(compose):
    d = parse_search({"optim.lr": "tag(log, interval(1e-5, 1e-4))", "optim.epochs": "range(2, 5)",
                      "freeze": "choice(none, last2)"})
    assert [x.key for x in d] == ["optim.lr", "optim.epochs", "freeze"]
    assert d[0].log and (d[0].low, d[0].high) == (1e-5, 1e-4) and d[0].bounds == "[1e-05, 0.0001] (log-uniform)"
    assert d[1].choices == (2, 3, 4) and d[2].choices == ("none", "last2")  # range: stop excluded
    assert d[0].tidy(3.2149e-5) == 3.21e-5 and d[0].tidy(9.9999e-5) == 1e-4 and d[0].contains(1e-4)
    assert [override_value(v) for v in (3.21e-5, 4, None, True, "last2", "a b")] == \
        ["3.21e-05", "4", "null", "true", "last2", "'a b'"]
    with pytest.raises(ConfigError, match="search.optim.lr: '3e-5' is one value"):
        parse_dimension("optim.lr", "3e-5")
    with pytest.raises(ConfigError, match="lo < hi and lo > 0"):
        parse_dimension("optim.lr", "tag(log, interval(0, 1e-4))")
    cfg = compose(["model=tiny"])
    with pytest.raises(ConfigError, match="optim.epochs is an integer .* choice"):
        check_search(cfg, {"optim.epochs": "interval(1, 4)"})
    with pytest.raises(ConfigError, match="search.optim.lrr is not a key of the config"):
        check_search(cfg, {"optim.lrr": "choice(1e-5, 2e-5)"})


def test_every_arm_yaml_has_a_valid_space(compose):
    """Each arm's `search:` names keys of its own config and parses (validation runs it at start-up too)."""
    for path in sorted((CONF / "arm").glob("*.yaml")):
        cfg = compose(["model=tiny", f"+arm={path.stem}"])
        assert "search" in cfg, path.name
        # ... and holds the arm's default recipe (trial 0), so tuning can only improve on it on validation
        for d in check_search(cfg):
            assert d.contains(default_value(cfg, d.key)), (path.name, d.key)


def test_draws_are_a_function_of_seed_arm_trial_and_history():
    dims = parse_search({"optim.lr": "tag(log, interval(1e-5, 1e-3))", "optim.epochs": "choice(2, 3, 4)"})
    a = propose(dims, seed=trial_seed(0, "arm=x", 1))
    assert a == propose(dims, seed=trial_seed(0, "arm=x", 1))              # the same trial: the same values
    assert a != propose(dims, seed=trial_seed(0, "arm=x", 2))              # the next trial: new ones
    assert trial_seed(0, "arm=x", 1) != trial_seed(0, "arm=y", 1) != trial_seed(1, "arm=x", 1)
    assert 1e-5 <= a["optim.lr"] <= 1e-3 and a["optim.epochs"] in (2, 3, 4)
    # TPE: the history of finished trials is replayed into a fresh study, so a rerun draws the same
    hist = [Finished(propose(dims, seed=i), 0.1 * i, None if i % 2 else 1) for i in range(6)]
    t1 = propose(dims, seed=7, sampler="tpe", history=hist, startup_trials=2)
    assert t1 == propose(dims, seed=7, sampler="tpe", history=hist, startup_trials=2)
    # before startup_trials finished trials TPE draws as random search does; after, the history counts
    assert propose(dims, seed=7, sampler="tpe", history=hist[:1], startup_trials=2) == propose(dims, seed=7)
    assert t1 != propose(dims, seed=7)


# =============================================================================== the loop, fake launcher


def _value(arm: str, params: dict, seed: str) -> float:
    """A known objective: arm a peaks at lr 1e-4 with seed noise; arm b is deterministic in C."""
    if arm == "a":
        noise = 0.01 * float(np.random.default_rng([7, int(seed)]).standard_normal())
        return 0.9 - 0.05 * (math.log10(float(params["optim.lr"])) + 4.0) ** 2 + noise
    return {0.1: 0.70, 1.0: 0.80, 10.0: 0.85}[float(params["method.C"])]


ARMS = {"a": ({"optim.lr": "tag(log, interval(1e-6, 1e-2))"}, {"optim.lr": 1e-5}),
        "b": ({"method.C": "choice(0.1, 1.0, 10.0)"}, {"method.C": 1.0})}


class FakeLauncher:
    """Writes each job's results.json as a finished job would; ``die_after``: the process dies
    when that many jobs are done (the next is left running, as a kill leaves it)."""

    def __init__(self, sweep, die_after=None):
        self.sweep, self.die_after, self.launched = Path(sweep), die_after, []

    def __call__(self, batch, first_num):
        for i, ov in enumerate(batch):
            kv = dict(o.split("=", 1) for o in ov)
            arm = kv["arm"]
            params = {**ARMS[arm][1], **{k: v for k, v in kv.items() if k in ARMS[arm][1]}}
            d = self.sweep / str(first_num + i)
            d.mkdir(parents=True, exist_ok=True)
            rec = {"status": "running", "overrides": ov, "seed": int(kv["seed"]), "finished_at": None}
            if self.die_after is not None and len(self.launched) == self.die_after:
                (d / "results.json").write_text(json.dumps(rec))
                raise KeyboardInterrupt
            v = _value(arm, params, kv["seed"])
            rec.update(status="ok", finished_at="2026-01-01T00:00:00+00:00", cost={"cpu_s": 1.0},
                       metrics={"val/acc": v, "test/acc": v - 0.01},
                       config={"study": {"phase": kv["study.phase"], "trial": int(kv["study.trial"])}})
            (d / "results.json").write_text(json.dumps(rec))
            self.launched.append((arm, kv["study.phase"], int(kv["study.trial"]), kv["seed"], first_num + i))
        return []


def _sweep(tmp_path, **kw) -> TuneSweep:
    space = parse_space(OverridesParser.create().parse_overrides(["logger=none", "arm=a,b"]))
    arms = {s.label: ArmSearch(s, parse_search(ARMS[s.values["arm"]][0]), ARMS[s.values["arm"]][1])
            for s in space.arms}
    settings = TuneSettings(**{"metric": "val/acc", "trials": 5, "seeds_per_trial": 2, "test_seeds": ["0", "1"], **kw})
    return TuneSweep(tmp_path / "sweep", space, arms, settings)


def _by_trial(launched):
    out = {}
    for arm, phase, trial, seed, _ in launched:
        out.setdefault((arm, phase, trial), []).append(seed)
    return out


@pytest.mark.parametrize("per_wave", [1, 2])
def test_study_prunes_repeats_chooses_and_tests_as_the_rule_says(tmp_path, per_wave):
    launch = FakeLauncher(tmp_path / "sweep")
    analysis = _sweep(tmp_path, trials_per_wave=per_wave).run(launch, say=lambda s: None)
    assert analysis["done"]
    ran = _by_trial(launch.launched)
    bests = {}
    for arm in ("a", "b"):
        a = analysis["arms"][f"arm={arm}"]
        trials = a["trials"]
        assert len(trials) == 5 and trials[0]["params"] == ARMS[arm][1]  # trial 0: the default recipe
        complete = {}
        for t in trials:
            if t["repeat_of"] is not None:                # the same values again: nothing ran for it
                assert (arm, "tune", t["trial"]) not in ran and t["params"] == trials[t["repeat_of"]]["params"]
                continue
            seeds = ran[(arm, "tune", t["trial"])]
            assert seeds[0] == "1000" and set(seeds) <= {"1000", "1001"}   # tuning seeds only
            vals = [_value(arm, t["params"], s) for s in seeds]
            assert np.allclose(t["values"], vals)
            # the rule by hand: reference = complete trials of earlier batches (per_wave trials per batch)
            ref = [v for k, v in complete.items() if k // per_wave < t["trial"] // per_wave]
            if ref:
                means = [np.mean(v) for v in ref]
                ss = sum(((np.asarray(v) - np.mean(v)) ** 2).sum() for v in ref)
                crit = scipy.stats.t.ppf(scipy.stats.norm.cdf(2.0), len(ref))   # each ref trial: 1 df
                margin = crit * math.sqrt(ss / len(ref)) * math.sqrt(1 / 1 + 1 / 2)
                should = max(means) - vals[0] > margin
            else:
                should = False
            assert (t["status"] == "pruned") == should and len(seeds) == (1 if should else 2)
            if not should:
                complete[t["trial"]] = vals
        best = max(sorted(complete), key=lambda k: np.mean(complete[k]))   # ties: the lower trial
        assert a["best"] == bests.setdefault(arm, best)
        tested = {k[2] for k in ran if k[0] == arm and k[1] == "test"}
        assert tested == {best, 0}
        for trial in tested:
            assert ran[(arm, "test", trial)] == ["0", "1"]
    # arm b is deterministic: any worse C stops after one seed; its best is C = 10 if drawn
    b = analysis["arms"]["arm=b"]
    drawn = {t["params"]["method.C"] for t in b["trials"]}
    assert b["trials"][b["best"]]["params"]["method.C"] == max(drawn)
    state = json.loads((tmp_path / "sweep" / STATE_FILE).read_text())
    assert all(r["complete"] for r in state["rounds"]) and state["facts"]["tests"]["arm=a"]["best"] == bests["a"]


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_killed_then_rerun_redoes_no_finished_job_and_draws_the_same(tmp_path, sampler):
    kw = {"sampler": sampler, "startup_trials": 2}
    whole = FakeLauncher(tmp_path / "ref" / "sweep")
    want = _sweep(tmp_path / "ref", **kw).run(whole, say=lambda s: None)
    first = FakeLauncher(tmp_path / "sweep", die_after=7)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, **kw).run(first, say=lambda s: None)
    again = FakeLauncher(tmp_path / "sweep")
    got = _sweep(tmp_path, **kw).run(again, say=lambda s: None)
    assert not {x[:4] for x in first.launched} & {x[:4] for x in again.launched}  # nothing finished ran again
    assert sorted(first.launched + again.launched) == sorted(whole.launched)       # the same jobs, same dirs
    assert got == want                                                            # same draws and choices
    idle = FakeLauncher(tmp_path / "sweep")
    assert _sweep(tmp_path, **kw).run(idle, say=lambda s: None) == want and not idle.launched


@pytest.mark.parametrize("first_order", ["together", "in_turn"])
def test_in_turn_runs_each_arm_whole_and_the_same_jobs_and_choices(tmp_path, first_order):
    """arm_order=in_turn: no job of arm b before arm a's last test job; the jobs, their dirs' draws
    and the choices are those of arm_order=together; and a study may switch order when rerun."""
    whole = FakeLauncher(tmp_path / "ref" / "sweep")
    want = _sweep(tmp_path / "ref").run(whole, say=lambda s: None)
    first = FakeLauncher(tmp_path / "sweep", die_after=3)
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, arm_order=first_order).run(first, say=lambda s: None)
    again = FakeLauncher(tmp_path / "sweep")
    got = _sweep(tmp_path, arm_order="in_turn").run(again, say=lambda s: None)
    assert got == want
    ran = first.launched + again.launched
    assert sorted(x[:4] for x in ran) == sorted(x[:4] for x in whole.launched)
    # after the killed job (its round is finished first), only arm a until its tests are done
    rest = [x[0] for x in again.launched[1:]]
    assert rest == sorted(rest) and rest.count("a") > 0 and rest.count("b") > 0
    last_a = max(i for i, x in enumerate(again.launched) if x[0] == "a")
    assert again.launched[last_a][1] == "test"
    with pytest.raises(ConfigError, match="arm_order='bogus' is not one of together, in_turn"):
        TuneSettings(arm_order="bogus").check()


def test_report_of_a_study_cut_between_arms_shows_the_tested_arm_and_a_lead_for_the_other(tmp_path):
    """In turn, killed while arm b tunes: the report is made of arm a's tuned test runs only, and
    arm b's best trial so far is marked as a lead, not a choice."""
    from tunelab.report.collect import collect
    from tunelab.report.render_tune import tune_section
    from tunelab.report.tune import tune_view

    whole = FakeLauncher(tmp_path / "ref" / "sweep")
    _sweep(tmp_path / "ref", arm_order="in_turn").run(whole, say=lambda s: None)
    n_a = sum(x[0] == "a" for x in whole.launched)
    assert [x[0] for x in whole.launched] == ["a"] * n_a + ["b"] * (len(whole.launched) - n_a)
    cut = FakeLauncher(tmp_path / "sweep", die_after=n_a + 2)   # b's first trials done, the next killed
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, arm_order="in_turn").run(cut, say=lambda s: None)
    jobs = collect(tmp_path / "sweep")[0]
    view = tune_view([tmp_path / "sweep"], jobs)
    a, b = view.study.arms["arm=a"], view.study.arms["arm=b"]
    assert a.searched and not b.searched and b.best == 0 and b.tuned is None and not view.study.done
    tested = [x for x in whole.launched if x[0] == "a" and x[1] == "test" and x[2] == a.best]
    assert sorted(j.seed for j in view.jobs) == sorted(int(x[3]) for x in tested) == [0, 1]
    assert all("arm=a" in j.overrides and "study.phase=test" in j.overrides for j in view.jobs)
    assert any("arm=b still tuning" in n for n in view.notes)
    md = tune_section(view.study)
    assert "| `arm=b` | `method.C` | {0.1, 1, 10} | 1 | 1 so far | 0 (still tuning) |" in md, md


def test_settings_are_checked_and_the_conf_defaults_are_the_settings(compose, tmp_path):
    with pytest.raises(ConfigError, match="seed\\(s\\) 1000 would be both tuning and test seeds"):
        TuneSettings(test_seeds=["999", "1000"]).check()
    with pytest.raises(ConfigError, match="another setup"):
        _sweep(tmp_path).run(FakeLauncher(tmp_path / "sweep"), say=lambda s: None)
        _sweep(tmp_path, trials=6).run(FakeLauncher(tmp_path / "sweep"), say=lambda s: None)
    from hydra_plugins.tunelab_sweepers.tune import TuneSweeper

    with pytest.raises(ConfigError, match="hydra.sweeper has no key bogus .*its keys are: metric, direction"):
        TuneSweeper(bogus=1)._study([])
    cfg = compose(["hydra/sweeper=tune"], return_hydra_config=True).hydra.sweeper
    d = TuneSettings()
    for k in ("metric", "direction", "trials", "seeds_per_trial", "tune_seed_from", "prune_after", "prune_z", "sampler",
              "sampler_seed", "startup_trials", "trials_per_wave", "test_default", "arm_order"):
        assert cfg[k] == getattr(d, k), k
    assert cfg.test_seeds == len(d.test_seeds) and not cfg.search
    hp = compose(["hparams_search=tune"], return_hydra_config=True).hydra.sweeper
    assert hp.seeds_per_trial == 3 and parse_search(hp.search)


# =============================================================================== the real thing


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_tiny_tuning_study_killed_resumes_and_tests_each_arms_best(tmp_path):
    """2 arms x 2 trials x 2 seeds, 2 test seeds, on val/loss (a continuous objective on the tiny
    model). SIGKILLed inside round 3's first job; the same command again finishes without running
    a finished job again. Then: phases and seeds, the tested configs against the trials' recorded
    validation means (computed here from the job dirs), and the report's sections."""
    args = ["-m", "hydra/sweeper=tune", *FAST, "+arm=bert_none,sparse_tfidf", "hydra.sweeper.trials=2",
            "hydra.sweeper.seeds_per_trial=2", "hydra.sweeper.test_seeds=2", "hydra.sweeper.metric=val/loss",
            "hydra.sweeper.direction=minimize", "task.monitor=val/loss", "task.monitor_mode=min",
            "hydra.sweeper.search={optim.epochs: null}", "hydra.sweeper.sampler_seed=3",
            "hydra.callbacks.report.metrics=[test/loss,test/acc]"]
    r = run_cli(args, tmp_path, env={"TUNELAB_FAULT_SIGKILL_AT_STEP": "1", "TUNELAB_FAULT_ONLY_DIR": "/4"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    before = {i: (sweep / str(i) / "results.json").read_text() for i in range(4)}
    assert load_results(sweep / "4" / "results.json")["status"] == "running"
    r = run_cli(args, tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "continuing" in r.stdout
    assert all((sweep / str(i) / "results.json").read_text() == text for i, text in before.items())  # not rerun
    runs = [load_results(p) for p in sorted(sweep.glob("*/results.json"))]
    assert all(x["status"] == "ok" for x in runs)
    by = {}
    for x in runs:
        st, arm = x["config"]["study"], x["overrides"][[o.split("=")[0] for o in x["overrides"]].index("+arm")]
        by.setdefault((arm, st["phase"], st["trial"]), []).append(x)
    for arm, key in (("+arm=bert_none", "optim.lr"), ("+arm=sparse_tfidf", "method.C")):
        tune = {k[2]: v for k, v in by.items() if k[0] == arm and k[1] == "tune"}
        assert set(tune) == {0, 1} and all(x["seed"] in (1000, 1001) for v in tune.values() for x in v)
        # the objective: the tested checkpoint's val/loss (val/loss_best where the run monitored it)
        full = {t: np.mean([x["metrics"].get("val/loss_best", x["metrics"]["val/loss"]) for x in v])
                for t, v in tune.items() if len(v) == 2}
        best = min(sorted(full), key=lambda t: full[t])
        tests = {k[2]: v for k, v in by.items() if k[0] == arm and k[1] == "test"}
        assert set(tests) == {best, 0} and all(sorted(x["seed"] for x in v) == [0, 1] for v in tests.values())
        if arm == "+arm=sparse_tfidf":  # a deterministic arm: C = 0.0414 (sampler_seed 3) is worse, pruned
            assert [x["seed"] for x in tune[1]] == [1000] and 1 not in full
        section, leaf = key.split(".")
        chosen = {x["config"][section][leaf] for x in tune[best]}
        assert len(chosen) == 1 and {x["config"][section][leaf] for x in tests[best]} == chosen
    md = (sweep / "report.md").read_text()
    for heading in ("## Tuning (`hydra/sweeper=tune`)", "### Default recipe vs tuned, on the test split (`test/loss`)",
                    "### Chosen hyper-parameters", "### Spread due to the choice of hyper-parameters",
                    "### Expected best validation score vs number of trials", "### Trials"):
        assert heading in md, heading
    # the pruned sparse trial: reference trial 0's two seeds give 1 df; t from scipy at Phi(2)
    crit = scipy.stats.t.ppf(scipy.stats.norm.cdf(2.0), 1)
    assert f"margin 0.0000, t {crit:.2f} on 1 df)" in md
    rep = json.loads((sweep / "report.json").read_text())
    assert set(rep["groups"]) == {"arm=bert_none", "arm=sparse_tfidf"}
    assert all(run["overrides"].count("study.phase=test") == 1 for run in rep["runs"])  # only tuned test runs
    assert "Hyper-parameter search (`hydra/sweeper=tune`)" in (sweep / "checklist.md").read_text()
