"""The report's out-of-domain section: in-domain vs out-of-domain per arm, and paired OOD tests.

Runs that scored an out-of-domain split (:mod:`tunelab.data.ood`; results.json ``test_ood/*``,
predictions.npz ``test_ood.*``) answer "what does each arm cost away from its training domain?"
(Kumar et al. 2022). Per arm, over its ok runs:

* mean ± sd of the in-domain (``test/``) and out-of-domain (``test_ood/``) accuracy and macro F1,
  and of the **drop** (in-domain minus out-of-domain), taken per run and then summarised, so its
  sd is the spread of each run's own drop, not a difference of two spreads;
* the majority-class baseline on both splits (the training majority class scored on the test and
  the OOD label counts the runs record: ``extra.test_label_counts``, ``extra.test_ood_label_counts``).

Between arms, the paired tests of the example-level section (:mod:`tunelab.report.examples`:
the sign-flip test with the example as the unit, the paired bootstrap of the score differences,
seeds paired by init/order seed, Holm over the pooled rows) on the *OOD* predictions: every arm is scored on the
same OOD examples, which the report checks (index and gold labels) before pairing. For a sweep
over datasets they run within each dataset only, as every other test does. Welch tests of the
OOD scores across seeds are the ``test_ood/*`` metric sections of the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from tunelab.report.examples import N_BOOT_PAIRED, PairedRow, example_level, positive_index_of
from tunelab.report.jobs import Job

SPLIT = "test_ood"
# report key -> (in-domain metric, out-of-domain metric)
SCORES = {"acc": ("test/acc", "test_ood/acc"), "f1_macro": ("test/f1_macro", "test_ood/f1_macro")}


@dataclass
class OodArm:
    """One arm: mean and sd over its runs of ``<score>_id``, ``<score>_ood`` and ``<score>_drop``."""

    n_runs: int
    mean: dict[str, float]
    sd: dict[str, float]


@dataclass
class OodSection:
    """report.json ``ood``."""

    n_examples: int = 0  # OOD examples shared by the paired tests (per dataset: see notes)
    arms: dict[str, OodArm] = field(default_factory=dict)
    # group -> majority-class baseline: acc_id, acc_ood, f1_macro_id, f1_macro_ood (None: unknown)
    baseline: dict[str, dict[str, Optional[float]]] = field(default_factory=dict)
    pairs: list[PairedRow] = field(default_factory=list)  # McNemar + paired bootstrap on the OOD predictions
    notes: list[str] = field(default_factory=list)


def _mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def arm_of(jobs: Sequence[Job]) -> Optional[OodArm]:
    """One arm's ID/OOD numbers; None when none of its ok runs scored an OOD split."""
    runs = [j.metrics for j in jobs if j.state == "ok" and SCORES["acc"][1] in j.metrics]
    if not runs:
        return None
    mean, sd = {}, {}
    for key, (id_m, ood_m) in SCORES.items():
        both = [m for m in runs if np.isfinite(m.get(id_m, np.nan)) and np.isfinite(m.get(ood_m, np.nan))]
        for suffix, values in (("id", [m[id_m] for m in both]), ("ood", [m[ood_m] for m in both]),
                               ("drop", [m[id_m] - m[ood_m] for m in both])):
            mean[f"{key}_{suffix}"], sd[f"{key}_{suffix}"] = _mean_sd(values)
    return OodArm(n_runs=len(runs), mean=mean, sd=sd)


def _renamed(row: PairedRow) -> PairedRow:
    """Score keys of the paired bootstrap as the OOD metrics they are (``test_ood/acc``, ...)."""
    return dataclasses.replace(row, diffs={k.replace("test/", f"{SPLIT}/", 1): v for k, v in row.diffs.items()})


def ood_section(groups: dict[str, list[Job]], positive_index: int = 1, *, level: float = 0.95,
                n_boot: int = N_BOOT_PAIRED, by_data=None,
                baseline: Optional[Callable[[Sequence[Job]], dict]] = None) -> Optional[OodSection]:
    """The section over the ok groups with OOD scores; None when no run scored an OOD split.

    ``by_data`` (:class:`tunelab.report.datasets.DatasetsSection`, a sweep over datasets): the
    paired tests run within each dataset. ``baseline``: a group's majority-class baseline on
    both splits (:func:`tunelab.report.baseline.id_ood_baseline`)."""
    out = OodSection()
    for g, jobs in groups.items():
        arm = arm_of(jobs)
        if arm is not None:
            out.arms[g] = arm
            if baseline is not None:
                out.baseline[g] = baseline(jobs)
    if not out.arms:
        return None
    scored = {g: groups[g] for g in out.arms}
    missing = [g for g in groups if g not in out.arms]
    if missing:
        out.notes.append("no out-of-domain scores (no data.ood_domains / data.ood_test_path): " + ", ".join(missing))
    blocks = ({d: by_data.groups_of(d, scored) for d in by_data.datasets} if by_data is not None else {"": scored})
    for dataset, block in blocks.items():
        if not block:
            continue
        # per dataset, its own positive class (its labels may be in another order)
        pos = positive_index_of([j for js in block.values() for j in js]) if dataset else positive_index
        ex = example_level(block, pos, level=level, n_boot=n_boot, split=SPLIT)
        out.pairs += [_renamed(r) for r in ex.pairs]
        out.notes += [f"{dataset}: {n}" if dataset else n for n in ex.notes
                      if n != "no predictions files: no example-level statistics"]
        if ex.n_examples:
            out.n_examples = out.n_examples or ex.n_examples
            if dataset:
                out.notes.append(f"{dataset}: {ex.n_examples} out-of-domain examples")
    return out
