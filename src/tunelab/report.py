"""Study report for a sweep: what ran, what failed, and what the seeds say.

``build_report(sweep_dir)`` reads every job's ``results.json`` (docs/RESULTS_SCHEMA.md) below a
Hydra multirun dir, groups the runs by the overrides that vary between jobs (all but ``seed``),
and writes ``report.md``, ``report.csv``, ``report.json`` and one box plot per metric into the
sweep dir. CLI: ``python -m tunelab.report <sweep_dir> [--reference GROUP] [--metric M ...] [--aso]``
(also ``tunelab report``).

Design rules, because a report is evidence:
  * nothing is dropped silently: failed runs, job dirs without or with an unreadable
    ``results.json``, runs lacking a metric — each is named in the report;
  * a majority-class baseline is always shown next to the scores, and runs that predict one
    class or do not beat the majority rate are flagged, with statistics with and without them;
  * the test used is named in the text (Welch t-test, Holm within each family, optional ASO).

Only numpy/scipy/matplotlib are imported here (deepsig only for ``aso=True``), so a report can
be made on any machine that has the result files.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from tunelab import stats
from tunelab.errors import TunelabError

# Shown when present: classification metrics, then curriculum (forgetting) metrics and the
# cost of a continual-learning strategy.
DEFAULT_METRICS = ("test/acc", "test/f1", "test/f1_macro",
                   "test/ACC", "test/BWT", "test/FWT", "params/trainable", "params/bytes_per_task")
SEED_KEYS = ("seed",)
SINGLE_GROUP = "all runs"
LEVEL = 0.95
N_BOOT = 10000

# metric key -> name used in the text; "F1" alone is ambiguous, so it is never written alone.
METRIC_NAMES = {
    "test/acc": "accuracy",
    "test/f1": "F1 (positive class)",
    "test/f1_macro": "macro F1",
}
# metric key -> key of the majority-class baseline that scores the same way
BASELINE_OF = {"test/acc": "acc", "test/f1": "f1", "test/f1_macro": "f1_macro"}


class ReportError(TunelabError):
    """The report cannot be made (no such dir, no runs, unknown reference group)."""


@dataclass
class Job:
    """One job dir and what could be read from it; ``state`` is ok, failed, missing or corrupt."""

    name: str
    path: Path
    state: str
    overrides: list[str] | None
    result: dict | None = None
    problem: str = ""
    group: str = ""
    degenerate: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, float]:
        """Numeric metrics of an ok run (bools and strings are not scores)."""
        raw = (self.result or {}).get("metrics") if self.state == "ok" else None
        if not isinstance(raw, dict):
            return {}
        return {k: float(v) for k, v in raw.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    @property
    def seed(self):
        """The run seed, from results.json or else from the overrides."""
        if self.result and self.result.get("seed") is not None:
            return self.result["seed"]
        return parse_overrides(self.overrides or []).get("seed")


# =============================================================================== discovery


def natural_key(text: str) -> list:
    """Sort key that puts ``last2`` before ``last10`` and job ``9`` before ``10``."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", str(text))]


def find_job_dirs(sweep_dir: Path) -> list[Path]:
    """Every dir holding ``results.json`` or ``.hydra/overrides.yaml``.

    Hidden dirs (``.hydra``, ``.submitit``) and the inside of a job dir (checkpoints, logs) are
    not searched, so a job is found once however its launcher nests it.
    """
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        here = Path(root)
        if "results.json" in files or (here / ".hydra" / "overrides.yaml").is_file():
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.relative_to(sweep_dir).as_posix()))


def _read_hydra_overrides(job_dir: Path) -> list[str] | None:
    """The job's ``.hydra/overrides.yaml`` list, or None when absent/unreadable."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception:
        return None
    return [str(x) for x in data] if isinstance(data, list) else None


def load_job(job_dir: Path, sweep_dir: Path) -> Job:
    """Read one job dir; never raises — what cannot be read becomes a named problem."""
    name = job_dir.relative_to(sweep_dir).as_posix()
    hydra_overrides = _read_hydra_overrides(job_dir)
    path = job_dir / "results.json"
    if not path.is_file():
        return Job(name, job_dir, "missing", hydra_overrides,
                   problem="no results.json (the job died before writing it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Job(name, job_dir, "corrupt", hydra_overrides,
                   problem=f"results.json unreadable: {type(exc).__name__}: {exc}")
    if not isinstance(data, dict) or data.get("status") not in ("ok", "failed"):
        return Job(name, job_dir, "corrupt", hydra_overrides,
                   problem="results.json has no status 'ok' or 'failed'")
    overrides = data.get("overrides")
    overrides = [str(x) for x in overrides] if isinstance(overrides, list) else hydra_overrides
    job = Job(name, job_dir, data["status"], overrides, result=data)
    if job.state == "failed":
        job.problem = _error_text(data.get("error"))
    return job


def _error_text(error: Any) -> str:
    """``Type: message`` of a failed run's error record, whatever shape it came in."""
    if isinstance(error, dict):
        kind, msg = error.get("type") or "error", error.get("message") or ""
        return f"{kind}: {msg}".strip().rstrip(":")
    return str(error) if error else "failed (no error recorded)"


# =============================================================================== grouping


def parse_overrides(overrides: Iterable[str]) -> dict[str, str]:
    """``["+a.b=1", "seed=3"]`` -> ``{"a.b": "1", "seed": "3"}``; a deletion ``~k`` becomes ``k=~``."""
    out = {}
    for item in overrides:
        key, sep, value = str(item).partition("=")
        if key.startswith("~"):
            out[key.lstrip("~")] = "~"
        elif sep:
            out[key.lstrip("+")] = value
    return out


def swept_keys(jobs: Sequence[Job], seed_keys: Sequence[str] = SEED_KEYS) -> list[str]:
    """Override keys whose values differ between jobs (a key absent from some jobs differs too).

    Jobs whose overrides are unknown (corrupt results.json without .hydra/) do not vote: one
    unreadable job must not split every other job into its own group.
    """
    parsed = [parse_overrides(j.overrides) for j in jobs if j.overrides is not None]
    keys = sorted({k for p in parsed for k in p} - set(seed_keys))
    return [k for k in keys if len({p.get(k) for p in parsed}) > 1]


def group_label(job: Job, keys: Sequence[str]) -> str:
    """``freeze=last2`` or ``task=sparse,sparse.features=tfidf``; one group when nothing is swept."""
    if not keys:
        return SINGLE_GROUP
    if job.overrides is None:
        return "(unknown overrides)"
    parsed = parse_overrides(job.overrides)
    return ",".join(f"{k}={parsed.get(k, '<unset>')}" for k in keys)


# =============================================================================== baseline & degenerate


def _num(x) -> float | None:
    """A finite float, or None."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _lookup(result: dict, key: str):
    """An optional field, top level or under ``extra`` (where task-specific additions live)."""
    if result.get(key) is not None:
        return result[key]
    extra = result.get("extra")
    return extra.get(key) if isinstance(extra, dict) else None


def _label_name(label, names: list | None) -> str:
    """Labels as strings (JSON keys are strings); an int index is mapped through ``label_names``."""
    if isinstance(label, int) and not isinstance(label, bool) and names and 0 <= label < len(names):
        return str(names[label])
    return str(label)


def _majority_label(result: dict, names: list | None) -> str | None:
    """Most frequent training class: ``majority_label``, else argmax of ``train_label_counts``."""
    label = _lookup(result, "majority_label")
    if label is not None:
        return _label_name(label, names)
    counts = _lookup(result, "train_label_counts")
    if isinstance(counts, dict) and counts:
        return str(max(counts, key=lambda k: counts[k]))
    return None


def _test_label_counts(result: dict, names: list | None, majority: str, rate: float | None) -> dict | None:
    """True test labels per class: ``test_label_counts``, or — binary only — rebuilt exactly
    from ``majority_rate`` and ``n_examples.test`` (two classes, one of them the majority)."""
    counts = _lookup(result, "test_label_counts")
    if isinstance(counts, dict) and counts:
        return {str(k): int(v) for k, v in counts.items()}
    n_test = _num((result.get("n_examples") or {}).get("test"))
    if names and len(names) == 2 and rate is not None and n_test:
        other = next(str(n) for n in names if str(n) != majority)
        n_major = int(round(rate * n_test))
        return {majority: n_major, other: int(n_test) - n_major}
    return None


def run_baseline(result: dict) -> dict:
    """Scores of always predicting the majority training class, on this run's test split.

    accuracy = ``majority_rate``. The F1 scores come from the tested metric functions applied to
    the label counts: positive-class F1 is 0 when the majority class is the negative one. Where
    the needed counts are missing the value is None and ``note`` says what to add.
    """
    rate = _num(result.get("majority_rate"))
    out = {"acc": rate, "f1": None, "f1_macro": None, "note": ""}
    if result.get("task") == "token_cls":
        out["note"] = "token_cls: test/f1 is entity F1; no majority baseline for it"
        return out
    names = result.get("label_names") if isinstance(result.get("label_names"), list) else None
    majority = _majority_label(result, names)
    counts = _test_label_counts(result, names, majority, rate) if majority is not None else None
    if counts is None:
        out["note"] = ("F1 baselines need extra.majority_label (or extra.train_label_counts) and "
                       "extra.test_label_counts (or label_names of 2 classes + n_examples.test)")
        return out
    y_true = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    if y_true.size == 0:
        out["note"] = "empty test split"
        return out
    y_pred = np.full(y_true.shape, majority, dtype=object)
    out["f1_macro"] = stats.f1_macro(y_true, y_pred)
    positive = _positive_label(names, counts)
    if positive is not None:
        out["f1"] = stats.f1_score_binary(y_true, y_pred, pos_label=positive)
    else:
        out["note"] = "not binary: no positive-class F1"
    return out


def _positive_label(names: list | None, counts: dict) -> str | None:
    """The positive class of a binary task: index 1 (``label_names[1]``, sklearn's pos_label=1)."""
    if names and len(names) == 2:
        return str(names[1])
    if set(counts) <= {"0", "1"}:
        return "1"
    return None


def degenerate_reasons(job: Job) -> list[str]:
    """Why an ok run is not a real classifier: one predicted class, or accuracy <= majority rate."""
    result, reasons = job.result or {}, []
    counts = result.get("pred_class_counts")
    if isinstance(counts, dict) and counts:
        used = [k for k, v in counts.items() if (_num(v) or 0) > 0]
        if len(used) == 1:
            reasons.append(f"predicts only class '{used[0]}'")
    acc, rate = job.metrics.get("test/acc"), _num(result.get("majority_rate"))
    if acc is not None and rate is not None and acc <= rate + 1e-12:
        reasons.append(f"test/acc {acc:.4f} <= majority rate {rate:.4f}")
    return reasons


def group_baseline(jobs: Sequence[Job]) -> dict:
    """Mean of the per-run majority baselines of a group's ok runs (they differ only if splits do)."""
    per_run = [run_baseline(j.result) for j in jobs if j.state == "ok"]
    out: dict[str, Any] = {}
    notes = sorted({b["note"] for b in per_run if b["note"]})
    for key in ("acc", "f1", "f1_macro"):
        vals = [b[key] for b in per_run if b[key] is not None]
        out[key] = float(np.mean(vals)) if vals else None
        if vals and max(vals) - min(vals) > 1e-9:
            notes.append(f"{key} baseline varies across runs ({min(vals):.4f}..{max(vals):.4f}); mean shown")
    if not per_run:
        notes.append("no ok runs")
    elif out["acc"] is None:
        notes.append("no majority_rate in results")
    out["note"] = "; ".join(notes)
    return out


# =============================================================================== per metric


def select_metrics(jobs: Sequence[Job], metrics: Sequence[str] | str | None) -> tuple[list[str], list[str]]:
    """(metrics to report, notes). None -> the defaults present; ``all`` -> every numeric metric."""
    found = sorted({m for j in jobs for m in j.metrics}, key=natural_key)
    if isinstance(metrics, str):
        metrics = [metrics]
    if not metrics:
        return [m for m in DEFAULT_METRICS if m in found], []
    if "all" in metrics:
        return found, []
    chosen = list(dict.fromkeys(metrics))
    notes = [f"metric {m} was asked for but no ok run has it" for m in chosen if m not in found]
    return [m for m in chosen if m in found], notes


def metric_name(metric: str, jobs: Sequence[Job]) -> str:
    """Name for the text; test/f1 is entity F1 for token classification (schema)."""
    if metric == "test/f1":
        tasks = {(j.result or {}).get("task") for j in jobs if j.state == "ok"}
        if tasks == {"token_cls"}:
            return "entity F1"
        if "token_cls" in tasks:
            return "F1 (positive class; entity F1 for token_cls)"
    return METRIC_NAMES.get(metric, metric)


def group_values(jobs: Sequence[Job], metric: str, skip_degenerate: bool = False) -> list[float]:
    """Finite values of a metric over a group's ok runs."""
    vals = []
    for j in jobs:
        v = j.metrics.get(metric)
        if j.state == "ok" and v is not None and math.isfinite(v) and not (skip_degenerate and j.degenerate):
            vals.append(v)
    return vals


def summarize_metric(groups: dict[str, list[Job]], metric: str, level: float, n_boot: int) -> dict:
    """Per group: n ok/failed/degenerate and summaries of all ok runs and of non-degenerate ones."""
    out = {}
    for label, jobs in groups.items():
        out[label] = {
            "n_ok": len(group_values(jobs, metric)),
            "n_failed": sum(j.state != "ok" for j in jobs),
            "n_degenerate": sum(bool(j.degenerate) for j in jobs if j.state == "ok"),
            "all": stats.summarize(group_values(jobs, metric), level=level, n_boot=n_boot),
            "non_degenerate": stats.summarize(group_values(jobs, metric, True), level=level, n_boot=n_boot),
        }
    return out


def _test_row(a_label: str, b_label: str, a: list[float], b: list[float], level: float) -> dict:
    """Welch test and difference-of-means CI for a - b."""
    w = stats.welch_ttest(a, b)
    d = stats.mean_diff_ci(a, b, level)
    return {"a": a_label, "b": b_label, "n_a": len(a), "n_b": len(b), "diff": d.diff,
            "diff_ci_low": d.low, "diff_ci_high": d.high, "t": w.t, "df": w.df, "p": w.p,
            "note": w.note or d.note}


def _with_holm(rows: list[dict]) -> list[dict]:
    """Holm-adjust the p-values of one family in place."""
    for row, adj in zip(rows, stats.holm([r["p"] for r in rows])):
        row["p_holm"] = adj
    return rows


def compare_metric(groups: dict[str, list[Job]], metric: str, reference: str, level: float) -> dict:
    """Two families of Welch tests: each group vs the reference, and all pairs; Holm within each."""
    vals = {g: group_values(jobs, metric) for g, jobs in groups.items()}
    labels = list(groups)
    vs_ref = [_test_row(g, reference, vals[g], vals[reference], level) for g in labels if g != reference]
    pairs = [_test_row(a, b, vals[a], vals[b], level)
             for i, a in enumerate(labels) for b in labels[i + 1:]]
    return {"vs_reference": _with_holm(vs_ref), "all_pairs": _with_holm(pairs)}


def _load_aso() -> tuple[Callable | None, str]:
    """deepsig's ``aso`` or the reason it is unavailable (it pulls in torch; it may be absent)."""
    try:
        from deepsig import aso
    except Exception as exc:  # ImportError, or a broken torch underneath
        return None, f"ASO skipped: deepsig could not be imported ({type(exc).__name__}: {exc})"
    return aso, ""


def aso_metric(groups: dict[str, list[Job]], metric: str, aso: Callable, iterations: int, level: float) -> list[dict]:
    """ASO for every pair, testing the group with the higher mean as the better one.

    ``eps_min`` < 0.5 means that group is almost stochastically better; deepsig applies a
    Bonferroni correction for the number of pairs of this metric.
    """
    vals = {g: group_values(jobs, metric) for g, jobs in groups.items()}
    labels = list(groups)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
    rows = []
    for a, b in pairs:
        better, worse = (a, b) if np.mean(vals[a] or [np.nan]) >= np.mean(vals[b] or [np.nan]) else (b, a)
        row = {"a": a, "b": b, "better": better, "worse": worse, "eps_min": math.nan, "note": ""}
        if len(vals[a]) < 2 or len(vals[b]) < 2:
            row["note"] = f"n<2 (n={len(vals[a])} vs n={len(vals[b])})"
        else:
            try:
                row["eps_min"] = float(aso(vals[better], vals[worse], confidence_level=level,
                                           num_comparisons=len(pairs), num_bootstrap_iterations=iterations,
                                           seed=0, show_progress=False))
            except Exception as exc:
                row["note"] = f"ASO failed: {type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


# =============================================================================== build


def collect(sweep_dir: Path, seed_keys: Sequence[str] = SEED_KEYS) -> tuple[list[Job], dict[str, list[Job]], list[str]]:
    """Load all jobs and group them; returns (jobs, groups in natural order, swept keys)."""
    jobs = [load_job(d, sweep_dir) for d in find_job_dirs(sweep_dir)]
    keys = swept_keys(jobs, seed_keys)
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        job.group = group_label(job, keys)
        if job.state == "ok":
            job.degenerate = degenerate_reasons(job)
        groups.setdefault(job.group, []).append(job)
    ordered = {g: groups[g] for g in sorted(groups, key=natural_key)}
    return jobs, ordered, keys


def build_report(sweep_dir, reference: str | None = None, metrics: Sequence[str] | str | None = None,
                 aso: bool = False, *, level: float = LEVEL, n_boot: int = N_BOOT,
                 aso_iterations: int = 1000, write: bool = True) -> dict:
    """Build the report of a sweep dir and (by default) write it there; returns report.json's content.

    ``reference``: group label the others are tested against (default: first group in sorted
    order). ``metrics``: metric keys, or ``"all"``; default test/acc, test/f1, test/f1_macro
    where present. ``aso``: also run Almost Stochastic Order (deepsig) for every pair.
    Raises ReportError when the dir does not exist, holds no job dirs, or the reference is unknown.
    """
    sweep = Path(sweep_dir).expanduser()
    if not sweep.is_dir():
        raise ReportError(f"sweep dir '{sweep}' does not exist or is not a directory")
    jobs, groups, keys = collect(sweep)
    if not jobs:
        raise ReportError(f"no runs in '{sweep}': no dir below it has results.json or .hydra/overrides.yaml")
    ok_groups = {g: js for g, js in groups.items() if any(j.state == "ok" for j in js)}
    if reference is not None and reference not in groups:
        raise ReportError(f"reference group '{reference}' not found; groups are: {', '.join(groups)}")
    if reference is None:
        reference = next(iter(ok_groups or groups))

    chosen, notes = select_metrics(jobs, metrics)
    notes += _missing_metric_notes(jobs, chosen)
    if len(ok_groups) < 2:
        notes.append("fewer than two groups with ok runs: no comparisons")
    elif reference not in ok_groups:
        notes.append(f"reference group '{reference}' has no ok runs: no comparisons")
    aso_fn, aso_note = (_load_aso() if aso else (None, ""))
    if aso_note:
        notes.append(aso_note)

    report: dict[str, Any] = {
        "schema": "tunelab.report/1",
        "sweep_dir": str(sweep.resolve()),
        "generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "swept_keys": keys,
        "reference": reference,
        "level": level,
        "tests": {
            "summary": f"percentile bootstrap CI of the mean ({n_boot} resamples, seed 0)",
            "comparison": "Welch two-sample t-test (unequal variances, two-sided, Welch-Satterthwaite df)",
            "multiplicity": "Holm step-down adjustment within each family (per metric: vs reference; all pairs)",
            "diff_ci": "Welch t interval of the difference of means",
            "aso": (f"Almost Stochastic Order (deepsig.aso, {aso_iterations} bootstrap iterations, "
                    f"Bonferroni over the pairs of a metric, seed 0)") if aso else None,
        },
        "counts": _state_counts(jobs),
        "runs": [_run_record(j) for j in jobs],
        "groups": {g: _group_record(js) for g, js in groups.items()},
        "baseline": {g: group_baseline(js) for g, js in groups.items()},
        "metrics": {},
        "notes": notes,
        "files": {},
    }
    for metric in chosen:
        entry = {
            "name": metric_name(metric, jobs),
            "summary": summarize_metric(groups, metric, level, n_boot),
            "comparisons": compare_metric(ok_groups, metric, reference, level) if reference in ok_groups
            else {"vs_reference": [], "all_pairs": []},
            "aso": aso_metric(ok_groups, metric, aso_fn, aso_iterations, level) if aso_fn else None,
        }
        report["metrics"][metric] = entry
    if write:
        write_report(sweep, report, groups)
    return report


def _missing_metric_notes(jobs: Sequence[Job], metrics: Sequence[str]) -> list[str]:
    """Name every ok run that lacks a reported metric or has a non-finite value for it."""
    notes = []
    for metric in metrics:
        for j in jobs:
            if j.state != "ok":
                continue
            v = j.metrics.get(metric)
            if v is None:
                notes.append(f"run {j.name} ({j.group}) has no {metric}: left out of its statistics")
            elif not math.isfinite(v):
                notes.append(f"run {j.name} ({j.group}) has {metric}={v}: left out of its statistics")
    return notes


def _state_counts(jobs: Sequence[Job]) -> dict:
    return {"jobs": len(jobs), **{s: sum(j.state == s for j in jobs) for s in ("ok", "failed", "missing", "corrupt")},
            "degenerate": sum(bool(j.degenerate) for j in jobs)}


def _run_record(j: Job) -> dict:
    r = j.result or {}
    return {"name": j.name, "path": str(j.path), "state": j.state, "group": j.group, "seed": j.seed,
            "problem": j.problem, "degenerate": j.degenerate, "metrics": j.metrics,
            "majority_rate": r.get("majority_rate"), "pred_class_counts": r.get("pred_class_counts"),
            "overrides": j.overrides}


def _group_record(jobs: Sequence[Job]) -> dict:
    return {"jobs": [j.name for j in jobs], "seeds": [j.seed for j in jobs],
            **{s: sum(j.state == s for j in jobs) for s in ("ok", "failed", "missing", "corrupt")}}


# =============================================================================== writing


def atomic_write(path: Path, write: Callable[[Any], None], binary: bool = False) -> None:
    """Write via a temp file in the same dir + fsync + ``os.replace``: readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(sweep: Path, report: dict, groups: dict[str, list[Job]]) -> None:
    """Plots first (report.md links them), then csv, json and md."""
    for metric in report["metrics"]:
        name = f"boxplot_{slug(metric)}.png"
        plot_metric(sweep / name, metric, report, groups)
        report["files"][f"plot:{metric}"] = str(sweep / name)
    for kind in ("csv", "json", "md"):
        report["files"][kind] = str(sweep / f"report.{kind}")
    atomic_write(sweep / "report.csv", lambda f: f.write(render_csv(report)))
    atomic_write(sweep / "report.json", lambda f: json.dump(jsonable(report), f, indent=2, allow_nan=False))
    atomic_write(sweep / "report.md", lambda f: f.write(render_markdown(report)))


def slug(metric: str) -> str:
    """``test/acc`` -> ``test_acc`` for file names."""
    return re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_")


def jsonable(obj):
    """NaN/inf -> null and numpy scalars -> Python, so report.json is strict JSON."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _baseline_value(report: dict, group: str, metric: str) -> float | None:
    key = BASELINE_OF.get(metric)
    return report["baseline"][group].get(key) if key else None


def plot_metric(path: Path, metric: str, report: dict, groups: dict[str, list[Job]]) -> None:
    """Box plot per group with each seed as a jittered point (degenerate: red x) and the
    majority baseline as a dashed line. Uses the Agg canvas directly: no pyplot global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(groups)
    fig = Figure(figsize=(max(4.0, 1.3 * len(labels) + 2), 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    data = [(i, group_values(groups[g], metric)) for i, g in enumerate(labels)]
    boxes = [(i, v) for i, v in data if v]
    if boxes:
        ax.boxplot([v for _, v in boxes], positions=[i for i, _ in boxes], widths=0.5, showfliers=False)
    for i, g in enumerate(labels):
        for j in groups[g]:
            v = j.metrics.get(metric)
            if j.state != "ok" or v is None or not math.isfinite(v):
                continue
            x = i + rng.uniform(-0.12, 0.12)
            style = dict(marker="x", color="tab:red", s=40) if j.degenerate else dict(marker="o", color="tab:blue", s=18, alpha=0.8)
            ax.scatter([x], [v], zorder=3, **style)
    _draw_baseline(ax, [_baseline_value(report, g, metric) for g in labels])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=20 if max(map(len, labels)) > 12 else 0, ha="right" if max(map(len, labels)) > 12 else "center", fontsize=8)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set_ylabel(f"{metric} ({report['metrics'][metric]['name']})")
    ax.set_title(f"{metric} per group (points: seeds; red x: degenerate)", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)


def _draw_baseline(ax, values: list[float | None]) -> None:
    """One dashed line if every group shares the baseline, else a dashed segment per group."""
    known = [v for v in values if v is not None]
    if not known:
        return
    if max(known) - min(known) <= 1e-9:
        ax.axhline(known[0], linestyle="--", color="gray", label="majority baseline")
    else:
        label = "majority baseline"
        for i, v in enumerate(values):
            if v is not None:
                ax.hlines(v, i - 0.4, i + 0.4, linestyles="--", color="gray", label=label)
                label = None
    ax.legend(loc="best", fontsize=8)


# =============================================================================== text


def fmt(x, digits: int = 4) -> str:
    """A number for the tables; NaN/None -> n/a."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def fmt_p(p) -> str:
    """p-values: 4 decimals, scientific below 1e-4."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.2e}" if 0 < p < 1e-4 else f"{p:.4f}"


def fmt_ci(lo, hi) -> str:
    return "n/a" if fmt(lo) == "n/a" else f"[{fmt(lo)}, {fmt(hi)}]"


def md_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table ('|' inside cells escaped)."""
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict) -> str:
    """The human-readable report."""
    c = report["counts"]
    keys = ", ".join(f"`{k}`" for k in report["swept_keys"]) or "nothing (only the seed varies): one group"
    parts = [
        f"# Study report: `{Path(report['sweep_dir']).name}`",
        "",
        f"- Sweep dir: `{report['sweep_dir']}`",
        f"- Generated: {report['generated_at']} by `tunelab.report`",
        f"- Job dirs found: {c['jobs']} — ok {c['ok']}, failed {c['failed']}, "
        f"without results.json {c['missing']}, corrupt results.json {c['corrupt']}; degenerate ok runs {c['degenerate']}",
        f"- Grouped by: {keys} (every override key whose value differs between jobs, except `seed`)",
        f"- Reference group: `{report['reference']}`",
        "",
        _how_to_read(report),
        _groups_section(report),
        _problems_section(report),
        _degenerate_section(report),
        _baseline_section(report),
    ]
    for metric, entry in report["metrics"].items():
        parts.append(_metric_section(report, metric, entry))
    if not report["metrics"]:
        parts.append("## Metrics\n\nNo metric to report (no ok run has any of the metrics asked for).\n")
    parts.append("## Notes\n\n" + ("\n".join(f"- {n}" for n in report["notes"]) if report["notes"] else "None.") + "\n")
    return "\n".join(parts)


def _how_to_read(report: dict) -> str:
    t, pct = report["tests"], int(round(report["level"] * 100))
    lines = [
        "## How to read this report",
        "",
        "- **n ok**: runs with status ok that have the metric; **n failed**: jobs of the group that "
        "failed, died without results.json, or left an unreadable one (all named under *Problems*).",
        "- **mean, sd, min, max** are over seeds; sd is the sample standard deviation (ddof=1).",
        f"- **{pct}% CI**: {t['summary']}; n/a when n < 2. With few seeds it is optimistic "
        "(it never reaches beyond min..max); read it with the sd and the Welch intervals below.",
        "- **accuracy** = `test/acc`; **F1 (positive class)** = `test/f1` (F1 of label index 1 for binary "
        "tasks; entity F1 for token classification); **macro F1** = `test/f1_macro` (unweighted mean of per-class F1).",
        "- **majority-class baseline**: always predicting the most frequent training class, scored on the test split.",
        "- **degenerate run**: predicts a single class, or its accuracy is not above the majority rate; "
        "tables are shown with all ok runs and again without degenerate runs.",
        f"- **Comparisons**: {t['comparison']}. Δ is the difference of means (first group minus second) "
        f"with the {pct}% {t['diff_ci']}. **p (Holm)**: {t['multiplicity']}.",
    ]
    if t.get("aso"):
        lines.append(f"- **ASO**: {t['aso']}. ε_min < 0.5: the *better* group is almost stochastically "
                     "better than the other; ε_min near 0 is strong evidence, ≥ 0.5 none.")
    return "\n".join(lines) + "\n"


def _groups_section(report: dict) -> str:
    rows = [(f"`{g}`", len(r["jobs"]), r["ok"], r["failed"] + r["missing"] + r["corrupt"],
             ", ".join(str(s) for s in r["seeds"] if s is not None) or "n/a", ", ".join(r["jobs"]))
            for g, r in report["groups"].items()]
    return "## Groups\n\n" + md_table(["group", "jobs", "ok", "failed", "seeds", "job dirs"], rows) + "\n"


def _problems_section(report: dict) -> str:
    runs = report["runs"]
    out = ["## Problems (every job that did not give a result, by name)", ""]
    for state, title in (("failed", "Failed runs (status failed)"),
                         ("missing", "Job dirs without results.json"),
                         ("corrupt", "Job dirs with a corrupt results.json")):
        bad = [r for r in runs if r["state"] == state]
        out.append(f"### {title}: {len(bad)}\n")
        if bad:
            out.append(md_table(["job", "group", "seed", "error"],
                                [(f"`{r['name']}`", f"`{r['group']}`", r["seed"] if r["seed"] is not None else "n/a",
                                  r["problem"]) for r in bad]) + "\n")
    return "\n".join(out)


def _degenerate_section(report: dict) -> str:
    bad = [r for r in report["runs"] if r["degenerate"]]
    body = md_table(["job", "group", "seed", "why"],
                    [(f"`{r['name']}`", f"`{r['group']}`", r["seed"], "; ".join(r["degenerate"])) for r in bad]) if bad else "None."
    return f"## Degenerate runs: {len(bad)}\n\n{body}\n"


def _baseline_section(report: dict) -> str:
    rows = [(f"`{g}`", fmt(b["acc"]), fmt(b["f1"]), fmt(b["f1_macro"]), b["note"] or "")
            for g, b in report["baseline"].items()]
    return ("## Majority-class baseline\n\n"
            "Always predicting the most frequent training class. accuracy = the runs' `majority_rate`; "
            "F1 (positive class) is 0 when that class is the negative one.\n\n"
            + md_table(["group", "accuracy", "F1 (positive class)", "macro F1", "note"], rows) + "\n")


def _summary_rows(report: dict, metric: str, summary: dict, subset: str) -> list[tuple]:
    rows = []
    for g, s in summary.items():
        x = s[subset]
        rows.append((f"`{g}`", x["n"], s["n_failed"], fmt(x["mean"]), fmt(x["sd"]), fmt(x["min"]),
                     fmt(x["max"]), fmt_ci(x["ci_low"], x["ci_high"]), x["note"]))
    base = {g: _baseline_value(report, g, metric) for g in summary}
    if BASELINE_OF.get(metric):
        if len({v for v in base.values()}) == 1:
            rows.append(("majority-class baseline", "", "", fmt(next(iter(base.values()))), "", "", "", "", ""))
        else:
            rows += [(f"majority-class baseline (`{g}`)", "", "", fmt(v), "", "", "", "", "") for g, v in base.items()]
    return rows


def _metric_section(report: dict, metric: str, entry: dict) -> str:
    pct = int(round(report["level"] * 100))
    header = ["group", "n ok", "n failed", "mean", "sd", "min", "max", f"{pct}% CI", "note"]
    out = [f"## `{metric}` — {entry['name']}", "",
           "All ok runs:", "", md_table(header, _summary_rows(report, metric, entry["summary"], "all")), ""]
    n_deg = sum(s["n_degenerate"] for s in entry["summary"].values())
    if n_deg:
        out += [f"Without the {n_deg} degenerate run(s):", "",
                md_table(header, _summary_rows(report, metric, entry["summary"], "non_degenerate")), ""]
    comp = entry["comparisons"]
    if comp["vs_reference"]:
        out += [f"### vs reference `{report['reference']}` (Welch t-test, Holm within this family)", "",
                _comparison_table(comp["vs_reference"], "group"), ""]
    if comp["all_pairs"]:
        out += ["### All pairs (Welch t-test, Holm within this family)", "",
                _comparison_table(comp["all_pairs"], "A"), ""]
    if entry.get("aso"):
        out += ["### Almost Stochastic Order (ASO)", "",
                md_table(["better (tested)", "other", "ε_min", "note"],
                         [(f"`{r['better']}`", f"`{r['worse']}`", fmt(r["eps_min"], 3), r["note"]) for r in entry["aso"]]), ""]
    out += [f"![{metric} box plot](boxplot_{slug(metric)}.png)", ""]
    return "\n".join(out)


def _comparison_table(rows: list[dict], first: str) -> str:
    second = "reference" if first == "group" else "B"
    return md_table(
        [first, second, "n", f"Δ mean ({first} − {second})", "95% CI of Δ", "t", "df", "p", "p (Holm)", "note"],
        [(f"`{r['a']}`", f"`{r['b']}`", f"{r['n_a']} vs {r['n_b']}", fmt(r["diff"]),
          fmt_ci(r["diff_ci_low"], r["diff_ci_high"]), fmt(r["t"], 2), fmt(r["df"], 1), fmt_p(r["p"]),
          fmt_p(r.get("p_holm")), r["note"]) for r in rows])


CSV_FIELDS = ["group", "metric", "metric_name", "n_ok", "n_failed", "n_degenerate", "mean", "sd", "min", "max",
              "ci_low", "ci_high", "note", "n_non_degenerate", "mean_non_degenerate", "sd_non_degenerate",
              "ci_low_non_degenerate", "ci_high_non_degenerate", "majority_baseline", "reference",
              "diff_vs_reference", "diff_ci_low", "diff_ci_high", "t", "df", "p", "p_holm"]


def render_csv(report: dict) -> str:
    """One row per group x metric; the test vs the reference on the same row (empty for the reference)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for metric, entry in report["metrics"].items():
        vs_ref = {r["a"]: r for r in entry["comparisons"]["vs_reference"]}
        for g, s in entry["summary"].items():
            a, nd, r = s["all"], s["non_degenerate"], vs_ref.get(g, {})
            row = {"group": g, "metric": metric, "metric_name": entry["name"], "n_ok": s["n_ok"],
                   "n_failed": s["n_failed"], "n_degenerate": s["n_degenerate"],
                   **{k: a[k] for k in ("mean", "sd", "min", "max", "ci_low", "ci_high", "note")},
                   "n_non_degenerate": nd["n"], "mean_non_degenerate": nd["mean"], "sd_non_degenerate": nd["sd"],
                   "ci_low_non_degenerate": nd["ci_low"], "ci_high_non_degenerate": nd["ci_high"],
                   "majority_baseline": _baseline_value(report, g, metric), "reference": report["reference"],
                   "diff_vs_reference": r.get("diff"), "diff_ci_low": r.get("diff_ci_low"),
                   "diff_ci_high": r.get("diff_ci_high"), "t": r.get("t"), "df": r.get("df"),
                   "p": r.get("p"), "p_holm": r.get("p_holm")}
            w.writerow({k: _csv_cell(v) for k, v in row.items()})
    return buf.getvalue()


def _csv_cell(v):
    """Empty for missing/NaN, full precision otherwise."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else v


# =============================================================================== CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report's options, shared by ``python -m tunelab.report`` and ``tunelab report``."""
    parser.add_argument("sweep_dir", help="Hydra multirun dir (e.g. multirun_outputs/2025-01-01/12-00-00)")
    parser.add_argument("--reference", metavar="GROUP", default=None,
                        help="group the others are tested against, e.g. 'freeze=none' (default: first group)")
    parser.add_argument("--metric", dest="metrics", metavar="METRIC", nargs="+", action="extend", default=None,
                        help="metric keys to report (repeatable), or 'all' for every numeric metric "
                             "(default: test/acc test/f1 test/f1_macro where present)")
    parser.add_argument("--aso", action="store_true",
                        help="also run Almost Stochastic Order (deepsig) for every pair of groups")
    parser.add_argument("--aso-iterations", type=int, default=1000, help="ASO bootstrap iterations (default 1000)")


def run(args: argparse.Namespace) -> int:
    """Build the report from parsed arguments; user errors print one line and give exit code 2."""
    try:
        report = build_report(args.sweep_dir, reference=args.reference, metrics=args.metrics,
                              aso=args.aso, aso_iterations=args.aso_iterations)
    except ReportError as exc:
        print(f"tunelab report: error: {exc}", file=sys.stderr)
        return 2
    c = report["counts"]
    print(f"{c['jobs']} job dirs: {c['ok']} ok, {c['failed']} failed, {c['missing']} without results.json, "
          f"{c['corrupt']} corrupt, {c['degenerate']} degenerate; {len(report['groups'])} group(s)")
    print(report["files"]["md"])
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tunelab.report <sweep_dir> [--reference GROUP] [--metric ...] [--aso]``."""
    parser = argparse.ArgumentParser(prog="python -m tunelab.report", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
