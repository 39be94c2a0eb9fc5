"""Datasets x arms: when a sweep varies the dataset, which groups are one arm on one dataset.

Two arms measured on different datasets are not a comparison, so when ``data`` (or another key
that picks the examples: ``DATA_KEYS``) is swept, a report group is split into its *dataset*
(the values of those keys) and its *arm* (the values of every other swept key), and:

* every Welch test runs between arms of one dataset, against the reference arm on that dataset,
  with Holm within each dataset (:func:`tunelab.report.claims.compare_within`); the example-level
  paired tests, too;
* (:mod:`tunelab.report.claims`) each claim "arm A is better than arm B" gets its replicability count over the N datasets:
  one-sided Welch p-values per dataset, partial-conjunction p-values and k̂ ("A > B on k̂ of N
  datasets") with Bonferroni and Fisher (:mod:`tunelab.report.replicability`, Dror et al. 2017);
* the arms are ranked over the datasets (Friedman, Iman–Davenport, Nemenyi critical difference
  and its diagram; :mod:`tunelab.report.friedman`, Demšar 2006), where every arm ran on every
  dataset and there are at least three arms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from tunelab.report.friedman import Ranking
from tunelab.report.jobs import Job, job_value, natural_key

# Swept keys that choose which examples a run is trained and tested on.
DATA_KEYS = ("data", "data.name", "data.path", "data.test_path", "data.val_path", "data.domain",
             "data.hf_name", "data.hf_config", "data.split_seed",
             # held-out topics leave the in-domain splits too (tunelab.data.ood)
             "data.ood_domains", "data.ood_test_path",
             # which rows and classes the test split keeps (tunelab.data.splits): another test set
             "data.test_size", "data.max_eval_samples", "data.balance_classes", "data.drop_labels",
             "data.label_map", "data.label_column", "data.labels", "trainer.limit_test_batches",
             # which class test/f1 scores (binary): another metric, not another arm
             "data.positive_label")


def data_keys(swept: Sequence[str]) -> list[str]:
    return [k for k in swept if k in DATA_KEYS]


@dataclass
class Claim:
    """"``a`` is better than ``b`` on ``metric``" over the datasets where both ran."""

    metric: str
    a: str
    b: str
    datasets: list[str]
    better_in: int  # datasets where a's mean is better than b's
    p: dict[str, float]  # dataset -> one-sided Welch p of the claim (NaN: too few seeds)
    pc_bonferroni: list[float]  # partial-conjunction p for u = 1..N (non-decreasing)
    pc_fisher: list[float]
    k_bonferroni: int
    k_fisher: int
    identified: list[str]  # the k_bonferroni datasets with the smallest p (Holm's rejections)


@dataclass
class DatasetsSection:
    """report.json ``datasets``."""

    keys: list[str]
    datasets: list[str]
    arms: list[str]
    cells: dict[str, dict[str, str]]  # dataset -> arm -> report group
    alpha: float
    claims: list[Claim] = field(default_factory=list)
    rankings: dict[str, Ranking] = field(default_factory=dict)  # metric -> Friedman/Nemenyi
    examples: dict = field(default_factory=dict)  # dataset -> ExampleLevel of its arms
    notes: list[str] = field(default_factory=list)

    def groups_of(self, dataset: str, groups: dict) -> dict:
        return {g: groups[g] for g in self.cells[dataset].values() if g in groups}

    def arm_of(self, group: str) -> tuple[str, str]:
        for d, arms in self.cells.items():
            for a, g in arms.items():
                if g == group:
                    return d, a
        raise KeyError(group)


def _label(job: Job, keys: Sequence[str]) -> str:
    return ",".join(f"{k}={job_value(job, k) or '<unset>'}" for k in keys)


def split_groups(groups: dict[str, list[Job]], swept: Sequence[str], alpha: float = 0.05) -> Optional[DatasetsSection]:
    """Datasets x arms of a sweep whose swept keys include a data key; None otherwise."""
    dkeys = data_keys(swept)
    if not dkeys:
        return None
    akeys = [k for k in swept if k not in dkeys]
    cells: dict[str, dict[str, str]] = {}
    for g, jobs in groups.items():
        known = [j for j in jobs if j.overrides is not None]
        if not known:
            continue
        d = _label(known[0], dkeys)
        a = _label(known[0], akeys) if akeys else "(one arm)"
        cells.setdefault(d, {})[a] = g
    datasets = sorted(cells, key=natural_key)
    arms = sorted({a for c in cells.values() for a in c}, key=natural_key)
    return DatasetsSection(keys=dkeys, datasets=datasets, arms=arms,
                           cells={d: cells[d] for d in datasets}, alpha=alpha)
