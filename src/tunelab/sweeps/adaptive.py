"""The adaptive seed study behind ``hydra/sweeper=adaptive``: rounds of seeds until decided.

Each round is one wave of jobs (``tunelab.sweeps.jobs``): the first gives every arm
``min_seeds`` seeds, each later one gives ``seeds_per_round`` more to every arm that still has an
open contrast (``tunelab.sequential.rule``). After a wave, each job's metric, CPU seconds and
whether it failed are read from its results.json and written into ``adaptive.json`` in the sweep
dir with the round (``tunelab.sweeps.state``); the rule then looks at every open contrast.

Arm ``i``'s ``k``-th seed is the ``k``-th value of the swept seeds (``seed=range(10)``: 0, 1, 2,
...) — the seeds a fixed study of the same command would run — so an adaptive study is a prefix
of the fixed one: ``tunelab report`` merges it with more seeds run later, and the fixed command
with ``resume=auto`` on the same sweep dir skips the jobs it already has (same identity).

Run again after a kill, the same command (same sweep dir: ``resume=auto resume.name=...`` or
``hydra.sweep.dir=...``) continues: completed rounds are read back, a round that was running is
launched again without its finished jobs (its killed jobs into their own dirs; under
``resume=auto`` from their checkpoints), and the rule decides from the same data as before.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional

from tunelab.sequential.rule import Design, Run, Study
from tunelab.sweep_state import ADAPTIVE_STATE
from tunelab.sweeps.jobs import JobSpec, Launch, first_free_num
from tunelab.sweeps.space import SweepSpace
from tunelab.sweeps.state import Round, SweepState, finish_round

log = logging.getLogger(__name__)
STATE_FILE = ADAPTIVE_STATE


class AdaptiveSweep:
    """One adaptive study in ``sweep_dir``: ``run(launch)`` drives it to the end."""

    def __init__(self, sweep_dir: Path, space: SweepSpace, design: Design, metric: str, seeds: list[str]):
        design.check([a.label for a in space.arms])
        self.sweep_dir, self.space, self.design, self.metric, self.seeds = Path(sweep_dir), space, design, metric, seeds
        self.arms = {a.label: a for a in space.arms}

    def setup(self) -> dict:
        """What defines the study (a rerun must match it): rule, metric, arms, seeds, fixed overrides."""
        return {"metric": self.metric, "design": self.design.to_dict(), "arms": list(self.arms),
                "seed_key": self.space.seed_key, "seeds": self.seeds, "fixed_overrides": self.space.fixed()}

    # ------------------------------------------------------------------ the loop
    def run(self, launch: Launch, validate: Optional[Callable[[list], None]] = None,
            say: Callable[[str], None] = print) -> Study:
        state = SweepState.open(self.sweep_dir, STATE_FILE, "adaptive", self.setup())
        study = Study(self.design, list(self.arms))
        if state.rounds:
            say(f"[tunelab] adaptive: continuing {state.path} ({len(state.rounds)} round(s) recorded)")
        for rnd in state.rounds:
            if not rnd.complete:
                self._wave(state, rnd, launch, validate)
            self._look(state, study, rnd, say)
        while plan := study.plan():
            rnd = state.add_round(self._plan_jobs(state, study, plan))
            self._wave(state, rnd, launch, validate)
            self._look(state, study, rnd, say)
        self._report_end(study, say)
        return study

    def _look(self, state: SweepState, study: Study, rnd: Round, say) -> None:
        """The rule looks at the round; its analysis is saved at once (a report made while the
        study runs, or after a kill, shows the decisions so far)."""
        study.record(self.runs_of(rnd))
        state.analysis = study.summary()
        state.save()
        self._report_round(study, rnd, say)

    def _plan_jobs(self, state: SweepState, study: Study, plan: dict[str, int]) -> list[JobSpec]:
        num = max(state.next_num(), first_free_num(self.sweep_dir))
        jobs = []
        for label in self.arms:  # arms in sweep order, seeds in order: one run of numbers
            start = len(study.arms[label].runs)
            for i in range(start, start + plan.get(label, 0)):
                seed = self.seeds[i]
                jobs.append(JobSpec(f"{label}|{self.space.seed_key}={seed}", num,
                                    self.space.job_overrides(self.arms[label], seed),
                                    {"arm": label, "seed": seed, "seed_index": i, "round": len(state.rounds) + 1}))
                num += 1
        return jobs

    def _wave(self, state: SweepState, rnd: Round, launch: Launch, validate) -> None:
        finish_round(state, rnd, launch, self.sweep_dir, self.metric, validate)

    def runs_of(self, rnd: Round) -> dict[str, list[Run]]:
        """The round's runs per arm in seed order; a failed, lost or metric-less job has no value."""
        runs: dict[str, list[Run]] = {}
        for job in sorted(rnd.jobs, key=lambda j: (j.tags["arm"], j.tags["seed_index"])):
            rec = rnd.outcomes.get(job.key) or {}
            fp = rec.get("fingerprint")
            runs.setdefault(job.tags["arm"], []).append(
                Run(rec.get("value"), rec.get("cpu_s"), tuple(map(tuple, fp)) if fp else None))
        return runs

    # ------------------------------------------------------------------ what it says
    def _report_round(self, study: Study, rnd: Round, say) -> None:
        failed = [j.key for j in rnd.jobs if (rnd.outcomes.get(j.key) or {}).get("value") is None]
        seeds = ", ".join(f"{a} {n}" for a, n in study.seeds_run().items())
        say(f"[tunelab] adaptive: round {rnd.index}: {len(rnd.jobs)} job(s)"
            + (f", {len(failed)} without a result ({', '.join(failed)})" if failed else "") + f"; seeds per arm: {seeds}")
        for c in study.contrasts:
            lk = c.last
            if lk is not None and lk.round == study.round:
                say(f"[tunelab] adaptive:   {c.label}: diff {lk.diff:+.4f}, repeated CI [{lk.low:+.4f}, {lk.high:+.4f}]"
                    f" -> {c.decision}")

    def _report_end(self, study: Study, say) -> None:
        say(f"[tunelab] adaptive: done after {study.round} round(s); seeds per arm: "
            + ", ".join(f"{a} {n}" for a, n in study.seeds_run().items()) + f" (max {self.design.max_seeds})")
        for c in study.contrasts:
            say(f"[tunelab] adaptive:   {c.label}: {c.decision} ({c.reason})")
