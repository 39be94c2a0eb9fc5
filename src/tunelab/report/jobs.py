"""One job of a sweep as the report reads it: the ``Job`` record, its overrides and seeds.

Kept below every other report module (it imports none of them), because the baseline, the
grouping (``collect``), the header, the example-level statistics and the typed ``Report``
(``model``) all read jobs: with ``Job`` here none of them has to import another in a circle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

# Replicates within a group, never group keys (tunelab.seeds: init_seed/order_seed split seed).
SEED_KEYS = ("seed", "init_seed", "order_seed")


@dataclass
class Job:
    """One job dir and what could be read from it; ``state`` is ok, failed, interrupted (its
    results.json still says ``running``: killed, or still running), missing or corrupt."""

    name: str
    path: Path
    state: str
    overrides: list[str] | None
    result: dict | None = None
    problem: str = ""
    group: str = ""
    degenerate: list[str] = field(default_factory=list)
    # Values of keys that pick the examples, which no override set but the job's config gives
    # and other groups' configs give otherwise (an experiment's or arm's own data): grouped as
    # if swept (tunelab.report.merge.implied_data_keys).
    implied: dict[str, str] = field(default_factory=dict)

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

    @property
    def seed_label(self):
        """The seed as tables show it: ``seed``, or ``init/order`` when the run split it."""
        r = self.result or {}
        cfg = r.get("config") if isinstance(r.get("config"), dict) else {}
        split = any(cfg.get(k) is not None for k in SEED_KEYS[1:])
        init, order = r.get("init_seed", self.seed), r.get("order_seed", self.seed)
        return f"{init}/{order}" if split or not init == order == self.seed else self.seed


def natural_key(text: str) -> list:
    """Sort key that puts ``last2`` before ``last10`` and job ``9`` before ``10``."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", str(text))]


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


def job_value(job: Job, key: str, parsed: dict | None = None):
    """A key's value for a job: its override, else a data key its config implied (``implied``),
    else (a key some other job overrode, e.g. in another sweep of a merged report) the group
    option it ran with (``choices``), else None."""
    parsed = parse_overrides(job.overrides or []) if parsed is None else parsed
    if key in parsed:
        return parsed[key]
    if key in job.implied:
        return job.implied[key]
    choices = (job.result or {}).get("choices")
    value = choices.get(key) if isinstance(choices, dict) else None
    return None if value is None else str(value)


def fixed_overrides(jobs: Sequence[Job], seed_keys: Sequence[str] = SEED_KEYS) -> list[str]:
    """``key=value`` of every override that all jobs (with known overrides) share, seeds aside."""
    parsed = [parse_overrides(j.overrides) for j in jobs if j.overrides is not None]
    if not parsed:
        return []
    common = set(parsed[0].items()).intersection(*(p.items() for p in parsed[1:]))
    return sorted(f"{k}={v}" for k, v in common if k not in seed_keys)
