"""The majority-class baseline and degenerate runs: is a score better than not learning at all?

A fine-tuned classifier that always predicts the most frequent class can still post a decent
accuracy on an imbalanced split. So every report shows what that trivial predictor scores on
the same test split, and flags ok runs that predict one class or do not beat the majority rate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tunelab import metrics
from tunelab.report.model import Baseline

if TYPE_CHECKING:
    from tunelab.report.jobs import Job


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


def _positive_label(names: list | None, counts: dict) -> str | None:
    """The positive class of a binary task: index 1 (``label_names[1]``, sklearn's pos_label=1)."""
    if names and len(names) == 2:
        return str(names[1])
    if set(counts) <= {"0", "1"}:
        return "1"
    return None


def run_baseline(result: dict) -> Baseline:
    """Scores of always predicting the majority training class, on this run's test split.

    accuracy = ``majority_rate``. The F1 scores come from the tested metric functions applied to
    the label counts: positive-class F1 is 0 when the majority class is the negative one. Where
    the needed counts are missing the value is None and ``note`` says what to add.
    """
    out = Baseline(acc=_num(result.get("majority_rate")))
    if result.get("task") == "token_cls":
        out.note = "token_cls: test/f1 is entity F1; no majority baseline for it"
        return out
    names = result.get("label_names") if isinstance(result.get("label_names"), list) else None
    majority = _majority_label(result, names)
    counts = _test_label_counts(result, names, majority, out.acc) if majority is not None else None
    if counts is None:
        out.note = ("F1 baselines need extra.majority_label (or extra.train_label_counts) and "
                    "extra.test_label_counts (or label_names of 2 classes + n_examples.test)")
        return out
    y_true = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    if y_true.size == 0:
        out.note = "empty test split"
        return out
    y_pred = np.full(y_true.shape, majority, dtype=object)
    out.f1_macro = metrics.f1_macro(y_true, y_pred)
    positive = _positive_label(names, counts)
    if positive is not None:
        out.f1 = metrics.f1_score_binary(y_true, y_pred, pos_label=positive)
    else:
        out.note = "not binary: no positive-class F1"
    return out


def group_baseline(jobs: Sequence[Job]) -> Baseline:
    """Mean of the per-run majority baselines of a group's ok runs (they differ only if splits do)."""
    per_run = [run_baseline(j.result) for j in jobs if j.state == "ok"]
    out = Baseline()
    notes = sorted({b.note for b in per_run if b.note})
    for key in ("acc", "f1", "f1_macro"):
        vals = [getattr(b, key) for b in per_run if getattr(b, key) is not None]
        setattr(out, key, float(np.mean(vals)) if vals else None)
        if vals and max(vals) - min(vals) > 1e-9:
            notes.append(f"{key} baseline varies across runs ({min(vals):.4f}..{max(vals):.4f}); mean shown")
    if not per_run:
        notes.append("no ok runs")
    elif out.acc is None:
        notes.append("no majority_rate in results")
    out.note = "; ".join(notes)
    return out


def _ood_view(result: dict | None) -> dict | None:
    """A run's record as if its out-of-domain split (tunelab.data.ood) were its test split."""
    extra = (result or {}).get("extra") or {}
    counts, major = extra.get("test_ood_label_counts"), extra.get("majority_label")
    if not isinstance(counts, dict) or not counts or major not in counts:
        return None
    n = sum(int(c) for c in counts.values())
    return {**result, "majority_rate": int(counts[major]) / n if n else None, "n_examples": {"test": n},
            "extra": {**extra, "test_label_counts": counts}}


def id_ood_baseline(jobs: Sequence[Job]) -> dict[str, float | None]:
    """A group's majority-class baseline on its in-domain test and on its out-of-domain split
    (``acc_id``, ``acc_ood``, ``f1_macro_id``, ``f1_macro_ood``; the report's ``ood`` section)."""
    ok = [j for j in jobs if j.state == "ok"]
    ind = group_baseline(ok)
    views = [dataclasses.replace(j, result=_ood_view(j.result)) for j in ok]
    ood = group_baseline([v for v in views if v.result is not None])
    return {"acc_id": ind.acc, "acc_ood": ood.acc, "f1_macro_id": ind.f1_macro, "f1_macro_ood": ood.f1_macro}


def degenerate_reasons(job: Job) -> list[str]:
    """Why an ok run is not a real classifier (:func:`tunelab.degenerate.reasons`)."""
    from tunelab.degenerate import reasons

    return reasons({**(job.result or {}), "metrics": job.metrics})
