"""The example-level part of a report: seed ensembles, seed agreement and paired arm tests.

Reads every ok job's ``predictions.npz`` (``tunelab.predictions``) and, per arm (report group),
stacks the seeds' predictions on the shared test examples; the statistics themselves are
``tunelab.report.paired``. Seeds of two arms are paired by their ``(init_seed, order_seed)``
(equal to ``(seed, seed)`` when the seed was not split), so "per seed pair" compares runs that
saw the same initialisation and data order; the pooled row uses every shared seed pair, with the
example as its unit (``paired.sign_flip``: the seed pairs reuse the same examples, so their counts
cannot be summed as if they were new evidence).

Nothing is dropped silently: a job without a predictions file, with one that cannot be read,
or whose test examples/gold labels differ from the others' (another split) is named in
``notes`` and left out of this section only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from tunelab import predictions as P
from tunelab import stats
from tunelab.report.jobs import Job
from tunelab.report.paired import (agreement, discordant, mcnemar, mean_probability, paired_bootstrap, scores,
                                   sign_flip, vote)

N_BOOT_PAIRED = 1000


@dataclass
class ArmExamples:
    """One arm's seeds on the shared examples: mean single-seed scores vs. the ensembles."""

    n_seeds: int
    mean_single: dict[str, float]
    vote: dict[str, float]
    mean_probability: dict[str, float] | None
    agreement: float
    all_agree: float


@dataclass
class PairedRow:
    """A vs. B on the same examples: McNemar on correctness and paired-bootstrap score differences."""

    a: str
    b: str
    seeds: str  # "pooled (k pairs)" or the seed pair's "init/order"
    n_pairs: int
    a_right_b_wrong: float  # one seed pair: a count; pooled: the mean count per seed pair
    a_wrong_b_right: float
    statistic: float
    p: float
    test: str
    diffs: dict[str, dict[str, float]]  # metric -> diff, low, high, p (paired bootstrap)
    p_holm: float | None = None  # pooled rows: Holm over the arm pairs


@dataclass
class ExampleLevel:
    """report.json ``examples``."""

    n_examples: int = 0
    label_names: list[str] = field(default_factory=list)
    arms: dict[str, ArmExamples] = field(default_factory=dict)
    pairs: list[PairedRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def seed_key(job: Job) -> tuple:
    """(init_seed, order_seed) of a run; both are its ``seed`` when the seed was not split."""
    r = job.result or {}
    return r.get("init_seed", job.seed), r.get("order_seed", job.seed)


def read_predictions(job: Job, notes: list[str], if_missing: str = "") -> P.Predictions | None:
    """A job's predictions.npz; None, with a note, when it cannot be read, and when it is missing
    (the note only if ``if_missing`` says what that costs)."""
    path = job.path / P.PREDICTIONS_FILE
    if not path.is_file():
        if if_missing:
            notes.append(f"run {job.name} ({job.group}) has no {P.PREDICTIONS_FILE}: {if_missing}")
        return None
    try:
        return P.read(path)
    except (OSError, ValueError, KeyError) as exc:
        notes.append(f"run {job.name}: {P.PREDICTIONS_FILE} unreadable ({type(exc).__name__}: {exc})")
        return None


def _load(groups: dict[str, list[Job]], notes: list[str], split: str = "test") -> dict[str, dict[tuple, P.Predictions]]:
    """Per arm: seed key -> predictions of ``split`` (test, or test_ood: another split the
    predictions file keeps), for the ok seq_cls runs on one shared set of examples."""
    ref: P.Predictions | None = None
    out: dict[str, dict[tuple, P.Predictions]] = {}
    for group, jobs in groups.items():
        for job in (j for j in jobs if j.state == "ok"):
            p = read_predictions(job, notes, "left out of the paired statistics")
            if p is not None and split != p.split:
                p = p.other.get(split)
                if p is None:
                    notes.append(f"run {job.name} ({group}) kept no {split} predictions: left out of its paired "
                                 f"statistics")
                    continue
            if p is None:
                continue
            if p.kind != "seq_cls":
                notes.append(f"run {job.name}: {p.kind} predictions are kept but not paired (sequence "
                             f"classification only)")
                continue
            ref = ref or p
            if not P.same_examples(p, ref):
                notes.append(f"run {job.name} ({group}) was tested on other examples or labels (or label "
                             f"order) than the others: left out of the paired statistics")
                continue
            out.setdefault(group, {})[seed_key(job)] = p
    # Seeds in a fixed order, whatever order the job dirs were found in (merged sweeps).
    return {g: dict(sorted(by_seed.items(), key=lambda kv: tuple(map(str, kv[0])))) for g, by_seed in out.items()}


def _arm(preds: dict[tuple, P.Predictions], n_classes: int, pos: int) -> ArmExamples:
    gold = next(iter(preds.values())).gold
    stack = np.stack([p.pred for p in preds.values()])
    probs = [p.probs for p in preds.values()]
    probs = np.stack(probs) if all(x is not None for x in probs) else None
    singles = [scores(gold, row, n_classes, pos) for row in stack]
    mean_pair, all_agree = agreement(stack)
    return ArmExamples(
        n_seeds=len(stack), mean_single={k: float(np.mean([s[k] for s in singles])) for k in singles[0]},
        vote=scores(gold, vote(stack, n_classes, probs), n_classes, pos),
        mean_probability=scores(gold, mean_probability(probs), n_classes, pos) if probs is not None else None,
        agreement=mean_pair, all_agree=all_agree)


def _row(a: str, b: str, label: str, gold, pa: np.ndarray, pb: np.ndarray, n_classes: int, pos: int,
         n_boot: int, level: float, pooled: bool = False) -> PairedRow:
    """One seed pair: McNemar on its discordant counts. Pooled: the sign-flip test over examples
    (the same examples in every seed pair), with the counts as a mean per seed pair."""
    if pooled:
        m = sign_flip(pa == gold, pb == gold)
        bb, cc = m.b / len(pa), m.c / len(pa)
    else:
        bb, cc = discordant(gold, pa, pb)
        m = mcnemar(bb, cc)
    boot = paired_bootstrap(gold, pa, pb, n_classes, pos, n_boot=n_boot, level=level)
    return PairedRow(a, b, label, len(pa), bb, cc, m.statistic, m.p, m.method,
                     {k: dataclasses.asdict(v) for k, v in boot.items()})


def example_level(groups: dict[str, list[Job]], positive_index: int = 1, *, level: float = 0.95,
                  n_boot: int = N_BOOT_PAIRED, split: str = "test") -> ExampleLevel:
    """Ensembles and agreement per arm, then every pair of arms: each shared seed pair and pooled.
    ``split``: the predictions compared (``test_ood``: the out-of-domain split, ``report.ood``)."""
    out = ExampleLevel()
    loaded = _load(groups, out.notes, split)
    if not loaded:
        out.notes.append("no predictions files: no example-level statistics")
        return out
    first = next(iter(next(iter(loaded.values())).values()))
    out.n_examples, out.label_names = len(first), first.label_names
    n_classes, gold = len(first.label_names), first.gold
    pos = positive_index if n_classes == 2 else 0
    out.arms = {g: _arm(p, n_classes, pos) for g, p in loaded.items()}
    labels = list(loaded)
    pooled: list[PairedRow] = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            shared = [k for k in loaded[a] if k in loaded[b]]
            if not shared:
                out.notes.append(f"{a} and {b} share no (init_seed, order_seed) pair: not paired")
                continue
            pa = np.stack([loaded[a][k].pred for k in shared])
            pb = np.stack([loaded[b][k].pred for k in shared])
            pooled.append(_row(a, b, f"pooled ({len(shared)} pairs)", gold, pa, pb, n_classes, pos, n_boot, level,
                               pooled=True))
            out.pairs.append(pooled[-1])
            for k, ra, rb in zip(shared, pa, pb):
                out.pairs.append(_row(a, b, f"{k[0]}/{k[1]}", gold, ra[None], rb[None], n_classes, pos,
                                      n_boot, level))
    for row, adj in zip(pooled, stats.holm([r.p for r in pooled])):
        row.p_holm = adj
    return out


def positive_index_of(jobs: Sequence[Job]) -> int:
    """The binary positive class of the runs (``data.positive_label``), index 1 by default."""
    for j in jobs:
        cfg = (j.result or {}).get("config") or {}
        pos = (cfg.get("data") or {}).get("positive_label") if isinstance(cfg, dict) else None
        names = (j.result or {}).get("label_names")
        if pos is not None and isinstance(names, list) and pos in names:
            return names.index(pos)
    return 1
