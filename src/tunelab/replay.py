"""``tunelab replay DIR...``: what the adaptive seed rule would have cost and decided on a study
that was run with a fixed number of seeds.

A fixed study's results.json files hold, per arm, a sample of seeds (metric and CPU seconds).
Each replay draws ``max_seeds`` runs of every arm from them with replacement (a bootstrap of the
seeds) and runs the adaptive rule (``tunelab.sequential.rule.Study``, the sweeper's own rule)
over the draws in order, as if they were the seeds coming in; a run costs its recorded CPU
seconds. Over ``--replays`` replays (seeded) it reports:

* ``cpu_fraction``: CPU seconds of the runs the rule used / those of all ``max_seeds`` draws of
  every arm (the fixed design), as a ratio of the totals over replays;
* ``agreement``: the share of replays in which *every* contrast ends with the decision the fixed
  design takes on all recorded runs (one final look at full information, same family and level;
  ``fixed_decisions``), "undecided" included;
* ``aa_false_rate``: in A/A replays — each arm with seed variance against an independent
  resample of itself, one contrast at the full alpha — the share that decides a sign (both sides
  have the same true mean, so any sign is false). Pooled over the arms.

Deterministic arms (all recorded runs identical: convex fits) are resampled as such. For the
other arms every draw counts as a distinct run: the rule takes an arm as constant when its runs
are identical, which a random arm's different seeds never are, while drawing one recorded run
twice would be.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tunelab.errors import TunelabError
from tunelab.sequential.design import Design
from tunelab.sequential.rule import DECIDED, Study, fixed_decisions
from tunelab.sequential.runs import Run, same_runs

REPLAYS = 1000


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = Design()
    p.add_argument("sweep_dir", nargs="+", help="sweep dirs of one fixed study (merged as tunelab report does)")
    p.add_argument("--metric", default="test/acc", help="results.json metric the arms are compared on (default test/acc)")
    p.add_argument("--replays", type=int, default=REPLAYS, help=f"bootstrap replays (default {REPLAYS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    p.add_argument("--max-seeds", type=int, default=None,
                   help="seeds per arm of the fixed design (default: the most ok runs of any arm)")
    p.add_argument("--alpha", type=float, default=d.alpha, help=f"family-wise error (default {d.alpha})")
    p.add_argument("--contrasts", choices=("all_pairs", "reference"), default=d.contrasts)
    p.add_argument("--reference", default=None, help="arm label for --contrasts reference, e.g. arm=bert_none")
    p.add_argument("--margin", type=float, default=d.margin, help="smallest effect of interest (default 0: none)")
    p.add_argument("--min-seeds", type=int, default=d.min_seeds)
    p.add_argument("--seeds-per-round", type=int, default=d.seeds_per_round)
    p.add_argument("--spending", choices=("pocock", "obf"), default=d.spending)
    p.add_argument("--json", action="store_true", help="print one JSON object (cpu_fraction, agreement, aa_false_rate, ...)")


@dataclass
class ReplayResult:
    cpu_fraction: float
    agreement: float
    aa_false_rate: Optional[float]
    replays: int
    seed: int
    metric: str
    design: dict
    arms: dict = field(default_factory=dict)
    contrasts: list = field(default_factory=list)
    aa: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


# =============================================================================== recorded runs


def recorded_runs(dirs: Sequence[str], metric: str) -> tuple[dict[str, list[Run]], list[str]]:
    """Ok runs per arm (metric, CPU seconds, all metrics as the run's key), and notes."""
    from tunelab.report.merge import collect_dirs
    from tunelab.sweeps.jobs import Outcome

    paths = [Path(d).expanduser() for d in dirs]
    for p in paths:
        if not p.is_dir():
            raise TunelabError(f"sweep dir '{p}' does not exist or is not a directory")
    jobs, groups, _, notes = collect_dirs(paths)
    if not jobs:
        raise TunelabError(f"no runs in {', '.join(map(str, paths))}: no dir below it has results.json")
    found = sorted({m for j in jobs for m in j.metrics})
    if metric not in found:
        raise TunelabError(f"--metric {metric} is not in any ok run; the metrics found are: {', '.join(found) or 'none'}")
    arms: dict[str, list[Run]] = {}
    for label, js in groups.items():
        runs = []
        for j in js:
            o = Outcome(j.state, j.name, j.result)
            v = o.metric(metric)
            if v is None:
                continue
            cpu = o.cpu_s if o.cpu_s is not None else (j.result or {}).get("duration_s")
            runs.append(Run(v, None if cpu is None else float(cpu), o.fingerprint()))
        not_ok = len(js) - len(runs)
        if not_ok:
            notes.append(f"{label}: {not_ok} job(s) without an ok {metric} left out")
        if runs:
            arms[label] = runs
        else:
            notes.append(f"{label}: no ok run, not replayed")
    return arms, notes


# =============================================================================== replays


def _draw(rng: np.random.Generator, runs: Sequence[Run], n: int, tag: tuple, deterministic: bool) -> list[Run]:
    idx = rng.integers(0, len(runs), size=n)
    if deterministic:
        return [runs[i] for i in idx]
    return [Run(runs[i].value, runs[i].cpu_s, (*tag, k)) for k, i in enumerate(idx)]


def run_rule(design: Design, draws: dict[str, list[Run]]) -> Study:
    """The rule over pre-drawn seeds, in order (what the sweeper does with real jobs)."""
    study = Study(design, list(draws), check=False)
    used = dict.fromkeys(draws, 0)
    while plan := study.plan():
        study.record({a: draws[a][used[a]:used[a] + k] for a, k in plan.items()})
        for a, k in plan.items():
            used[a] += k
    return study


def replay(arms: dict[str, list[Run]], design: Design, replays: int = REPLAYS, seed: int = 0,
           metric: str = "") -> ReplayResult:
    design.check(list(arms), name=_flag)
    rng = np.random.default_rng(seed)
    det = {a: same_runs(rs) for a, rs in arms.items()}
    full = fixed_decisions(design, arms)
    n = design.max_seeds
    agree, used_cpu, fixed_cpu = 0, 0.0, 0.0
    per_contrast = {c: {} for c in full}
    seeds_run = dict.fromkeys(arms, 0)
    for r in range(replays):
        draws = {a: _draw(rng, rs, n, (a, r), det[a]) for a, rs in arms.items()}
        study = run_rule(design, draws)
        got = study.decisions()
        agree += all(got[c] == full[c][0] for c in full)
        for c, dec in got.items():
            per_contrast[c][dec] = per_contrast[c].get(dec, 0) + 1
        used_cpu += study.cpu_s()
        fixed_cpu += sum(x.cpu_s or 0.0 for rs in draws.values() for x in rs)
        for a, k in study.seeds_run().items():
            seeds_run[a] += k
    aa_design = replace(design, contrasts="all_pairs", reference=None)
    aa = {}
    for a, rs in arms.items():
        if det[a] or len(rs) < 2:
            continue
        false = 0
        for r in range(replays):
            draws = {a: _draw(rng, rs, n, ("A", r), False), a + " (copy)": _draw(rng, rs, n, ("B", r), False)}
            false += next(iter(run_rule(aa_design, draws).decisions().values())) in DECIDED
        aa[a] = false / replays
    res = ReplayResult(used_cpu / fixed_cpu if fixed_cpu > 0 else float("nan"), agree / replays,
                       float(np.mean(list(aa.values()))) if aa else None, replays, seed, metric, design.to_dict())
    for a, rs in arms.items():
        cpus = [x.cpu_s for x in rs if x.cpu_s is not None]
        res.arms[a] = {"recorded_ok": len(rs), "constant": det[a], "mean": float(np.mean([x.value for x in rs])),
                       "cpu_s_mean": float(np.mean(cpus)) if cpus else None, "mean_seeds_run": seeds_run[a] / replays}
    for c, (dec, look) in full.items():
        res.contrasts.append({"contrast": c, "full_data": dec,
                              "full_data_ci": [look.low, look.high] if look else None,
                              "agreement": per_contrast[c].get(dec, 0) / replays,
                              "adaptive": {k: v / replays for k, v in sorted(per_contrast[c].items())}})
    res.aa = aa
    few = [a for a, rs in arms.items() if not det[a] and len(rs) < 10]
    if few:
        res.notes.append(f"{', '.join(few)}: fewer than 10 recorded runs; resampling so few seeds repeats and "
                         f"ties them often, so these figures are rough")
    if fixed_cpu == 0:
        res.notes.append("no run recorded CPU seconds (cost.cpu_s) or a duration: cpu_fraction is undefined")
    return res


# =============================================================================== CLI


def _print(res: ReplayResult, dirs: Sequence[str]) -> None:
    d = res.design
    print(f"tunelab replay: {res.replays} replays (seed {res.seed}) of the adaptive rule on {', '.join(dirs)}, "
          f"metric {res.metric}")
    print(f"rule: alpha {d['alpha']} over {len(res.contrasts)} contrast(s) ({d['contrasts']}), {d['spending']} "
          f"spending, min_seeds {d['min_seeds']}, seeds_per_round {d['seeds_per_round']}, max_seeds {d['max_seeds']}, "
          f"margin {d['margin']}\n")
    w = max(len(a) for a in res.arms) + 2
    print(f"{'arm':{w}} {'recorded':>8} {'constant':>8} {'mean':>8} {'CPU s/run':>9} {'seeds run (mean)':>16}")
    for a, x in res.arms.items():
        cpu = "n/a" if x["cpu_s_mean"] is None else f"{x['cpu_s_mean']:.1f}"
        print(f"{a:{w}} {x['recorded_ok']:>8} {'yes' if x['constant'] else 'no':>8} {x['mean']:>8.4f} {cpu:>9} "
              f"{x['mean_seeds_run']:>16.2f}")
    print()
    w = max(len(c["contrast"]) for c in res.contrasts) + 2
    print(f"{'contrast':{w}} {'full data':>10} {'agreement':>9}  adaptive decisions")
    for c in res.contrasts:
        shares = ", ".join(f"{k} {v:.3f}" for k, v in c["adaptive"].items())
        print(f"{c['contrast']:{w}} {c['full_data']:>10} {c['agreement']:>9.3f}  {shares}")
    aa = "n/a (no arm with seed variance)" if res.aa_false_rate is None else (
        f"{res.aa_false_rate:.3f} (" + ", ".join(f"{a} {v:.3f}" for a, v in res.aa.items()) + ")")
    print(f"\nCPU fraction vs the fixed design ({d['max_seeds']} seeds per arm): {res.cpu_fraction:.3f}")
    print(f"agreement with the full-data decisions (every contrast): {res.agreement:.3f}")
    print(f"A/A false-decision rate: {aa}")
    for n in res.notes:
        print(f"note: {n}")


def run(args: argparse.Namespace) -> int:
    try:
        if args.replays < 1:
            raise TunelabError(f"--replays {args.replays}: replay at least once")
        arms, notes = recorded_runs(args.sweep_dir, args.metric)
        most = max((len(rs) for rs in arms.values()), default=0)
        design = Design(alpha=args.alpha, contrasts=args.contrasts, reference=args.reference, margin=args.margin,
                        min_seeds=args.min_seeds, seeds_per_round=args.seeds_per_round,
                        max_seeds=args.max_seeds if args.max_seeds is not None else max(most, args.min_seeds),
                        spending=args.spending)
        res = replay(arms, design, args.replays, args.seed, args.metric)
        res.notes = notes + res.notes
    except TunelabError as e:
        print(f"tunelab replay: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        from tunelab.io import jsonable

        print(json.dumps(jsonable(asdict(res)), allow_nan=False))
    else:
        _print(res, args.sweep_dir)
    return 0
