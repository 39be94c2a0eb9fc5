"""report.md's "Adaptive study" section (``tunelab.report.adaptive``). Text only."""

from __future__ import annotations

import math
from typing import Optional

from tunelab.report.adaptive import AdaptiveStudy
from tunelab.report.formatting import fmt
from tunelab.report.formatting import md_table as table

WHY = {"greater": "decided: A > B", "less": "decided: A < B", "equivalent": "equivalent (within ±margin)",
       "undecided": "undecided", "abandoned": "abandoned (an arm failed)", "open": "open (study not finished)"}


def adaptive_section(study: Optional[AdaptiveStudy]) -> str:
    if study is None:
        return ""
    d = study.design
    pct = 100 * (1 - (study.alpha_per_contrast or math.nan))
    out = ["## Adaptive study (`hydra/sweeper=adaptive`)", "",
           f"Metric `{study.metric}`; seeds in rounds: {d.get('min_seeds')} per arm first, then "
           f"{d.get('seeds_per_round')} per undecided arm, at most {d.get('max_seeds')}; margin "
           f"{d.get('margin')}; {'finished' if study.done else '**not finished** (run the same command again)'}. "
           f"Method: {study.method}. State: `{study.state_file}`.", "",
           "The Welch tests elsewhere in this report are fixed-sample tests: they ignore that this study "
           "stopped when the data were convincing and are too optimistic for it. The intervals below are "
           "the ones that account for the stopping.", ""]
    rows = [(c_label(c.a, c.b), WHY.get(c.decision, c.decision), c.stopped_round if c.stopped_round else "n/a",
             f"{c.n_a} vs {c.n_b}" if c.n_a is not None else "n/a", fmt(c.diff),
             f"[{fmt(c.rci_low)}, {fmt(c.rci_high)}]" if c.rci_low is not None else "n/a", c.reason)
            for c in study.contrasts]
    out += [table(["contrast (A vs B)", "decision", "stopped in round", "ok runs", "Δ mean (A − B), unadjusted",
                   f"repeated {fmt(pct, 2)}% CI at the stop", "why"], rows), ""]
    rows = [(f"`{arm}`", a.seeds_run, a.ok, a.failed, "yes" if a.constant else "no",
             "yes" if a.abandoned else "no", fmt(a.mean), fmt(a.cpu_s, 1)) for arm, a in study.arms.items()]
    out += [table(["arm", "seeds run", "ok", "failed", "constant over seeds", "abandoned", f"mean `{study.metric}`",
                   "CPU s"], rows), ""]
    if math.isfinite(study.fixed_cpu_s) and study.fixed_cpu_s > 0:
        out += [f"CPU seconds: {fmt(study.cpu_s, 1)} used; a fixed design of {d.get('max_seeds')} seeds per arm "
                f"≈ {fmt(study.fixed_cpu_s, 1)} (each arm's mean CPU s per run × {d.get('max_seeds')}): "
                f"**{fmt(100 * study.cpu_s / study.fixed_cpu_s, 1)} %**.", ""]
    rows = [(r.index, "; ".join(f"`{a}`: {', '.join(map(str, s))}" for a, s in r.seeds.items()),
             "; ".join(r.failed) or "none", "yes" if r.complete else "no (killed: continued on rerun)")
            for r in study.rounds]
    out += ["Rounds (seeds each arm ran):", "", table(["round", "seeds", "without a result", "complete"], rows), ""]
    return "\n".join(out)


def c_label(a: str, b: str) -> str:
    return f"`{a}` vs `{b}`"
