"""One report across several sweep dirs: a study that grows (more seeds, a new arm, a rerun).

``collect_dirs([A, B, ...])`` loads the jobs of every dir and groups them as if they had run in
one sweep, so ``tunelab report A B`` gives the tables that one sweep with all the jobs would.

Job identity is the set of a job's overrides (``freeze=all``, ``seed=3``, ...): the same set in two
dirs is the same configuration run twice. It is counted once, and every case is named in the
report's notes:

* same config, one ok and the others not (a rerun of a failed job): the ok run is kept;
* same config, ok twice with identical metrics (a dir given twice, a copied job): kept once;
* same config, ok twice with *different* metrics: a conflict (nondeterminism, or code changed
  between the sweeps) — the run from the dir given first is kept, the other named.

Job names get their dir's name in front (``sweepA/3``) so every row of the report says where
it came from; with one dir they are unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

from tunelab.errors import TunelabError
from tunelab.report.collect import Job, find_job_dirs, group_jobs, job_value, load_job, natural_key, parse_overrides
from tunelab.report.datasets import DATA_KEYS, data_keys


def _is_sweep(d: Path) -> bool:
    from tunelab.ops.sweepdir import DEFINITION

    return (d / DEFINITION).is_file() or (d / "multirun.yaml").is_file()


def sweeps_below(parent: Path) -> list[Path]:
    """The sweep dirs below ``parent`` (not ``parent`` itself; none inside a sweep or a job dir)."""
    found = []
    for root, dirs, files in os.walk(parent):
        here = Path(root)
        if here != parent and (_is_sweep(here) or "results.json" in files or (here / ".hydra").is_dir()):
            if _is_sweep(here):
                found.append(here)
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(found, key=lambda p: natural_key(p.relative_to(parent).as_posix()))


def several_sweeps_message(d: Path) -> str | None:
    """A sentence when ``d`` is no sweep but holds several: their runs are not one study, and
    merging them silently grouped unrelated sweeps by whatever differed (``logger``)."""
    if _is_sweep(d):
        return None
    below = sweeps_below(d)
    if len(below) < 2:
        return None
    names = " ".join(str(p) for p in below[:6]) + (" ..." if len(below) > 6 else "")
    return (f"'{d}' is not a sweep but holds {len(below)} sweeps: name the ones to report (several named "
            f"dirs are merged into one report), e.g. tunelab report {names}")


def _identity(job: Job):
    return None if job.overrides is None else frozenset(parse_overrides(job.overrides).items())


def _prefixes(dirs: Sequence[Path]) -> list[str]:
    """Dir names, made unique (``sweep``, ``sweep#2``) when two dirs share a name."""
    out, seen = [], {}
    for d in dirs:
        name = d.name or str(d)
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _dedupe(jobs: list[Job], notes: list[str]) -> list[Job]:
    """Keep one job per identity (see the module docstring), naming every one left out."""
    chosen: dict = {}
    order: list = []
    for job in jobs:
        key = _identity(job)
        if key is None:
            order.append(job)
            continue
        kept = chosen.get(key)
        if kept is None:
            chosen[key] = job
            order.append(key)
        elif kept.state != "ok" and job.state == "ok":
            notes.append(f"run {kept.name} ({kept.state}) is superseded by {job.name} (ok, same config)")
            chosen[key] = job
        elif job.state != "ok":
            notes.append(f"run {job.name} ({job.state}) is the same config as {kept.name}: counted once")
        elif job.metrics == kept.metrics:
            notes.append(f"run {job.name} repeats {kept.name} (same config, same metrics): counted once")
        else:
            diff = sorted(k for k in set(job.metrics) | set(kept.metrics) if job.metrics.get(k) != kept.metrics.get(k))
            notes.append(f"conflict: {kept.name} and {job.name} ran the same config with different results "
                         f"({', '.join(diff[:3])}{' ...' if len(diff) > 3 else ''}); {job.name} is left out")
    return [chosen[x] if not isinstance(x, Job) else x for x in order]


def data_mismatch(per_dir: Sequence[tuple[str, list[Job]]], swept: Sequence[str]) -> str | None:
    """Why the sweeps are not one study: a key that picks the examples (``DATA_KEYS``), not swept,
    with one value in each sweep's config but another in another sweep's (an edited data config or
    experiment between the sweeps). Merged, their groups would pool scores on other test sets."""
    for key in (k for k in DATA_KEYS if k not in swept):
        values = {}
        for name, jobs in per_dir:
            seen = {_config_text(j, key) for j in jobs if j.state == "ok"} - {None}
            if len(seen) == 1:
                values[name] = seen.pop()
        if len(set(values.values())) > 1:
            said = ", ".join(f"{v} in {n}" for n, v in values.items())
            return (f"the sweeps ran on different data ({key}: {said}; not an override, so no group tells them "
                    f"apart): their scores are on other examples and cannot be pooled or compared; report each "
                    f"sweep on its own, or rerun with {key} set on the command line")
    return None


def _config_text(job: Job, key: str) -> str | None:
    """A data key's value as the job's config gives it, written as an override would be (``data``:
    the group option it ran with, else ``data.name``)."""
    if key == "data":
        choice = ((job.result or {}).get("choices") or {}).get("data")
        if choice is not None:
            return str(choice)
    node = (job.result or {}).get("config")
    for part in ("data.name" if key == "data" else key).split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, str):
        return node
    return json.dumps(node, separators=(",", ":"), sort_keys=True).replace('"', "")


def implied_data_keys(groups: dict[str, list[Job]], swept: Sequence[str]) -> tuple[list[str], list[str]]:
    """Keys that pick the examples (``DATA_KEYS``) which no override sets but the groups' own
    configs set otherwise: ``-m experiment=a,b`` where the two experiments train on other data, or
    arms whose YAML caps the test set. Their runs are on other test sets, so each value is made a
    dataset of the report (``Job.implied``: grouped as if swept), and arms are tested only where it
    is the same. A key that varies *within* a group (a split drawn per seed) is not a dataset.
    Returns the keys and one note for each."""
    implied: list[str] = []
    notes: list[str] = []
    for key in DATA_KEYS:
        if key in swept or (key == "data.name" and "data" in list(swept) + implied):
            continue
        per_group: dict[str, str] = {}
        for g, js in groups.items():
            values = {_config_text(j, key) for j in js} - {None}
            if len(values) > 1:
                per_group = {}
                break
            if values:
                per_group[g] = values.pop()
        datasets: dict[tuple, set] = {}
        for g, v in per_group.items():
            where = tuple(job_value(groups[g][0], k) for k in data_keys(swept) + implied)
            datasets.setdefault(where, set()).add(v)
        if all(len(v) == 1 for v in datasets.values()):
            continue
        implied.append(key)
        for g, v in per_group.items():
            for job in groups[g]:
                job.implied[key] = v
        said = "; ".join(f"{g}: {v}" for g, v in list(per_group.items())[:4]) + ("; ..." if len(per_group) > 4 else "")
        notes.append(f"{key} is not swept, but the groups' configs set it otherwise ({said}): their runs are on "
                     f"other examples, so each value is a dataset of this report and arms are compared only "
                     f"within one")
    return implied, notes


class MergeError(TunelabError):
    """Sweep dirs that cannot be merged into one report."""


def collect_dirs(dirs: Sequence[Path]) -> tuple[list[Job], dict[str, list[Job]], list[str], list[str]]:
    """(jobs, groups, swept keys, notes) of one or more sweep dirs, merged."""
    dirs = [Path(d) for d in dirs]
    if len(dirs) == 1:
        jobs, groups, keys = group_jobs([load_job(d, dirs[0]) for d in find_job_dirs(dirs[0])])
        return with_implied_data(jobs, groups, keys, [])
    loaded, per_dir = [], []
    for prefix, sweep in zip(_prefixes(dirs), dirs):
        per_dir.append((prefix, []))
        for d in find_job_dirs(sweep):
            job = load_job(d, sweep)
            job.name = f"{prefix}/{job.name}"
            loaded.append(job)
            per_dir[-1][1].append(job)
    notes: list[str] = []
    jobs, groups, keys, notes = with_implied_data(*group_jobs(_dedupe(loaded, notes)), notes)
    mismatch = data_mismatch(per_dir, keys)
    if mismatch:
        raise MergeError(mismatch)
    return jobs, groups, keys, notes


def with_implied_data(jobs: list[Job], groups: dict[str, list[Job]], keys: list[str], notes: list[str]):
    """The grouping with :func:`implied_data_keys` added to the swept keys, and their notes."""
    implied, said = implied_data_keys(groups, keys)
    if not implied:
        return jobs, groups, keys, notes
    return (*group_jobs(jobs, keys=list(keys) + implied), notes + said)
