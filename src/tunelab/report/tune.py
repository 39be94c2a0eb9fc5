"""The report of a tuning study (``hydra/sweeper=tune``): tuned vs default recipe, and what the search did.

Read from the study's state file (``tune.json``: the setup, every trial with its values, objective
and status, what was tested) and the job dirs (the test jobs' metrics). The rest of report.md is
made of each arm's *tuned* test runs only — the fresh seeds of its best trial, grouped by arm —
because the tuning runs were used for selection and their test scores are not results
(Bouthillier et al. 2021, arXiv 2103.03098). This part adds:

* **default vs tuned**: each arm's test score at its default recipe (trial 0, tested on the same
  fresh seeds) beside its tuned score, both rankings, the paired tuned − default difference (same
  seeds), and every pair of arms whose conclusion (Welch, two-sided, at 1 − level) tuning changed;
* **chosen values** per arm, with the bounds searched and the default;
* **spread due to the hyper-parameters**: the sd and range of the objective across the arm's
  trials (distinct configurations), beside the seed sd within trials (pooled), and whether the
  complete trials differ beyond seed noise at all (one-way ANOVA over their seeds);
* **expected best validation score vs number of trials** (Dodge et al. 2019, "Show your work",
  with the unbiased estimator of Tang et al. 2020: ``tunelab.report.expected_max``) over the drawn
  trials (trial 1 on: i.i.d. draws under random search; trial 0, the default recipe, is a fixed
  point and is shown beside the curve instead). A pruned trial enters with the mean of the seeds it
  ran, a failed one not at all (said beside the curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tunelab.errors import TunelabError
from tunelab.report import expected_max
from tunelab.report.jobs import Job
from tunelab.stats import configs_differ_p, pooled_sd, welch_ttest
from tunelab.sweep_state import TUNE_STATE, read_state

PLOT = "expected_max_trials.png"

PROTOCOL = ("per arm, trial 0 is its default recipe and trials 1.. are drawn by the {sampler} sampler (Optuna, "
            "seeded per arm and trial) from the arm's search space; each trial runs {n} seed(s) ({tune_seeds}, the "
            "same for every trial) and scores the mean {metric} on the validation split (the tested checkpoint's); "
            "{pruning}; the best trial (ties: the lower number) and trial 0 then run {t} fresh test seed(s) "
            "({test_seeds}) that no tuning job used (Bouthillier et al. 2021; Dodge et al. 2019)")


@dataclass
class TestScores:
    """One tested trial's test runs: ``values`` of the test metric by seed (ok runs only)."""

    trial: int
    values: dict = field(default_factory=dict)  # seed -> value
    failed: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.values.values()))) if self.values else math.nan

    @property
    def sd(self) -> float:
        return float(np.std(list(self.values.values()), ddof=1)) if self.n >= 2 else math.nan


@dataclass
class TuneArm:
    search: dict                  # key -> expression as written
    bounds: dict                  # key -> readable bounds
    defaults: dict                # key -> the default recipe's value
    trials: list[dict]            # the sweeper's trial records (trial, params, status, values, value, look, ...)
    best: Optional[int]
    chosen: dict
    val_default: Optional[float]  # trial 0's objective
    val_best: Optional[float]
    spread_n: int = 0             # distinct configurations with an objective
    spread_sd: float = math.nan   # sd of the objective across them
    spread_min: float = math.nan
    spread_max: float = math.nan
    seed_sd: Optional[float] = None  # pooled over the complete trials' seeds
    configs_p: float = math.nan   # one-way ANOVA over the complete trials' seeds: do the configurations differ?
    drawn_failed: int = 0
    curve: Optional[expected_max.Curve] = None  # expected best objective of n drawn trials
    tuned: Optional[TestScores] = None
    default: Optional[TestScores] = None
    paired_n: int = 0             # common seeds of tuned and default
    paired_diff: float = math.nan
    paired_low: float = math.nan
    paired_high: float = math.nan
    paired_p: float = math.nan
    spread_p: float = math.nan    # Brown–Forsythe: do the default's and the tuned recipe's test seeds spread alike?
    cpu_s_tune: float = 0.0
    cpu_s_test: float = 0.0
    searched: bool = True         # its trials are done and its tests planned: ``best`` is its choice, not a lead


@dataclass
class PairChange:
    a: str
    b: str
    default_diff: float
    default_p: float
    tuned_diff: float
    tuned_p: float
    default_says: str
    tuned_says: str


@dataclass
class TuneStudy:
    state_file: str
    metric: str
    direction: str
    test_metric: str
    settings: dict
    method: str
    done: bool
    arms: dict[str, TuneArm] = field(default_factory=dict)
    rank_tuned: list[str] = field(default_factory=list)
    rank_default: list[str] = field(default_factory=list)
    changes: list[PairChange] = field(default_factory=list)  # pairs whose conclusion tuning changed
    flipped: int = 0             # pairs whose order of means tuning reversed
    level: float = 0.95          # of every test and interval in the section


@dataclass
class TuneView:
    """The study, and the jobs the rest of the report is made of (each arm's tuned test runs), to be
    grouped by ``keys`` (the arm keys; ``single`` names the one arm when nothing was swept)."""

    study: TuneStudy
    jobs: list[Job]
    keys: list[str]
    single: Optional[str]
    notes: list[str] = field(default_factory=list)


def test_metric_of(metric: str) -> str:
    return "test/" + metric.split("/", 1)[1] if metric.startswith("val/") else metric


def _pruning(s: dict) -> str:
    if s.get("prune_z") is None or int(s.get("prune_after", 1)) >= int(s.get("seeds_per_trial", 1)):
        return "no pruning"
    return (f"a trial is pruned after {s['prune_after']} seed(s) when its mean is worse than the best finished "
            f"trial's by more than t x pooled seed sd x sqrt(1/{s['prune_after']} + 1/{s['seeds_per_trial']}), "
            f"t Student's quantile on the sd's degrees of freedom at the one-sided level of z = {s['prune_z']:g} "
            f"(tunelab.sweeps.prune)")


def tune_view(dirs: Sequence[Path], jobs: list[Job], level: float = 0.95, n_boot: int = 2000) -> Optional[TuneView]:
    """The tuning study in the (single) sweep dir, or None when it holds none."""
    dirs = [Path(d) for d in dirs]
    holding = [d for d in dirs if (d / TUNE_STATE).is_file()]
    if not holding:
        return None
    if len(dirs) > 1:
        raise TunelabError(f"{holding[0]} holds a tuning study ({TUNE_STATE}): report it on its own (its tuning runs "
                           f"are selection, not results, and only its own state says which are which).")
    data = read_state(holding[0] / TUNE_STATE)
    setup, analysis = data.get("setup") or {}, data.get("analysis") or {}
    tags = {tuple(sorted(j["overrides"])): j["tags"] for r in data.get("rounds") or [] for j in r["jobs"]}
    runs: dict[tuple, list[Job]] = {}
    for job in jobs:
        t = tags.get(tuple(sorted(job.overrides or [])))
        if t is not None:
            runs.setdefault((t["arm"], t["phase"], t["trial"]), []).append(job)
    metric = str(setup.get("metric", ""))
    s = {k: setup.get(k) for k in ("trials", "seeds_per_trial", "test_seeds", "tune_seeds", "prune_after", "prune_z",
                                   "sampler", "sampler_seed", "trials_per_wave", "test_default")}
    study = TuneStudy(str(holding[0] / TUNE_STATE), metric, str(setup.get("direction", "maximize")),
                      test_metric_of(metric), s,
                      PROTOCOL.format(sampler=s["sampler"], n=s["seeds_per_trial"], metric=f"`{metric}`",
                                      tune_seeds=", ".join(s["tune_seeds"] or []), pruning=_pruning(s),
                                      t=len(s["test_seeds"] or []), test_seeds=", ".join(s["test_seeds"] or [])),
                      bool(analysis.get("done")), level=level)
    maximize = study.direction == "maximize"
    for label, a in (analysis.get("arms") or {}).items():
        study.arms[label] = _arm(label, a, (setup.get("arms") or {}).get(label, {}), runs, metric, maximize, level,
                                 n_boot)
    _rank(study, maximize, 1 - level)
    main = [j for label, a in study.arms.items() if a.best is not None for j in runs.get((label, "test", a.best), [])]
    notes = []
    if not main:  # nothing tested yet: show the tuning runs by arm, and say what they are
        main = [j for (_, phase, _), js in runs.items() if phase == "tune" for j in js]
        notes.append("the tuning study has no tuned test run yet (not finished, or no trial finished): the tables "
                     "are of its tuning runs, which were used for selection — not results")
    searching = [label for label, a in study.arms.items() if not a.searched]
    if searching and len(searching) < len(study.arms):
        notes.append(f"the tuning study is not finished: {', '.join(searching)} still tuning (their best trial so far "
                     f"is a lead, not a choice, and they have no test runs); the tables are of the arms tested so far")
    keys = [k.lstrip("+") for k in setup.get("arm_keys") or []]
    return TuneView(study, main, keys, next(iter(study.arms), None), notes)


def _arm(label: str, a: dict, setup: dict, runs: dict, metric: str, maximize: bool, level: float,
         n_boot: int) -> TuneArm:
    test_metric = test_metric_of(metric)
    trials = a.get("trials") or []
    by_num = {t["trial"]: t for t in trials}
    best = a.get("best")
    arm = TuneArm(setup.get("search") or {}, setup.get("bounds") or {}, setup.get("defaults") or {}, trials, best,
                  dict(by_num[best]["params"]) if best in by_num else {},
                  (by_num.get(0) or {}).get("value"), (by_num.get(best) or {}).get("value"))
    distinct = [t["value"] for t in trials if t.get("repeat_of") is None and t.get("value") is not None]
    arm.searched = a.get("tests") is not None
    arm.spread_n = len(distinct)
    if distinct:
        arm.spread_min, arm.spread_max = float(min(distinct)), float(max(distinct))
        arm.spread_sd = float(np.std(distinct, ddof=1)) if len(distinct) >= 2 else math.nan
    complete = [[v for v in t["values"] if v is not None] for t in trials
                if t["status"] == "complete" and t.get("repeat_of") is None]
    arm.seed_sd = pooled_sd(complete)
    # Complete trials only: a pruned one stopped because its first seeds were low (a data-dependent
    # group size the F test does not allow for), and its one seed adds no degree of freedom within.
    arm.configs_p = configs_differ_p(complete)
    drawn = [t for t in trials if t["trial"] >= 1 and t["status"] in ("complete", "pruned", "failed")]
    arm.drawn_failed = sum(t["value"] is None for t in drawn)
    values = [t["value"] for t in drawn if t["value"] is not None]
    if values:
        arm.curve = expected_max.best_curve(metric, values, maximize, level, n_boot)
    tested = (a.get("tests") or {}).get("trials") or []
    for trial in tested:
        scores = TestScores(trial)
        for j in runs.get((label, "test", trial), []):
            v = j.metrics.get(test_metric)
            if j.state == "ok" and v is not None and math.isfinite(v):
                scores.values[str(j.seed)] = v
            else:
                scores.failed += 1
        if trial == best:
            arm.tuned = scores
        if trial == 0:
            arm.default = scores
    _paired(arm, level)
    for (lab, phase, _), js in runs.items():
        if lab == label:
            cpu = sum(float((j.result or {}).get("cost", {}).get("cpu_s") or 0.0) for j in js)
            if phase == "tune":
                arm.cpu_s_tune += cpu
            else:
                arm.cpu_s_test += cpu
    return arm


def _paired(arm: TuneArm, level: float) -> None:
    """Tuned − default on the seeds both ran (the same seeds: a paired t interval and test)."""
    if arm.tuned is None or arm.default is None:
        return
    common = sorted(set(arm.tuned.values) & set(arm.default.values))
    arm.paired_n = len(common)
    if not common:
        return
    d = np.array([arm.tuned.values[s] - arm.default.values[s] for s in common])
    arm.paired_diff = float(d.mean())
    if arm.tuned.trial == arm.default.trial or len(d) < 2:
        return  # the default recipe was chosen: the same runs
    from scipy import stats as st

    tuned, default = list(arm.tuned.values.values()), list(arm.default.values.values())
    # Two values sit equally far from their median, so a 2-seed arm has no spread of spreads: the
    # test's within-arm term loses that arm, and with 2 seeds in both it is 0 (p 1e-30 from round-off).
    if min(len(tuned), len(default)) >= 3 and (np.ptp(tuned) > 0 or np.ptp(default) > 0):
        # A tuned recipe can win by stability, not level (LoRA at a lower lr: none of 5 seeds
        # collapsed where one had). Levene's test on deviations from the median (Brown & Forsythe
        # 1974) keeps its level when seed scores are far from normal, as a collapsed seed makes
        # them; one collapse in 5 seeds seldom reaches significance, and the reader should see so
        # before calling a recipe more stable.
        arm.spread_p = float(st.levene(tuned, default, center="median").pvalue)
    sd = float(d.std(ddof=1)) if np.ptp(d) > 0 else 0.0
    if sd == 0:
        # Every seed moved by the same amount (a deterministic arm whose tuned recipe differs): the t
        # statistic has no null distribution, so no p (it was 0, printed 0.0000), as Welch's note.
        arm.paired_low = arm.paired_high = arm.paired_diff
        return
    half = float(st.t.ppf(1 - (1 - level) / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    arm.paired_low, arm.paired_high = arm.paired_diff - half, arm.paired_diff + half
    arm.paired_p = float(st.ttest_1samp(d, 0.0).pvalue)


def _rank(study: TuneStudy, maximize: bool, alpha: float) -> None:
    """Both rankings (best first) and every pair of arms whose Welch conclusion tuning changed."""
    sign = -1.0 if maximize else 1.0

    def order(kind: str) -> list[str]:
        scored = [(lab, getattr(a, kind)) for lab, a in study.arms.items()]
        scored = [(lab, s.mean) for lab, s in scored if s is not None and s.n]
        return [lab for lab, m in sorted(scored, key=lambda x: sign * x[1])]

    study.rank_tuned, study.rank_default = order("tuned"), order("default")
    labels = [lab for lab in study.arms if lab in study.rank_tuned and lab in study.rank_default]
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            says, diffs = {}, {}
            for kind in ("default", "tuned"):
                x, y = getattr(study.arms[a], kind), getattr(study.arms[b], kind)
                w = welch_ttest(list(x.values.values()), list(y.values.values()))
                diffs[kind] = (x.mean - y.mean, w.p)
                says[kind] = _says(x.mean - y.mean, w.p, alpha, maximize)
            if np.sign(diffs["default"][0]) * np.sign(diffs["tuned"][0]) < 0:
                study.flipped += 1
            if says["default"] != says["tuned"]:
                study.changes.append(PairChange(a, b, *diffs["default"], *diffs["tuned"], says["default"],
                                                says["tuned"]))


def _says(diff: float, p: float, alpha: float, maximize: bool) -> str:
    if not (math.isfinite(p) and p < alpha) or diff == 0:
        return "no difference shown"
    return "A better" if (diff > 0) == maximize else "B better"

