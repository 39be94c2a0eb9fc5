"""``checklist.md``: the reproducibility items a venue asks for, filled from the study's own files.

ACL venues' Responsible NLP checklist (and the ML reproducibility checklists it follows) asks how
many runs and seeds each number rests on, the hyper-parameters with their bounds and how they
were chosen, the validation result behind every test result, the compute (CPU/GPU time and
hardware) and the library versions. A sweep has all of it on disk: each job's results.json
(``config``, ``overrides``, ``choices``, ``metrics``, ``cost``, ``duration_s``, ``environment``,
``versions``) and the sweep's ``multirun.yaml`` (the sweeper and its search space). This module only
reads them; it answers "not recorded" where a file lacks a field, never a guess.

GPU seconds are wall seconds times the GPUs a job saw (``environment.gpu.count``) when it ran on
a GPU accelerator: the time the devices were held, not a utilisation measurement.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.cost import run_wall_s
from tunelab.report.formatting import fmt, md_table
from tunelab.report.jobs import Job, natural_key, parse_overrides
from tunelab.report.render_tune import checklist_lines

if TYPE_CHECKING:
    from tunelab.report.model import Report

# Hyper-parameters shown per arm (dotted paths into results.json ``config``), where present.
HP_KEYS = ("optim.lr", "optim.head_lr", "optim.layer_decay", "optim.batch_size", "optim.epochs", "optim.max_steps",
           "optim.warmup_ratio", "optim.weight_decay", "optim.grad_clip", "optim.early_stopping_patience",
           "model.max_length", "model.dropout", "freeze.name", "method.name", "method.C", "method.classifier",
           "peft.r", "peft.reduction_factor", "freeze.probe.lr",
           "extra.features.C")  # extra.*: read from results.json itself (the C a probe's CV chose)
# Sweepers by the class their multirun.yaml names.
SEARCHES = {"BasicSweeper": "grid: every combination of the listed values ran (all are reported)",
            "OptunaSweeper": "Optuna search",
            "TuneSweeper": "per-arm search on the validation split, then fresh test seeds of the chosen values "
                           "(hydra/sweeper=tune; below)"}


def _get(cfg: Any, path: str):
    for part in path.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _unused(result: dict) -> set[str]:
    """The HP_KEYS a run's plan says it never read: no gradient training (a fitted probe, a bag of
    words, zero-shot: no block of the plan has a learning rate) uses no optim.* key and no dropout;
    a bag of words no model key. Without a plan: nothing is known to be unused."""
    plan = result.get("plan") or {}
    blocks = plan.get("blocks") or []
    if not blocks or any(b.get("lr") is not None for b in blocks):
        return set()
    unused = {k for k in HP_KEYS if k.startswith("optim.")} | {"model.dropout"}
    return unused | ({k for k in HP_KEYS if k.startswith("model.")} if plan.get("runner") == "sparse" else set())


def _cell(results: list[tuple[dict, set[str]]], key: str) -> str:
    """The values of ``key`` over the runs that used it (``results``: each run's results.json and
    its :func:`_unused` keys); "not used (<fit>)" when none did."""
    used = [r for r, unused in results if key not in unused]
    if results and not used:
        fits = sorted({str((r.get("plan") or {}).get("fit")) for r, _ in results})
        return f"not used ({', '.join(fits)})"
    return _distinct(_get(r if key.startswith("extra.") else r.get("config"), key) for r in used)


def _distinct(values) -> str:
    vals = {v for v in values if v is not None and not isinstance(v, (dict, list))}
    if not vals:
        return "not recorded"
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals)
    return ", ".join(f"{v:g}" if numeric else str(v)
                     for v in (sorted(vals) if numeric else sorted(vals, key=lambda v: natural_key(str(v)))))


def _sweeper(source: str) -> list[str]:
    """What the sweep's multirun.yaml says about how configurations were chosen."""
    path = Path(source) / "multirun.yaml"
    if not path.is_file():
        return [f"`{source}`: no multirun.yaml (not a Hydra multirun dir): how configurations were chosen is "
                "not recorded"]
    try:
        import yaml

        hydra = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("hydra") or {}
        sweeper = hydra.get("sweeper") or {}
        # the command line's overrides win over the sweeper's params for the same key (an experiment's
        # `arm: a,b,c` with `arm=d,e` on the command line sweeps d, e)
        given = dict(o.split("=", 1) for o in (hydra.get("overrides") or {}).get("task") or [] if "=" in o)
    except Exception as exc:  # a report must not die on one unreadable file
        return [f"`{source}`: multirun.yaml unreadable ({type(exc).__name__})"]
    kind = str(sweeper.get("_target_", "")).rsplit(".", 1)[-1] or "sweeper not recorded in multirun.yaml"
    out = [f"`{source}`: {SEARCHES.get(kind, kind)}"]
    if kind == "OptunaSweeper":
        sampler = str((sweeper.get("sampler") or {}).get("_target_", "")).rsplit(".", 1)[-1]
        out[0] += (f" ({sampler or 'default sampler'}, {sweeper.get('n_trials')} trials, "
                   f"{sweeper.get('direction')} the value train.py returns: the monitored validation metric)")
    params = sweeper.get("params") or {}
    for k, v in params.items():
        mine = given.get(k, given.get(f"+{k}", given.get(f"++{k}")))
        out.append(f"  - `{k}`: {v}" if mine is None or mine == str(v) else
                   f"  - `{k}`: {mine} (the command line's; the config's sweeper params said {v})")
    return out


def _runs_section(report: Report) -> list[str]:
    rows = [(f"`{g}`", r.ok, r.n_not_ok, ", ".join(str(s) for s in r.seeds if s is not None) or "n/a")
            for g, r in report.groups.items()]
    return ["## Runs and seeds per arm", "",
            f"{report.counts.ok} ok runs of {report.counts.jobs} jobs. Every number in the report is over the "
            "ok runs of a group; the jobs that gave no result are named in report.md (*Problems*).", "",
            md_table(["arm", "ok runs", "not ok", "seeds"], rows), ""]


def _hp_section(report: Report, groups: dict[str, list[Job]]) -> list[str]:
    h = report.header
    out = ["## Hyper-parameters: bounds and how they were chosen", "",
           "How the configurations were chosen (the sweeper of each sweep dir, from its multirun.yaml):", ""]
    for source in (h.sources if h else [report.sweep_dir]):
        out += [f"- {line}" if not line.startswith("  ") else line for line in _sweeper(source)]
    out += checklist_lines(report.tune)
    swept: dict[str, set] = {}
    for jobs in groups.values():
        for j in jobs:
            for k, v in parse_overrides(j.overrides or []).items():
                if k in report.swept_keys:
                    swept.setdefault(k, set()).add(v)
    out += ["", "Swept keys and the values that ran (the bounds of the search):", ""]
    out += [f"- `{k}`: {_bounds(v)}" for k, v in swept.items()] or ["- none (one configuration)"]
    out += ["", f"Fixed for every job (overrides): {', '.join(f'`{o}`' for o in (h.fixed_overrides if h else [])) or 'none'}; "
            "every other value is the configuration's default (`config` in each results.json).", ""]
    rows = []
    for g, jobs in groups.items():
        results = [(r, _unused(r)) for r in (j.result or {} for j in jobs if j.state == "ok")]
        rows.append((f"`{g}`", *(_cell(results, k) for k in HP_KEYS)))
    keep = [i for i, k in enumerate(HP_KEYS)
            if any(r[i + 1] != "not recorded" and not r[i + 1].startswith("not used") for r in rows)]
    if not keep:
        return out + ["The runs' results.json files hold no `config`: the values each arm used are not recorded.", ""]
    out += ["Values each arm's ok runs used (from `config`; several values: they differ between runs; not used: "
            "the run's plan fitted its classifier without gradient steps, or read no encoder):", "",
            md_table(["arm", *(f"`{HP_KEYS[i]}`" for i in keep)], [(r[0], *(r[i + 1] for i in keep)) for r in rows]),
            ""]
    return out


def _bounds(values: set) -> str:
    try:
        nums = sorted(float(v) for v in values)
        return f"{len(nums)} values in [{nums[0]:g}, {nums[-1]:g}]: " + ", ".join(f"{x:g}" for x in nums)
    except ValueError:
        return ", ".join(f"`{v}`" for v in sorted(values, key=natural_key))


def _val_of(metric: str) -> str:
    return "val/" + metric.split("/", 1)[1] if metric.startswith("test/") else ""


def _validation_section(report: Report, groups: dict[str, list[Job]]) -> list[str]:
    out = ["## Validation result for every test result", ""]
    metrics = [m for m in report.metrics if _val_of(m)]
    if not metrics:
        return out + ["No reported metric has a validation counterpart.", ""]
    rows = []
    for g, jobs in groups.items():
        for j in (j for j in jobs if j.state == "ok"):
            m = j.metrics
            rows.append((f"`{j.name}`", f"`{g}`", j.seed_label,
                         *(f"{fmt(m.get(_val_of(k)))} / {fmt(m.get(k))}" for k in metrics)))
    monitored = sorted({k for j in (j for js in groups.values() for j in js) for k in j.metrics if k.endswith("_best")})
    out += ["Per ok run, validation / test score (the validation split is the one the run monitored for its "
            "checkpoint" + (f": {', '.join(f'`{k}`' for k in monitored)} is the tested checkpoint's" if monitored else "")
            + "; n/a: the run had no validation split).", "",
            md_table(["run", "arm", "seed", *(f"`{_val_of(k)}` / `{k}`" for k in metrics)], rows), ""]
    return out


def _compute_section(report: Report, groups: dict[str, list[Job]]) -> list[str]:
    rows, tot = [], {"cpu": 0.0, "wall": 0.0, "gpu": 0.0}
    hardware: set[str] = set()
    for g, jobs in groups.items():
        res = [j.result for j in jobs if j.result and j.state == "ok"]
        cost = report.cost[g]  # the report priced every group (report.cost.arm_cost)
        gpu = sum(_gpu_s(r) for r in res)
        for env in (r.get("environment") for r in res):
            if isinstance(env, dict):
                gpus = (env.get("gpu") or {}).get("names") or []
                hardware.add(f"{env.get('cpu') or 'CPU model not recorded'} ({env.get('cpu_count') or '?'} cores)"
                             + (f"; GPUs: {', '.join(gpus)}" if gpus else ""))
        tot["cpu"] += _or0(cost.cpu_s_total)
        tot["wall"] += _or0(cost.wall_s_total)
        tot["gpu"] += gpu
        rows.append((f"`{g}`", cost.n, "not recorded" if math.isnan(cost.cpu_s_total) else fmt(cost.cpu_s_total, 1),
                     fmt(cost.cpu_s_mean, 1), fmt(cost.wall_s_total, 1), fmt(gpu, 1)))
    rows.append(("**all**", sum(r[1] for r in rows), fmt(tot["cpu"], 1), "", fmt(tot["wall"], 1), fmt(tot["gpu"], 1)))
    return ["## Compute", "",
            "Over each arm's ok runs: CPU seconds (user + system of the job's process and its children, "
            "`cost.cpu_s`), running wall seconds (`cost.wall_s`, every attempt of a resumed run; `duration_s` "
            "where absent) and GPU seconds (wall seconds x GPUs the job saw, on a GPU accelerator). Failed runs' "
            "compute is not counted.", "",
            md_table(["arm", "runs", "CPU s (total)", "CPU s per run", "wall s (total)", "GPU s (total)"], rows),
            "", "Hardware: " + ("; ".join(sorted(hardware)) or "not recorded"), ""]


def _or0(x: float) -> float:
    return 0.0 if math.isnan(x) else x


def _gpu_s(result: dict) -> float:
    env = result.get("environment") or {}
    n = int((env.get("gpu") or {}).get("count") or 0)
    accel = str(_get(result.get("config") or {}, "trainer.accelerator") or "")
    wall = run_wall_s(result)
    if not n or accel == "cpu" or wall is None or not math.isfinite(float(wall)):
        return 0.0
    return float(wall) * n


def _versions_section(report: Report) -> list[str]:
    h = report.header
    versions = h.versions if h else {}
    rows = [(lib, ", ".join(v)) for lib, v in versions.items()]
    warn = [lib for lib, v in versions.items() if len(v) > 1]
    return ["## Library versions", "",
            "As the runs recorded them (`versions` in results.json); code: tunelab commit(s) "
            + (", ".join(f"`{c}`" for c in h.git_commits) if h and h.git_commits else "not recorded") + ".", "",
            md_table(["library", "version(s)"], rows) if rows else "Not recorded.", "",
            *([f"**Several versions** of {', '.join(warn)} ran in this study.", ""] if warn else [])]


def render_checklist(report: Report, groups: dict[str, list[Job]]) -> str:
    """checklist.md, from the report and the jobs it read."""
    t = report.tests
    return "\n".join([
        f"# Reproducibility checklist: `{Path(report.sweep_dir).name}`", "",
        f"Filled by `tunelab report` from the study's own files ({report.generated_at}); numbers and tests are in "
        "report.md.", "",
        *_runs_section(report), *_hp_section(report, groups), *_validation_section(report, groups),
        *_compute_section(report, groups), *_versions_section(report),
        "## Statistics", "",
        f"- Summary: mean, sd (ddof = 1) and {t.summary}.",
        f"- Comparisons: {t.comparison}; {t.multiplicity}.",
        *([f"- Paired, per example: {t.paired}."] if t.paired else []),
        *([f"- {t.aso}."] if t.aso else []), ""])
