"""The typed report: what ``build_report`` returns and what report.md/csv/json are made from.

Each class is one part of ``report.json`` and its fields are that part's keys, in the file's
order, so ``Report.to_dict()`` (``dataclasses.asdict``) *is* report.json's structure: change a
field here and the file changes with it. Values stay raw (NaN where a statistic is undefined);
``tunelab.io.jsonable`` turns them into strict JSON when the file is written.

Renderers and plots read attributes (``report.metrics[m].summary[g].all.mean``), never string
keys, so a misspelt name fails loudly instead of printing ``None``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

if TYPE_CHECKING:  # annotations only, and none of these imports this module
    from tunelab.report.adaptive import AdaptiveStudy
    from tunelab.report.tune import TuneStudy
    from tunelab.report.calibration import CalibrationSection
    from tunelab.report.datasets import DatasetsSection
    from tunelab.report.examples import ExampleLevel
    from tunelab.report.expected_max import Curve
    from tunelab.report.header import Header
    from tunelab.report.jobs import Job
    from tunelab.report.ood import OodSection
    from tunelab.report.variance import Decomposition

# "running": a job whose process still runs on this host (a report read mid-sweep): neither a
# result nor a failure.
STATES = ("ok", "failed", "interrupted", "missing", "corrupt", "running")
# The states of a job that gave no result: counted as failures in every table and plot.
NO_RESULT = ("failed", "interrupted", "missing", "corrupt")

# metric key -> field of the majority-class baseline that scores the same way
BASELINE_OF = {"test/acc": "acc", "test/f1": "f1", "test/f1_macro": "f1_macro"}


def _count_states(jobs: Sequence[Job]) -> dict[str, int]:
    return {s: sum(j.state == s for j in jobs) for s in STATES}


@dataclass
class Baseline:
    """Scores of always predicting the majority training class; None where they cannot be known."""

    acc: float | None = None
    f1: float | None = None
    f1_macro: float | None = None
    note: str = ""

    def for_metric(self, metric: str) -> float | None:
        """The baseline scored like ``metric``; None for metrics without one (loss, BWT, ...)."""
        key = BASELINE_OF.get(metric)
        return getattr(self, key) if key else None


@dataclass
class Run:
    """One job dir as the report records it (``report.json`` ``runs``)."""

    name: str
    path: str
    state: str
    group: str
    seed: Any
    problem: str
    degenerate: list[str]
    metrics: dict[str, float]
    majority_rate: Any
    pred_class_counts: Any
    overrides: list[str] | None

    @classmethod
    def from_job(cls, job: Job) -> Run:
        r = job.result or {}
        return cls(job.name, str(job.path), job.state, job.group, job.seed, job.problem, job.degenerate,
                   job.metrics, r.get("majority_rate"), r.get("pred_class_counts"), job.overrides)


@dataclass
class Group:
    """The job dirs of one group and how many ended in each state."""

    jobs: list[str]
    seeds: list
    ok: int
    failed: int
    interrupted: int
    missing: int
    corrupt: int
    running: int = 0

    @classmethod
    def from_jobs(cls, jobs: Sequence[Job]) -> Group:
        return cls([j.name for j in jobs], [j.seed_label for j in jobs], **_count_states(jobs))

    @property
    def n_not_ok(self) -> int:
        """Jobs that gave no result: failed, died without results.json, or left an unreadable one."""
        return sum(getattr(self, s) for s in NO_RESULT)


@dataclass
class Counts:
    """Job dirs found, per state, and how many ok runs are degenerate."""

    jobs: int
    ok: int
    failed: int
    interrupted: int
    missing: int
    corrupt: int
    degenerate: int
    running: int = 0

    @classmethod
    def from_jobs(cls, jobs: Sequence[Job]) -> Counts:
        return cls(len(jobs), **_count_states(jobs), degenerate=sum(bool(j.degenerate) for j in jobs))


@dataclass
class Methods:
    """The name of every procedure used (report.json ``tests``), so the text says exactly what was computed."""

    summary: str
    comparison: str
    multiplicity: str
    diff_ci: str
    aso: str | None
    paired: str | None = None  # the example-level tests (tunelab.report.paired)


@dataclass
class Summary:
    """``tunelab.stats.summarize`` of one group's values; ``note`` says what is NaN and why."""

    n: int
    mean: float
    sd: float
    min: float
    max: float
    ci_low: float
    ci_high: float
    note: str


@dataclass
class GroupSummary:
    """One group x one metric: counts, and summaries with and without degenerate runs."""

    n_ok: int
    n_failed: int
    n_degenerate: int
    all: Summary
    non_degenerate: Summary


@dataclass
class Comparison:
    """Welch test of ``a`` against ``b`` and the CI of the difference of means ``a - b``."""

    a: str
    b: str
    n_a: int
    n_b: int
    diff: float
    diff_ci_low: float
    diff_ci_high: float
    t: float
    df: float
    p: float
    note: str
    p_holm: float | None = None  # set once the whole family is known
    # Effect size next to the test (tunelab.effect): Hedges' g of a - b with its CI, and the
    # seeds per arm a two-sided t-test (alpha .05) needs for 80% power at that effect.
    g: float = float("nan")
    g_ci_low: float = float("nan")
    g_ci_high: float = float("nan")
    seeds_needed: float = float("nan")


@dataclass
class Comparisons:
    """The two test families of a metric; Holm adjusts within each, not across."""

    vs_reference: list[Comparison] = field(default_factory=list)
    all_pairs: list[Comparison] = field(default_factory=list)


@dataclass
class AsoResult:
    """ASO of one pair: ``eps_min`` of ``better`` (the better mean: the lower one where lower is
    better) over ``worse``."""

    a: str
    b: str
    better: str
    worse: str
    eps_min: float
    note: str = ""


@dataclass
class MetricSection:
    """Everything the report says about one metric."""

    name: str
    summary: dict[str, GroupSummary]
    comparisons: Comparisons
    aso: list[AsoResult] | None
    # group -> {"test": curve, "val": curve} (tunelab.report.expected_max)
    expected_max: dict[str, dict[str, Curve]] = field(default_factory=dict)
    # group -> init/order decomposition of a crossed seed design (tunelab.report.variance)
    variance: dict[str, Decomposition] = field(default_factory=dict)

    @property
    def n_degenerate(self) -> int:
        return sum(s.n_degenerate for s in self.summary.values())


@dataclass
class Report:
    """A sweep's study report; ``to_dict()`` is the content of report.json."""

    SCHEMA: ClassVar[str] = "tunelab.report/2"

    sweep_dir: str
    generated_at: str
    swept_keys: list[str]
    reference: str
    level: float
    tests: Methods
    counts: Counts
    runs: list[Run]
    groups: dict[str, Group]
    baseline: dict[str, Baseline]
    metrics: dict[str, MetricSection] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    header: Header | None = None  # what ran (tunelab.report.header)
    examples: ExampleLevel | None = None  # paired tests, ensembles, agreement (tunelab.report.examples)
    cost: dict[str, Any] = field(default_factory=dict)  # group -> tunelab.report.cost.ArmCost
    calibration: CalibrationSection | None = None  # ECE, Brier, NLL per arm (tunelab.report.calibration)
    datasets: DatasetsSection | None = None  # a data sweep: arms x datasets, claims, ranks (tunelab.report.claims)
    ood: OodSection | None = None  # in- vs out-of-domain per arm, paired OOD tests (tunelab.report.ood)
    adaptive: AdaptiveStudy | None = None  # hydra/sweeper=adaptive's rounds and decisions (tunelab.report.adaptive)
    tune: TuneStudy | None = None  # hydra/sweeper=tune: default vs tuned, chosen values, search (tunelab.report.tune)
    files: dict[str, str] = field(default_factory=dict)  # filled when written: kind -> path

    @property
    def percent(self) -> int:
        """The confidence level as a whole percentage, for headers ("95% CI")."""
        return int(round(self.level * 100))

    def runs_in(self, state: str) -> list[Run]:
        return [r for r in self.runs if r.state == state]

    def baseline_value(self, group: str, metric: str) -> float | None:
        return self.baseline[group].for_metric(metric)

    def to_dict(self) -> dict:
        """Plain nested dicts/lists in report.json's key order (values not yet JSON-sanitised)."""
        return {"schema": self.SCHEMA, **dataclasses.asdict(self)}
