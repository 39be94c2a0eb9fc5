"""The report's "Adaptive study" part: what ``hydra/sweeper=adaptive`` ran and decided.

Read from the study's state file (``adaptive.json`` in the sweep dir, ``tunelab.sweep_state``):
the rounds and which seeds each ran, per arm the seeds run and their CPU seconds, per contrast
the decision, why and when it stopped, and the repeated confidence interval at the stopping look
— the interval that stays valid after a data-dependent stop (Jennison & Turnbull 2000, ch. 9),
unlike the fixed-sample Welch intervals elsewhere in the report, which ignore the stopping.
Nothing is recomputed here: the sweeper wrote the rule's analysis beside its facts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from tunelab.sweep_state import ADAPTIVE_STATE, read_state


METHOD = ("repeated confidence intervals (Jennison & Turnbull 1989, JRSS B 51:305; Jennison & Turnbull 2000, "
          "Group Sequential Methods, ch. 9) for the Welch difference of means: each look's nominal level is the "
          "one at which a sequential one-sample t-test first crosses with the increment of Lan-DeMets "
          "{spending}-type alpha spending (Lan & DeMets 1983, Biometrika 70:659) over the contrast's information "
          "fraction (seeds / max_seeds), calibrated by seeded simulation (the t statistic's null distribution is "
          "free of the variance: Jennison & Turnbull 1991, Biometrika 78:133), and is applied at the look's "
          "Welch-Satterthwaite df; alpha / {n} per contrast (Bonferroni over the {n} planned contrast(s), "
          "family-wise {alpha:g}). A contrast stops when its interval excludes 0 (decided), lies inside +-margin "
          "(equivalent: TOST at alpha/2 per side) or at max_seeds (undecided)")


@dataclass
class AdaptiveArm:
    seeds_run: int
    ok: int
    failed: int
    constant: bool
    abandoned: bool
    mean: Optional[float]
    cpu_s: float          # CPU seconds of the arm's runs (ok and failed)
    cpu_s_mean: float     # per run, over runs that recorded it


@dataclass
class AdaptiveContrast:
    a: str
    b: str
    decision: str
    reason: str
    looks: int
    stopped_round: Optional[int]
    n_a: Optional[int]
    n_b: Optional[int]
    diff: Optional[float]      # difference of means at the stop, not adjusted for stopping
    rci_low: Optional[float]   # repeated CI at the stopping look (valid after the stop)
    rci_high: Optional[float]
    level: Optional[float]     # the look's nominal two-sided level


@dataclass
class AdaptiveRound:
    index: int
    seeds: dict[str, list]     # arm -> seeds run in this round
    failed: list[str]          # jobs without a result (failed, killed, metric missing)
    complete: bool


@dataclass
class AdaptiveStudy:
    state_file: str
    metric: str
    design: dict
    method: str
    alpha_per_contrast: Optional[float]
    done: bool
    rounds: list[AdaptiveRound] = field(default_factory=list)
    arms: dict[str, AdaptiveArm] = field(default_factory=dict)
    contrasts: list[AdaptiveContrast] = field(default_factory=list)
    cpu_s: float = 0.0
    fixed_cpu_s: float = math.nan  # max_seeds runs of every arm at its mean CPU s per run


def _contrast(c: dict) -> AdaptiveContrast:
    looks = c.get("looks") or []
    last = looks[-1] if looks else {}
    return AdaptiveContrast(c["a"], c["b"], c["decision"], c.get("reason", ""), len(looks), last.get("round"),
                            last.get("n_a"), last.get("n_b"), last.get("diff"), last.get("low"), last.get("high"),
                            last.get("level"))


def adaptive_study(sweep_dirs: Sequence[Path]) -> Optional[AdaptiveStudy]:
    """The adaptive study of the first dir that holds one; None when none does."""
    path = next((Path(d) / ADAPTIVE_STATE for d in sweep_dirs if (Path(d) / ADAPTIVE_STATE).is_file()), None)
    data = read_state(path) if path is not None else None
    if data is None:
        return None
    setup, analysis = data.get("setup") or {}, data.get("analysis") or {}
    design = setup.get("design") or {}
    n_contrasts = len(analysis.get("contrasts") or []) or 1
    study = AdaptiveStudy(str(path), setup.get("metric", ""), design,
                          METHOD.format(spending=design.get("spending", "?"), n=n_contrasts,
                                        alpha=design.get("alpha", math.nan)),
                          analysis.get("alpha_per_contrast"), bool(analysis.get("done")))
    costs: dict[str, list] = {}
    for r in data.get("rounds") or []:
        seeds: dict[str, list] = {}
        failed = []
        for j in r.get("jobs") or []:
            arm, out = j["tags"]["arm"], j.get("outcome") or {}
            seeds.setdefault(arm, []).append(j["tags"]["seed"])
            if out and out.get("value") is None:
                failed.append(f"{arm} {setup.get('seed_key', 'seed')}={j['tags']['seed']}: {out.get('status')}"
                              + (f" ({out['problem']})" if out.get("problem") else ""))
            if out.get("cpu_s") is not None:
                costs.setdefault(arm, []).append(float(out["cpu_s"]))
        study.rounds.append(AdaptiveRound(int(r["index"]), seeds, failed, bool(r.get("complete"))))
    max_seeds = int(design.get("max_seeds") or 0)
    for arm, a in (analysis.get("arms") or {}).items():
        cs = costs.get(arm, [])
        mean = sum(cs) / len(cs) if cs else math.nan
        study.arms[arm] = AdaptiveArm(a["seeds_run"], a["ok"], a["failed"], a["constant"], a["abandoned"],
                                      a.get("mean"), sum(cs), mean)
    study.contrasts = [_contrast(c) for c in analysis.get("contrasts") or []]
    study.cpu_s = sum(a.cpu_s for a in study.arms.values())
    study.fixed_cpu_s = sum(max_seeds * a.cpu_s_mean for a in study.arms.values())
    return study
