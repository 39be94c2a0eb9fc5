"""What each arm of a study cost: wall time, CPU seconds, samples per second, what it trains.

A reader choosing a freeze policy weighs its score against its price, so the report shows,
per group, the mean wall time of its ok runs (``cost.wall_s``: start-up, training, evaluation, over
every attempt of a run resumed after a kill; ``duration_s`` in files written before it was recorded),
the mean CPU seconds (``cost.cpu_s``: less sensitive than wall time to other load on the
machine; absent in results.json files written before it was recorded) and training samples
per second of wall time (training examples x epochs run / that wall time; for methods without
epochs, such as the sparse baselines, the training examples once), the parameters it trained
(``params.trainable``: at the run's end, so gradual unfreezing counts what it thawed) and what
one task costs to keep beside the shared pretrained encoder (``plan.trainable_bytes``: the
trained parameters; 4 bytes a parameter where the plan does not say). Means are over the runs
that have the field; ``n`` says how many.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from tunelab.cost import run_wall_s
from tunelab.report.formatting import fmt, fmt_count, fmt_size, md_table


@dataclass
class ArmCost:
    n: int
    wall_s_mean: float
    wall_s_total: float
    cpu_s_mean: float
    cpu_s_total: float    # over the runs that recorded it (NaN when none did)
    samples_per_s_mean: float
    threads: list
    trainable_params: float = math.nan
    bytes_per_task: float = math.nan


def _mean(xs: list) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def samples_trained(result: dict) -> int | None:
    """Training examples x epochs run (the examples once when the method has no epochs)."""
    n = (result.get("n_examples") or {}).get("train")
    if not n:
        return None
    epochs = (result.get("extra") or {}).get("epochs_run")
    return int(n) * (int(epochs) if epochs else 1)


def trained(result: dict) -> tuple[float, float]:
    """(parameters trained, bytes one task keeps) of a run's record (NaN when it has neither).

    The plan's bytes are what trains at the start; gradual unfreezing thaws blocks as it goes, so
    where the run ended with more trained parameters than its plan began with, they are priced at the
    plan's bytes per parameter (a gradual run that thawed two layers keeps those two layers)."""
    params = (result.get("params") or {}).get("trainable")
    plan = result.get("plan") or {}
    nbytes, planned = plan.get("trainable_bytes"), plan.get("trainable_params")
    if nbytes is not None and params is not None and planned and params > planned:
        nbytes = nbytes / planned * params
    if nbytes is None and params is not None:
        nbytes = 4 * params
    return (math.nan if params is None else float(params)), (math.nan if nbytes is None else float(nbytes))


def arm_cost(jobs: Sequence) -> ArmCost:
    """The cost of one group's ok runs (``jobs``: ``tunelab.report.collect.Job``). The one place the
    report and checklist.md sum a study's compute, so the two cannot disagree."""
    results = [j.result for j in jobs if j.state == "ok" and j.result]
    timed = [(r, float(w)) for r in results if (w := run_wall_s(r)) is not None]
    walls = [w for _, w in timed]
    cpus = [float(r["cost"]["cpu_s"]) for r in results if (r.get("cost") or {}).get("cpu_s") is not None]
    rates = [samples_trained(r) / w for r, w in timed if w > 0 and samples_trained(r)]
    threads = sorted({(r.get("cost") or {}).get("threads") for r in results} - {None})
    kept = [trained(r) for r in results]
    return ArmCost(len(results), _mean(walls), sum(walls) if walls else math.nan, _mean(cpus),
                   sum(cpus) if cpus else math.nan, _mean(rates), threads,
                   _mean([p for p, _ in kept if p == p]), _mean([b for _, b in kept if b == b]))


def group_costs(groups: dict) -> dict[str, ArmCost]:
    return {g: arm_cost(js) for g, js in groups.items()}


def cost_section(costs: dict[str, ArmCost]) -> str:
    """The markdown section, with the report's own formatters."""
    if not costs:
        return ""
    rows = [(f"`{g}`", c.n, fmt(c.wall_s_mean, 1), fmt(c.wall_s_total, 1), fmt(c.cpu_s_mean, 1),
             fmt(c.samples_per_s_mean, 1), fmt_count(c.trainable_params), fmt_size(c.bytes_per_task),
             ", ".join(str(t) for t in c.threads) or "n/a")
            for g, c in costs.items()]
    return ("## Cost per arm\n\n"
            "Over each group's ok runs: wall time of a run (start-up, training and evaluation), CPU "
            "seconds of its process, and training samples (examples x epochs) per wall-clock second. "
            "Wall times depend on the machine's other load; CPU seconds much less. Trained parameters "
            "and the bytes one task keeps beside the shared pretrained encoder come from each run's plan.\n\n"
            + md_table(["group", "runs", "mean wall s", "total wall s", "mean CPU s", "samples/s",
                        "trained params", "bytes/task", "threads"], rows) + "\n")
