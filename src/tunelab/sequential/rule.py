"""The adaptive seed rule: repeated confidence intervals per contrast, decided as seeds come in.

A study has arms (the swept configurations) and planned contrasts between them (every pair, or
each arm against a reference). Seeds run in rounds. After each round every open contrast gets a
*repeated confidence interval* (RCI; Jennison & Turnbull 1989, JRSS B 51:305; Jennison & Turnbull
2000, *Group Sequential Methods with Applications to Clinical Trials*, ch. 9) for the difference
of the arms' mean metric::

    RCI_k = diff_k -/+ q_k * se_k,   q_k = t-quantile(1 - p_k / 2, df_k)

where diff_k and se_k are the Welch difference of means and its standard error, df_k the
Welch-Satterthwaite degrees of freedom, and p_k the look's nominal level: the level at which a
sequential t-test first crosses at look k with probability alpha(t_k) - alpha(t_{k-1}), alpha(.)
the Lan-DeMets spending function (``spending``; Lan & DeMets 1983) at alpha / C (Bonferroni over
the C planned contrasts) and t_k the contrast's information fraction. Seed variances are
unknown and seeds few (2-9 df), so the levels are calibrated on the sequential one-sample t
statistic itself (``spending.t_levels``; Jennison & Turnbull 1991) rather than carried over from
normal boundaries, which with 3 seeds would let the error grow past alpha.

The RCIs of a contrast cover the true difference at *every* look at once with probability
>= 1 - alpha / C, so, by Bonferroni, all RCIs of all contrasts cover with probability
>= 1 - alpha whatever the stopping. A contrast stops as soon as its RCI:

* excludes 0: **decided**, ``greater`` (a > b) or ``less`` (a < b);
* lies inside (-margin, margin), ``margin`` the smallest effect of interest: **equivalent** (the
  two one-sided tests of TOST, each at level alpha / 2C: conservative against a 1 - 2 alpha
  interval, but one coverage argument then covers every kind of decision);
* or else at the last possible look: **undecided**.

Every wrong decision (a sign when the truth is 0 or the other sign, equivalence when the
difference is at least the margin) needs an RCI that missed the truth, so the family-wise error
of all decisions is <= alpha. The RCI at the stopping look is the estimate that accounts for
stopping (J&T 2000, ch. 9: valid whatever rule stopped the study); the plain difference of
means beside it is biased away from 0 when a study stops early.

Arms with **no seed variance** (convex fits such as the frozen probe or sparse baselines give the
same numbers every seed): an arm whose first ``min_seeds`` ok runs are identical is *constant*
and gets no more seeds; a contrast with one constant arm is then a one-sample test of the other
(Welch with a zero variance: df = n - 1); two constant arms are decided exactly by the sign of
their difference (or ``equivalent`` when equal). An arm gets seeds while any of its contrasts is
open, until ``max_seeds``. An arm of distinct runs that tie on the metric (0 sample variance, but
not constant) is not tested until its values vary. Failed runs are not data: they count against
``max_failures`` (past it the arm is *abandoned* and its open contrasts end ``abandoned``), and a
look needs ``min_seeds`` ok runs of each arm. The design is ``design.Design``, the runs
``runs.Run`` / ``runs.Arm``.

:class:`Study` is the whole rule as a state machine (plan a round, record its outcomes, look);
the sweeper (``hydra/sweeper=adaptive``) drives it with real jobs, ``tunelab replay`` with
resampled recorded results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations
from typing import Optional, Sequence

import numpy as np
from scipy.special import stdtrit

from tunelab.sequential.design import Design
from tunelab.sequential.runs import Arm, Run, close
from tunelab.sequential.spending import t_levels

DECIDED = ("greater", "less")
CLOSED = ("greater", "less", "equivalent", "undecided", "abandoned")


# =============================================================================== one look


def welch(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(mean(a) - mean(b), its standard error, Welch-Satterthwaite df); an arm of identical
    values contributes no variance (df = n - 1 of the other; inf when both are constant)."""
    va = float(np.var(a, ddof=1)) / a.size if a.size > 1 else 0.0
    vb = float(np.var(b, ddof=1)) / b.size if b.size > 1 else 0.0
    se2 = va + vb
    den = (va * va / (a.size - 1) if va > 0 else 0.0) + (vb * vb / (b.size - 1) if vb > 0 else 0.0)
    return float(a.mean() - b.mean()), math.sqrt(se2), (se2 * se2 / den) if den > 0 else math.inf


def rci(diff, se, df, level):
    """The repeated CI ``diff -/+ q se`` of a look with nominal two-sided ``level`` (vectorised):
    q is the t quantile with ``df`` degrees of freedom (inf for level 0)."""
    q = -stdtrit(df, np.asarray(level, dtype=float) / 2.0)  # = t.isf(level / 2, df), as a plain ufunc
    se = np.asarray(se, dtype=float)
    half = np.where(se == 0, 0.0, q * se)
    return np.asarray(diff) - half, np.asarray(diff) + half


def decide(low: float, high: float, margin: float, final: bool) -> str:
    """The decision an interval supports (module doc); ``open`` while the study may go on."""
    if low > 0:
        return "greater"
    if high < 0:
        return "less"
    if margin > 0 and -margin < low and high < margin:
        return "equivalent"
    return "undecided" if final else "open"


@dataclass
class Look:
    """One look at one contrast: the data, the boundary, the interval, the decision."""

    round: int
    n_a: int
    n_b: int
    t: float           # information fraction (1 at a final look)
    n_t: int           # seeds of the calibrating one-sample t (the fewest ok runs of a varying arm)
    level: float       # the look's nominal two-sided level (spending.t_levels)
    diff: float        # mean(a) - mean(b), not adjusted for stopping
    se: float
    df: float
    low: float         # repeated confidence interval
    high: float
    decision: str


@dataclass
class Contrast:
    a: str
    b: str
    decision: str = "open"
    reason: str = ""
    looks: list[Look] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.a} vs {self.b}"

    @property
    def last(self) -> Optional[Look]:
        return self.looks[-1] if self.looks else None


def planned_contrasts(design: Design, arms: Sequence[str]) -> list[Contrast]:
    if design.contrasts == "reference":
        return [Contrast(a, design.reference) for a in arms if a != design.reference]
    return [Contrast(a, b) for a, b in combinations(arms, 2)]


# =============================================================================== the study


class Study:
    """The rule as a state machine: :meth:`plan` a round, :meth:`record` its outcomes (each
    record is a look at every open contrast), until :meth:`plan` returns nothing."""

    def __init__(self, design: Design, arms: Sequence[str], check: bool = True):
        if check:
            design.check(arms)
        self.design = design
        self.arms = {a: Arm(a) for a in arms}
        self.contrasts = planned_contrasts(design, arms)
        self.alpha_c = design.alpha / len(self.contrasts)
        self.round = 0

    # ------------------------------------------------------------------ planning
    def can_grow(self, arm: Arm) -> bool:
        return not (arm.constant or arm.abandoned or len(arm.runs) >= self.design.max_seeds)

    def active(self, arm: Arm) -> bool:
        """Gets seeds in the next round: can grow and has an open contrast."""
        return self.can_grow(arm) and any(c.decision == "open" and arm.name in (c.a, c.b) for c in self.contrasts)

    def plan(self) -> dict[str, int]:
        """New seeds per arm for the next round ({} when the study is over)."""
        d = self.design
        if self.round == 0:
            return {a: min(d.min_seeds, d.max_seeds) for a in self.arms}
        return {a.name: min(d.seeds_per_round, d.max_seeds - len(a.runs))
                for a in self.arms.values() if self.active(a)}

    # ------------------------------------------------------------------ recording
    def record(self, runs: dict[str, Sequence[Run]]) -> None:
        """This round's runs per arm, in seed order, then a look at every open contrast."""
        for name, rs in runs.items():
            arm = self.arms[name]
            for r in rs:
                bad = r.value is None or not math.isfinite(r.value)
                arm.runs.append(Run(None, r.cpu_s, None) if bad else r)
        self.round += 1
        self._update_arms()
        for c in self.contrasts:
            if c.decision == "open":
                self._look(c)

    def _update_arms(self) -> None:
        d = self.design
        for arm in self.arms.values():
            arm.abandoned = arm.failures > d.max_failures
            arm.constant = not arm.abandoned and arm.values.size >= d.min_seeds and arm.identical()

    def _close(self, c: Contrast, decision: str, reason: str) -> None:
        c.decision, c.reason = decision, reason

    def ready(self, arm: Arm) -> bool:
        """An arm can be tested: constant, or at least ``min_seeds`` ok runs that vary. Distinct
        runs with equal values (accuracy ties) have a sample variance of 0, which a Welch test
        would take at its word: such an arm waits for more seeds instead."""
        v = arm.values
        return arm.constant or (v.size >= max(2, self.design.min_seeds) and float(np.ptp(v)) > 0)

    def _look(self, c: Contrast, final: Optional[bool] = None) -> None:
        d = self.design
        A, B = self.arms[c.a], self.arms[c.b]
        for arm in (A, B):
            if arm.abandoned:
                return self._close(c, "abandoned", f"{arm.name}: {arm.failures} failed runs (max_failures "
                                                   f"{d.max_failures})")
        if final is None:
            final = not (self.can_grow(A) or self.can_grow(B))
        # a constant arm is its mean (its runs agree to RTOL): no variance
        a, b = (np.full(X.values.size, X.values.mean()) if X.constant else X.values for X in (A, B))
        if not (self.ready(A) and self.ready(B)):
            if final:
                self._close(c, "undecided", f"an arm has fewer than min_seeds={d.min_seeds} ok runs, or runs "
                                            f"that differ but tie on the metric, at max_seeds")
            return None
        if A.constant and B.constant:
            diff = float(a[0] - b[0])
            decision = "equivalent" if close(a[0], b[0]) else "greater" if diff > 0 else "less"
            c.looks.append(Look(self.round, a.size, b.size, 1.0, 0, 0.0, diff, 0.0, math.inf, diff, diff, decision))
            return self._close(c, decision, "both arms constant over seeds: exact")
        t = 1.0 if final else self.information(A, B)
        if c.looks and t <= c.looks[-1].t + 1e-12:
            return None  # no new information since the last look (new runs failed): no test
        n_t = min(arm.values.size for arm in (A, B) if not arm.constant)
        level = t_levels(self.alpha_c, d.spending, [lk.t for lk in c.looks] + [t],
                         [lk.n_t for lk in c.looks] + [n_t])[-1]
        diff, se, df = welch(a, b)
        low, high = (float(x) for x in rci(diff, se, df, level))
        decision = decide(low, high, d.margin, final)
        c.looks.append(Look(self.round, a.size, b.size, t, n_t, level, diff, se, df, low, high, decision))
        if decision != "open":
            why = {"greater": "interval above 0", "less": "interval below 0",
                   "equivalent": f"interval inside +-{d.margin:g}",
                   "undecided": "max_seeds reached with 0 in the interval"}[decision]
            self._close(c, decision, f"{why} at look {len(c.looks)} (round {self.round})")
        return None

    def information(self, A: Arm, B: Arm) -> float:
        """Information fraction of the contrast: 1/Var(diff) relative to its value at max_seeds,
        with equal variances assumed (so it depends on the seed counts only); a constant arm adds
        no variance."""
        def w(arm: Arm, n: int) -> float:
            return 0.0 if arm.constant else 1.0 / n
        now = 1.0 / (w(A, A.values.size) + w(B, B.values.size))
        full = 1.0 / (w(A, self.design.max_seeds) + w(B, self.design.max_seeds))
        return min(1.0, now / full)

    # ------------------------------------------------------------------ results
    @property
    def done(self) -> bool:
        return self.round > 0 and not self.plan()

    def seeds_run(self) -> dict[str, int]:
        return {a.name: len(a.runs) for a in self.arms.values()}

    def cpu_s(self) -> float:
        """CPU seconds of every run so far (runs without a price count 0)."""
        return float(sum(r.cpu_s or 0.0 for a in self.arms.values() for r in a.runs))

    def decisions(self) -> dict[str, str]:
        return {c.label: c.decision for c in self.contrasts}

    def summary(self) -> dict:
        """Plain data for the state file and the report."""
        return {
            "alpha_per_contrast": self.alpha_c,
            "rounds": self.round,
            "done": self.done,
            "arms": {a.name: {"seeds_run": len(a.runs), "ok": int(a.values.size), "failed": a.failures,
                              "constant": a.constant, "abandoned": a.abandoned, "active": self.active(a),
                              "mean": float(a.values.mean()) if a.values.size else None}
                     for a in self.arms.values()},
            "contrasts": [{"a": c.a, "b": c.b, "decision": c.decision, "reason": c.reason,
                           "looks": [asdict(lk) for lk in c.looks]} for c in self.contrasts],
        }


def fixed_decisions(design: Design, runs: dict[str, Sequence[Run]]) -> dict[str, tuple[str, Optional[Look]]]:
    """What a fixed design decides on all of ``runs``: one final look (information fraction 1)
    per contrast in the same Bonferroni family with the same interval; the reference
    ``tunelab replay`` compares the rule with. An arm is constant here when all its runs are
    identical (even a single run); any other arm needs 2 ok runs."""
    study = Study(replace(design, min_seeds=2), list(runs), check=False)
    for name, rs in runs.items():
        arm = study.arms[name]
        arm.runs = list(rs)
        arm.constant = arm.identical()
    for c in study.contrasts:
        study._look(c, final=True)
    return {c.label: (c.decision, c.last) for c in study.contrasts}
