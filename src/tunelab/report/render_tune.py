"""report.md's "Tuning" section (``tunelab.report.tune``). Text only."""

from __future__ import annotations

import math
from typing import Optional

from tunelab.report.formatting import fmt, fmt_ci, fmt_p
from tunelab.report.formatting import md_table as table
from tunelab.report.tune import PLOT, TestScores, TuneArm, TuneStudy
from tunelab.schemas.search import override_value

STATUS = {"complete": "complete", "pruned": "pruned", "failed": "failed", "running": "not finished",
          "needs_seeds": "not finished"}


def _scores(s: Optional[TestScores]) -> str:
    if s is None or not s.n:
        return "n/a"
    return f"{fmt(s.mean)} ± {fmt(s.sd)} ({s.n})" + (f", {s.failed} failed" if s.failed else "")


def _v(value) -> str:
    return override_value(value)


def _spread_ratio(a: TuneArm) -> float:
    """sd of the objective across the arm's configurations / its seed sd (NaN when either is unknown)."""
    return a.spread_sd / a.seed_sd if a.seed_sd and math.isfinite(a.spread_sd) else math.nan


def _default_kept(a: TuneArm) -> bool:
    """The search chose the default recipe (trial 0): tuned and default are the same runs."""
    return a.tuned is not None and a.default is not None and a.tuned.trial == a.default.trial


def _moved(label: str, a: TuneArm, alpha: float) -> str:
    """How one arm of a pair moved under tuning: its tuned − default on the test seeds, and whether its
    search could tell its configurations apart at all (the one-way ANOVA over the complete trials'
    seeds, ``TuneArm.configs_p``). A conclusion that changes because an arm whose configurations do
    not differ beyond their seeds got a worse pick on test is selection noise, not the effect of
    tuning (the fair fight's adapters vs last2)."""
    if _default_kept(a):
        return f"`{label}`: default kept"
    said = f"`{label}`: {fmt(a.paired_diff)} (p {fmt_p(a.paired_p)})" if a.paired_n else f"`{label}`: n/a"
    if math.isfinite(a.configs_p) and a.configs_p >= alpha:
        said += (f", its configurations do not differ beyond seed noise on validation (ANOVA p "
                 f"{fmt_p(a.configs_p)}): a pick within seed noise")
    return said


def tune_section(study: Optional[TuneStudy], plot: bool = False) -> str:
    if study is None:
        return ""
    s, m, tm = study.settings, f"`{study.metric}`", f"`{study.test_metric}`"
    out = ["## Tuning (`hydra/sweeper=tune`)", "",
           f"Protocol: {study.method}. {s['trials']} trial(s) x {s['seeds_per_trial']} seed(s) per arm; objective "
           f"{m}, {study.direction}d; {'finished' if study.done else '**not finished** (run the same command again)'}."
           f" State: `{study.state_file}`.", "",
           "Everything above and below this section is about each arm's **tuned test runs** (the fresh seeds of its "
           "best trial); the tuning runs were used for selection and appear only here.", ""]
    # ------------------------------------------------------------------ default vs tuned
    rank_t = {a: i + 1 for i, a in enumerate(study.rank_tuned)}
    rank_d = {a: i + 1 for i, a in enumerate(study.rank_default)}
    rows = []
    for label, a in study.arms.items():
        delta = ("0 (the default recipe was chosen)" if _default_kept(a) else
                 f"{fmt(a.paired_diff)} {fmt_ci(a.paired_low, a.paired_high)}, p {fmt_p(a.paired_p)} ({a.paired_n})"
                 if a.paired_n else "n/a")
        spread = ("same runs" if _default_kept(a) else
                  f"{fmt(a.default.sd)} → {fmt(a.tuned.sd)}, p {fmt_p(a.spread_p)}"
                  if a.tuned is not None and a.default is not None and a.tuned.n >= 2 and a.default.n >= 2 else "n/a")
        rows.append((rank_t.get(label, "–"), f"`{label}`", _scores(a.tuned), rank_d.get(label, "–"),
                     _scores(a.default), delta, spread, fmt(a.val_best), fmt(a.val_default)))
    out += [f"### Default recipe vs tuned, on the test split ({tm})", "",
            f"Mean ± sd (n ok seeds) on the same fresh test seeds; Δ: tuned − default, paired by seed (t interval "
            f"and test); seed sd default → tuned with the Brown–Forsythe test of equal spread (a recipe can win by "
            f"stability: few seeds rarely show it); validation: the trial's objective {m} (the best trial's is "
            f"optimistic: it was chosen on it; its test score is not).", "",
            table(["rank tuned", "arm", "tuned", "rank default", "default recipe", "Δ tuned − default [CI], p",
                   "seed sd default → tuned, p", "val. best trial", "val. default"], rows), ""]
    if len(study.rank_tuned) >= 2:
        if study.changes:
            rows = [(f"`{c.a}` vs `{c.b}`", f"{fmt(c.default_diff)} (p {fmt_p(c.default_p)}): {c.default_says}",
                     f"{fmt(c.tuned_diff)} (p {fmt_p(c.tuned_p)}): {c.tuned_says}",
                     "; ".join(_moved(x, study.arms[x], 1 - study.level) for x in (c.a, c.b))) for c in study.changes]
            out += ["Where tuning changed a conclusion (Welch, two-sided; A is the first arm of the pair), and what "
                    "moved: each arm's tuned − default on the test seeds (paired), flagged where its configurations "
                    "do not differ beyond seed noise on validation (one-way ANOVA over the complete trials' seeds):", "",
                    table(["pair (A vs B)", "default recipe: Δ (p)", "tuned: Δ (p)", "what moved"], rows), ""]
        else:
            out += ["Tuning changed no conclusion between two arms (Welch, two-sided).", ""]
        out += [f"Pairs whose order of means tuning reversed: {study.flipped}.", ""]
    # ------------------------------------------------------------------ chosen values
    rows = [(f"`{label}`", f"`{k}`", a.bounds.get(k, a.search.get(k, "")), _v(a.defaults.get(k)),
             (_v(a.chosen.get(k)) if a.searched else f"{_v(a.chosen.get(k))} so far") if a.best is not None else "n/a",
             (a.best if a.searched else f"{a.best} (still tuning)") if a.best is not None else "none")
            for label, a in study.arms.items() for k in (a.search or {"(nothing searched)": ""})]
    out += ["### Chosen hyper-parameters", "",
            "Each arm's search space (its `search:` block), the default recipe's value and the best trial's.", "",
            table(["arm", "key", "searched", "default", "chosen", "best trial"], rows), ""]
    # ------------------------------------------------------------------ spread
    rows = []
    for label, a in study.arms.items():
        ratio = _spread_ratio(a)
        rows.append((f"`{label}`", a.spread_n, fmt(a.spread_sd), f"{fmt(a.spread_min)} .. {fmt(a.spread_max)}",
                     fmt(a.seed_sd), fmt(ratio, 2), fmt_p(a.configs_p), fmt(a.cpu_s_tune, 1), fmt(a.cpu_s_test, 1)))
    out += ["### Spread due to the choice of hyper-parameters", "",
            f"Over each arm's distinct configurations with an objective (pruned ones at the mean of the seeds they "
            f"ran): sd and range of {m}, beside the seed sd within a configuration (pooled over complete trials). "
            "A ratio well above 1: the choice of hyper-parameters moves the score more than the seed does (with "
            f"nothing to choose, means of {study.settings.get('seeds_per_trial')} seed(s) spread 1/sqrt of that many "
            "seed sds). *Differ, p*: the one-way ANOVA F test over the complete trials' seeds — whether the search "
            "could tell its configurations apart at all; a large p makes the pick noise.", "",
            table(["arm", "configurations", "sd across them", "range", "seed sd", "ratio", "differ, p (ANOVA)",
                   "CPU s tuning", "CPU s test"], rows), ""]
    # ------------------------------------------------------------------ expected best vs trials
    curves = {label: a.curve for label, a in study.arms.items() if a.curve is not None}
    if curves:
        n = max(len(c.n) for c in curves.values())
        rows = [(f"`{label}`", fmt(a.val_default), *(fmt(c.mean[i]) if i < len(c.n) else "" for i in range(n)),
                 a.drawn_failed) for label, a in study.arms.items() if (c := a.curve) is not None]
        out += [f"### Expected best validation score vs number of trials ({m})", "",
                f"E[best of n drawn trials] (Dodge et al. 2019, with Tang et al. 2020's unbiased estimator: the n "
                f"trials drawn without replacement from those run), n = 1 .. the arm's drawn trials (trial 1 on), "
                f"beside the default recipe's score: where the curve passes it, searching pays."
                + (f" Bands: ![expected best vs trials]({PLOT})" if plot else ""), "",
                table(["arm", "default", *(f"n={i + 1}" for i in range(n)), "failed draws (left out)"], rows), ""]
    # ------------------------------------------------------------------ the trials
    rows = []
    for label, a in study.arms.items():
        for t in a.trials:
            what = ", ".join(f"{k}={_v(v)}" for k, v in t["params"].items()) or "(default recipe)"
            status = STATUS.get(t["status"], t["status"])
            if t.get("repeat_of") is not None:
                status = f"= trial {t['repeat_of']} (same values: not run again)"
            elif t["status"] == "pruned" and t.get("look"):
                lk = t["look"]
                crit = f", t {lk['t']:.2f} on {lk['df']} df" if lk.get("t") is not None else ""  # older records: none
                status += f" (best {fmt(lk['best'])}, margin {fmt(lk['margin'])}{crit})"
            seeds = ", ".join(fmt(v) if v is not None else "failed" for v in t["values"])
            rows.append((f"`{label}`", t["trial"] if t["trial"] != a.best else f"**{t['trial']}** (best)", what,
                         seeds or "n/a", fmt(t["value"]), status))
    out += ["### Trials", "", table(["arm", "trial", "values", f"{study.metric} per seed", "objective", "status"],
                                    rows), ""]
    return "\n".join(out)


def checklist_lines(study: Optional[TuneStudy]) -> list[str]:
    """checklist.md's account of a tuning study: how values were chosen, and per arm the bounds,
    the default and the chosen value of every searched key."""
    if study is None:
        return []
    out = ["", f"Hyper-parameter search (`hydra/sweeper=tune`): {study.method}.", "",
           "Per arm: each searched key's bounds, the default recipe's value -> the value chosen (best trial):", ""]
    for label, a in study.arms.items():
        keys = "; ".join(f"`{k}` {a.bounds.get(k, a.search[k])}: {_v(a.defaults.get(k))} -> "
                         f"{_v(a.chosen.get(k)) if a.best is not None else 'n/a'}" for k in a.search) or "nothing searched"
        n = {st: sum(t["status"] == st and t.get("repeat_of") is None for t in a.trials) for st in ("pruned", "failed")}
        out.append(f"- `{label}`: {keys} (best trial {a.best if a.best is not None else 'none'} of {len(a.trials)}; "
                   f"{n['pruned']} pruned, {n['failed']} failed; validation {fmt(a.val_best)} vs default "
                   f"{fmt(a.val_default)})")
    return out
