"""The tuning study behind ``hydra/sweeper=tune``: per arm, a search on validation, then fresh test
seeds of the configuration it chose (Bouthillier et al. 2021; Dodge et al. 2019).

Per arm (the swept keys other than the seed, as for ``hydra/sweeper=adaptive``): ``trials``
trials of its search space (``tunelab.schemas.search``), trial 0 its default recipe (the config as
composed), the others drawn by the sampler. A trial runs ``seeds_per_trial`` seeds, the same seeds
for every trial (``tune_seed_from``, 1000, upwards: common random numbers, so two trials differ
by their values, not by their seeds' luck), and its objective is the mean over them of
``metric`` on the validation split (the tested checkpoint's: ``<metric>_best`` where the run
monitored it). A trial clearly worse after its first ``prune_after`` seed(s) is pruned
(``tunelab.sweeps.prune``). A trial that draws the values of an earlier one is that trial again
(same values, same seeds: the same runs) and runs nothing. When the arm's trials are done, the
best (ties: the lower trial number, so the default recipe wins a tie) runs the ``test_seeds``
fresh seeds (0, 1, ... or the swept seeds: never a tuning seed) and so does trial 0
(``test_default``), so the report can set the tuned ranking beside the default recipe's on the
same test seeds. No number from a tuning job is a test result: those jobs are selection.

Batches: each arm proposes ``trials_per_wave`` trials at a time, from the history of its
finished trials (so ``sampler=tpe`` learns from them); their first seeds run as one wave with
every other arm's jobs, the seeds left to the trials that were not pruned as the next
(``arm_order=in_turn``: one arm's jobs at a time, each arm tuned and tested before the next
starts). A trial is compared for pruning with the finished trials of earlier batches only, so
every decision is a function of what is on disk. State: ``tune.json`` in the sweep dir
(``tunelab.sweeps.state``): the setup, each round's jobs and outcomes, and the facts no job records
(the trials' values, what was tested); run the same command again after a kill and it continues
without running a finished job again, drawing the same values it would have drawn.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from tunelab.errors import ConfigError
from tunelab.sweep_state import TUNE_STATE
from tunelab.sweeps.jobs import JobSpec, Launch, first_free_num
from tunelab.sweeps.prune import PruneLook, prune_look
from tunelab.schemas.search import Dimension, override_value
from tunelab.sweeps.sampler import SAMPLERS, Finished, propose, trial_seed
from tunelab.sweeps.space import ArmSpec, SweepSpace
from tunelab.sweeps.state import SweepState, finish_round

log = logging.getLogger(__name__)
STATE_FILE = TUNE_STATE
_PENDING = object()  # a job planned in a round that has not come back yet
# together: every wave holds the next jobs of every arm (fills a cluster's workers); in_turn: an arm
# is tuned and tested before the next one (in the command's order) starts, so a study cut into
# pieces on one machine has whole arms after each piece. Either way each arm runs the same jobs
# with the same draws: an arm's trials depend only on its own history.
ARM_ORDERS = ("together", "in_turn")


@dataclass
class TuneSettings:
    metric: str = "val/f1_macro"
    direction: str = "maximize"
    trials: int = 8
    seeds_per_trial: int = 2
    test_seeds: list = field(default_factory=lambda: [str(i) for i in range(5)])
    tune_seed_from: int = 1000
    prune_after: int = 1
    prune_z: Optional[float] = 2.0
    sampler: str = "random"
    sampler_seed: int = 0
    startup_trials: int = 4
    trials_per_wave: int = 1
    test_default: bool = True
    arm_order: str = "together"

    # how the jobs are ordered, not which jobs run: left out of the setup a rerun must match
    ORDER_ONLY = ("arm_order",)

    def check(self) -> None:
        for name in ("trials", "seeds_per_trial", "prune_after", "trials_per_wave"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"hydra.sweeper.{name}={getattr(self, name)} must be >= 1.")
        if not self.test_seeds:
            raise ConfigError("hydra.sweeper.test_seeds must be >= 1: the study ends by testing fresh seeds.")
        if self.direction not in ("maximize", "minimize"):
            raise ConfigError(f"hydra.sweeper.direction={self.direction!r} is not maximize or minimize.")
        if self.arm_order not in ARM_ORDERS:
            raise ConfigError(f"hydra.sweeper.arm_order={self.arm_order!r} is not one of {', '.join(ARM_ORDERS)}.")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"hydra.sweeper.sampler={self.sampler!r} is not one of {', '.join(SAMPLERS)}.")
        if self.prune_z is not None and not float(self.prune_z) > 0:
            raise ConfigError(f"hydra.sweeper.prune_z={self.prune_z} must be > 0 (null: never prune).")
        both = sorted(set(self.tune_seeds) & set(map(str, self.test_seeds)), key=int)
        if both:
            raise ConfigError(f"seed(s) {', '.join(both)} would be both tuning and test seeds: a test result must "
                              f"come from a run not used for selection; raise hydra.sweeper.tune_seed_from above "
                              f"the test seeds.")

    @property
    def tune_seeds(self) -> list[str]:
        return [str(int(self.tune_seed_from) + i) for i in range(int(self.seeds_per_trial))]

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def first_seeds(self) -> int:
        """Seeds a trial runs before it may be pruned (all of them when pruning cannot apply)."""
        n = int(self.seeds_per_trial)
        return n if self.prune_z is None or int(self.prune_after) >= n else int(self.prune_after)


@dataclass
class ArmSearch:
    """One arm: its swept values, its search space and the default recipe's values."""

    spec: ArmSpec
    dims: list[Dimension]
    defaults: dict

    def budget(self, trials: int) -> int:
        return int(trials) if self.dims else 1  # nothing to search: the default recipe only


@dataclass
class TrialView:
    """A trial as the disk state says it is now. ``status``: running | needs_seeds (its first seeds
    are back and it was not pruned) | complete | pruned | failed."""

    trial: int
    batch: int
    params: dict
    repeat_of: Optional[int] = None
    status: str = "running"
    values: list = field(default_factory=list)  # objective per seed run (None: that run failed)
    value: Optional[float] = None                # mean over the seeds run (pruned: over the first)
    look: Optional[PruneLook] = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["look"] = self.look.to_dict() if self.look else None
        return d


class TuneSweep:
    """One tuning study in ``sweep_dir``: ``run(launch)`` drives it to the end."""

    def __init__(self, sweep_dir: Path, space: SweepSpace, arms: dict[str, ArmSearch], settings: TuneSettings):
        settings.check()
        self.sweep_dir, self.space, self.arms, self.s = Path(sweep_dir), space, arms, settings

    def setup(self) -> dict:
        """What defines the study (a rerun must match it)."""
        s = {k: v for k, v in asdict(self.s).items() if k not in TuneSettings.ORDER_ONLY}
        s["tune_seeds"] = self.s.tune_seeds
        return {**s, "arm_keys": self.space.arm_keys, "seed_key": self.space.seed_key,
                "arms": {a: {"values": arm.spec.values, "search": {d.key: d.expr for d in arm.dims},
                             "bounds": {d.key: d.bounds for d in arm.dims}, "defaults": arm.defaults}
                         for a, arm in self.arms.items()},
                "fixed_overrides": self.space.fixed()}

    # ------------------------------------------------------------------ the loop
    def run(self, launch: Launch, validate: Optional[Callable[[list], None]] = None,
            say: Callable[[str], None] = print) -> dict:
        state = SweepState.open(self.sweep_dir, STATE_FILE, "tune", self.setup())
        for key in ("trials", "tests"):
            state.facts.setdefault(key, {})
        if state.rounds:
            say(f"[tunelab] tune: continuing {state.path} ({len(state.rounds)} round(s) recorded)")
        metrics = (f"{self.s.metric}_best", self.s.metric)
        for rnd in state.rounds:
            if not rnd.complete:
                finish_round(state, rnd, launch, self.sweep_dir, metrics, validate)
        said: set = set()
        self._analyse(state, say, said)
        while jobs := self._plan(state):
            rnd = state.add_round(jobs)
            say(f"[tunelab] tune: round {rnd.index}: {len(jobs)} job(s)")
            finish_round(state, rnd, launch, self.sweep_dir, metrics, validate)
            self._analyse(state, say, said)
        self._analyse(state, say, said, end=True)
        return state.analysis

    # ------------------------------------------------------------------ what the disk says
    def _results(self, state: SweepState) -> dict:
        """(arm, phase, trial, seed index) -> the job's outcome record, or _PENDING."""
        out = {}
        for rnd in state.rounds:
            for j in rnd.jobs:
                t = j.tags
                out[(t["arm"], t["phase"], t["trial"], t["seed_index"])] = (
                    rnd.outcomes.get(j.key) or {"value": None}) if rnd.complete else _PENDING
        return out

    def trials_of(self, state: SweepState, label: str, results: Optional[dict] = None) -> list[TrialView]:
        """Every trial of the arm, in order, with its status from the jobs' outcomes."""
        results = self._results(state) if results is None else results
        n, k = int(self.s.seeds_per_trial), self.s.first_seeds
        views: dict[int, TrialView] = {}
        for rec in state.facts["trials"].get(label, []):
            v = TrialView(int(rec["trial"]), int(rec["batch"]), dict(rec["params"]), rec.get("repeat_of"))
            views[v.trial] = v
            if v.repeat_of is not None:  # the same values and seeds: the same runs
                src = views[int(v.repeat_of)]
                v.status, v.values, v.value, v.look = src.status, list(src.values), src.value, src.look
                continue
            recs = [results.get((label, "tune", v.trial, i)) for i in range(n)]
            first = recs[:k]
            if any(r is None or r is _PENDING for r in first):
                continue  # running
            v.values = [r.get("value") for r in first]
            if any(x is None for x in v.values):
                v.status = "failed"
                continue
            if k < n:
                ref = [w.values for w in views.values()
                       if w.batch < v.batch and w.repeat_of is None and w.status == "complete"]
                v.look = prune_look(v.values, ref, n, float(self.s.prune_z), self.s.maximize)
                if v.look.pruned:
                    v.status, v.value = "pruned", v.look.partial
                    continue
            rest = recs[k:]
            if any(r is None for r in rest):
                v.status = "needs_seeds"
            elif any(r is _PENDING for r in rest):
                v.status = "running"
            else:
                v.values += [r.get("value") for r in rest]
                ok = None not in v.values
                v.status, v.value = ("complete", sum(v.values) / n) if ok else ("failed", None)
        return list(views.values())

    def best(self, views: list[TrialView]) -> Optional[TrialView]:
        """The complete trial with the best objective; a tie goes to the lower trial number."""
        done = [v for v in views if v.status == "complete" and v.repeat_of is None]
        sign = -1.0 if self.s.maximize else 1.0
        return min(done, key=lambda v: (sign * v.value, v.trial)) if done else None

    # ------------------------------------------------------------------ what to run next
    def _plan(self, state: SweepState) -> list[JobSpec]:
        num = max(state.next_num(), first_free_num(self.sweep_dir))
        jobs = []
        for label in self.arms:
            for key, overrides, tags in self._arm_jobs(state, label):
                jobs.append(JobSpec(key, num, overrides, tags))
                num += 1
            if jobs and self.s.arm_order == "in_turn":
                break  # the arms after this one are not asked yet: asking draws their trials
        return jobs

    def _arm_jobs(self, state: SweepState, label: str) -> list[tuple]:
        arm, n = self.arms[label], int(self.s.seeds_per_trial)
        while True:
            views = self.trials_of(state, label)
            todo = [v for v in views if v.status == "needs_seeds" and v.repeat_of is None]
            if todo:
                return [self._job(state, label, "tune", v.trial, i) for v in todo for i in range(self.s.first_seeds, n)]
            if any(v.status == "running" for v in views):
                return []
            if len(views) < arm.budget(self.s.trials):
                new = self._propose(state, label, views)
                jobs = [self._job(state, label, "tune", t["trial"], i) for t in new if t["repeat_of"] is None
                        for i in range(self.s.first_seeds)]
                if jobs:
                    return jobs
                continue  # every new trial repeats a finished one: it is done already; draw the next
            if label in state.facts["tests"]:
                return []
            best = self.best(views)
            tested = ([best.trial] if best else []) + ([0] if self.s.test_default and (best is None or best.trial) else [])
            state.facts["tests"][label] = {"best": best.trial if best else None, "trials": tested}
            return [self._job(state, label, "test", t, i) for t in tested for i in range(len(self.s.test_seeds))]

    def _propose(self, state: SweepState, label: str, views: list[TrialView]) -> list[dict]:
        arm = self.arms[label]
        history = [Finished(v.params, v.value, v.look.k if v.status == "pruned" else None)
                   for v in views if v.repeat_of is None and v.status in ("complete", "pruned", "failed")]
        known = list(state.facts["trials"].setdefault(label, []))
        batch = 1 + max((int(t["batch"]) for t in known), default=-1)
        new = []
        for t in range(len(views), min(len(views) + int(self.s.trials_per_wave), arm.budget(self.s.trials))):
            params = dict(arm.defaults) if t == 0 else propose(
                arm.dims, seed=trial_seed(self.s.sampler_seed, label, t), sampler=self.s.sampler,
                direction=self.s.direction, history=history, startup_trials=self.s.startup_trials)
            same = next((int(p["trial"]) for p in known + new if p["params"] == params), None)
            new.append({"trial": t, "batch": batch, "params": params, "repeat_of": same})
        state.facts["trials"][label] = known + new
        return new

    def _job(self, state: SweepState, label: str, phase: str, trial: int, i: int) -> tuple:
        seed = (self.s.tune_seeds if phase == "tune" else [str(x) for x in self.s.test_seeds])[i]
        extra = self.trial_overrides(state, label, trial)
        extra.update({"study.phase": phase, "study.trial": str(trial)})
        key = f"{label}|{phase}|trial={trial}|{self.space.seed_key}={seed}"
        tags = {"arm": label, "phase": phase, "trial": trial, "seed": seed, "seed_index": i}
        return key, self.space.job_overrides(self.arms[label].spec, seed, extra), tags

    @staticmethod
    def trial_overrides(state: SweepState, label: str, trial: int) -> dict:
        """A trial's values as overrides; none for trial 0, the config as composed."""
        if trial == 0:
            return {}
        rec = next(t for t in state.facts["trials"][label] if int(t["trial"]) == trial)
        return {k: override_value(v) for k, v in rec["params"].items()}

    # ------------------------------------------------------------------ what it says
    def _analyse(self, state: SweepState, say, said: set, end: bool = False) -> None:
        """Save each arm's trials, best and tests beside the facts (for the report), and say what
        finished since the last look."""
        results = self._results(state)
        arms, done = {}, True
        for label in self.arms:
            views = self.trials_of(state, label, results)
            best = self.best(views)
            tests = state.facts["tests"].get(label)
            test_done = tests is not None and all(
                results.get((label, "test", t, i)) not in (None, _PENDING)
                for t in tests["trials"] for i in range(len(self.s.test_seeds)))
            done = done and test_done
            arms[label] = {"trials": [v.to_dict() for v in views], "best": best.trial if best else None,
                           "tests": tests, "test_done": test_done}
            for v in views:
                if v.status in ("complete", "pruned", "failed") and (label, v.trial) not in said:
                    said.add((label, v.trial))
                    say(f"[tunelab] tune:   {label} trial {v.trial}{_values(v.params)}: {_verdict(v, self.s.metric)}")
        state.analysis = {"done": done, "arms": arms}
        state.save()
        if end:
            for label, a in arms.items():
                b = next((v for v in a["trials"] if v["trial"] == a["best"]), None)
                say(f"[tunelab] tune: {label}: best trial {a['best']}"
                    + (f"{_values(b['params'])}, {self.s.metric} {b['value']:.4f}" if b else " (none finished)")
                    + (f"; tested trial(s) {a['tests']['trials']} at seeds {', '.join(map(str, self.s.test_seeds))}"
                       if a["tests"] else ""))


def _values(params: dict) -> str:
    return " (" + ", ".join(f"{k}={override_value(v)}" for k, v in params.items()) + ")" if params else ""


def _verdict(v: TrialView, metric: str) -> str:
    if v.repeat_of is not None:
        return f"the values of trial {v.repeat_of} again ({v.status}, not run again)"
    if v.status == "failed":
        return "failed (a seed gave no value)"
    if v.status == "pruned":
        lk = v.look
        return (f"pruned after {lk.k} seed(s): {metric} {lk.partial:.4f} vs best {lk.best:.4f} "
                f"(margin {lk.margin:.4f})")
    return f"{metric} {v.value:.4f} over {len(v.values)} seed(s)"
