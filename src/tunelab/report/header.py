"""What ran: the header of a report (model, data, task, fixed and swept overrides, versions).

A report is evidence only if a reader can tell what produced it. The numbers below a header
that says "minilm on tweets_sentiment, seq_cls, freeze=last2 fixed, seeds swept, tunelab
0.1.0 @ abc123, torch 2.5" can be reproduced; a bare table cannot. Everything here comes from
the runs' own results.json (``model``, ``data``, ``task``, ``method``, ``overrides``,
``git_commit``, ``versions``), so a merged report shows it when the sweeps disagree (two
commits, two torch versions) instead of hiding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from tunelab.report.jobs import SEED_KEYS, Job, fixed_overrides, natural_key, parse_overrides
from tunelab.environment import library_versions


@dataclass
class Header:
    """report.json ``header``: each list holds the distinct values over the runs."""

    sources: list[str]
    models: list[str]
    data: list[str]
    tasks: list[str]
    methods: list[str]
    fixed_overrides: list[str]
    swept_keys: list[str]
    seeds: dict[str, list] = field(default_factory=dict)  # seed key -> values that ran
    git_commits: list[str] = field(default_factory=list)
    versions: dict[str, list[str]] = field(default_factory=dict)  # library -> versions the runs used
    report_versions: dict[str, str] = field(default_factory=dict)  # of the code that made the report


def _distinct(values) -> list:
    return sorted({v for v in values if v is not None}, key=str)


def _split(results, key: str) -> bool:
    return any(r.get(key) is not None and r.get(key) != r.get("seed") for r in results)


def make_header(sources: Sequence[str], jobs: Sequence[Job], swept: Sequence[str]) -> Header:
    results = [j.result for j in jobs if j.result]
    overrides = [parse_overrides(j.overrides) for j in jobs if j.overrides is not None]
    seeds = {k: sorted({str(v) for v in [r.get(k) for r in results] + [o.get(k) for o in overrides] if v is not None},
                       key=natural_key) for k in SEED_KEYS}
    versions: dict[str, set] = {}
    for r in results:
        for lib, v in (r.get("versions") or {}).items():
            versions.setdefault(lib, set()).add(str(v))
    return Header(
        sources=list(sources),
        models=_distinct(r.get("model") for r in results),
        data=_distinct(r.get("data") for r in results),
        tasks=_distinct(r.get("task") for r in results),
        methods=_distinct(r.get("method") for r in results),
        fixed_overrides=fixed_overrides(jobs),
        swept_keys=list(swept),
        # init_seed/order_seed only when some run split them from seed (else they just repeat it)
        seeds={k: v for k, v in seeds.items() if v and (k == "seed" or _split(results, k))},
        git_commits=_distinct(r.get("git_commit") for r in results),
        versions={lib: sorted(v) for lib, v in sorted(versions.items())},
        report_versions=library_versions(),
    )
