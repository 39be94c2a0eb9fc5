"""Measuring without fooling oneself: one process per measurement, interleaved, load recorded.

The same script gave C/A 3.47 on an idle machine and 2.02 under load 4: a benchmark's figures
say more about the machine's other work than about the code unless the harness guards against
it. So:

  * every (variant, repeat) runs in a fresh process (no allocator, thread-pool or cache state
    carried from one variant into the next);
  * repeats are interleaved (A B C A B C ...), so slow drifts in load hit every variant alike;
  * each variant reports its median and min-max over repeats (``summarize``), and ratios come
    with the range their medians could span (``ratio``);
  * the load average is recorded before the first and after the last run and around each run,
    and for each run the CPU time *other* processes used during it (``foreign_cores``: busy CPU
    seconds of the whole machine from ``/proc/stat`` minus those of our child, per wall second).
    A result is ``final`` only when load1 was <= ``LOAD_LIMIT`` at the start and no run saw
    more than ``FOREIGN_LIMIT`` cores of foreign work; otherwise it is flagged, with reasons.
    (load1 *after* the last run is recorded but not used for the flag: it is a one-minute
    average of our own children's work, ~ their thread count, and says nothing about others.)
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("TUNELAB_BENCH_RESULTS", ROOT / "bench" / "results"))
LOAD_LIMIT = 0.5      # load1 at the start above this: the machine was not idle
FOREIGN_LIMIT = 0.25  # cores of other processes' work during a run above this: it was disturbed


def load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def busy_cpu_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
    busy = sum(v[:8]) - idle                   # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_idle(max_s: float, limit: float = LOAD_LIMIT) -> float | None:
    """Wait up to ``max_s`` seconds for load1 <= ``limit``; return the load1 seen last."""
    t = time.time()
    while True:
        now = load1()
        if now is None or now <= limit or time.time() - t >= max_s:
            return now
        time.sleep(5)


def run_child(cmd: list[str], *, env: dict | None = None, cwd: Path = ROOT, timeout: float | None = None,
              json_out: bool = True) -> dict:
    """Run one measurement; its figures (last stdout line, JSON) plus wall, CPU and load around it."""
    e = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    before = {"load1": load1(), "busy": busy_cpu_s(), "kids": _children_cpu_s(), "t": time.perf_counter()}
    r = subprocess.run(cmd, cwd=str(cwd), env=e, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - before["t"]
    child_cpu = _children_cpu_s() - before["kids"]
    busy = busy_cpu_s()
    foreign = None
    if busy is not None and before["busy"] is not None:
        foreign = max(0.0, (busy - before["busy"]) - child_cpu) / max(wall, 1e-9)
    out: dict = {}
    if r.returncode == 0 and json_out:
        try:
            out = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            out = {"error": "no JSON line on stdout"}
    elif r.returncode != 0:
        out = {"error": (r.stderr or r.stdout)[-1500:]}
    out.update(rc=r.returncode, process_wall_s=wall, process_cpu_s=child_cpu, foreign_cores=foreign,
               load1_before=before["load1"], load1_after=load1())
    return out


def interleave(variants: dict[str, list[str]], repeats: int, *, env_of=None, timeout=None, log=print) -> dict:
    """``{name: [result per repeat]}``, the runs ordered A B C A B C ... (``env_of(name, i)``: env)."""
    runs: dict[str, list[dict]] = {n: [] for n in variants}
    for i in range(repeats):
        for name, cmd in variants.items():
            res = run_child(cmd, env=env_of(name, i) if env_of else None, timeout=timeout)
            runs[name].append(res)
            fig = res.get("samples_per_s")
            log(f"  repeat {i}: {name:4} " + (f"{fig:8.1f} samples/s" if fig else f"{res['process_wall_s']:8.1f} s wall")
                + f"  (foreign cores {_f(res['foreign_cores'])}, load {_f(res['load1_before'])}"
                + (f", rc {res['rc']}: {res.get('error', '')[-300:]}" if res["rc"] else "") + ")", flush=True)
    return runs


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def summarize(runs: dict[str, list[dict]], key: str) -> dict:
    """Per variant: median, min, max and all values of ``key`` over the repeats that succeeded."""
    out = {}
    for name, rs in runs.items():
        vals = [r[key] for r in rs if r.get("rc") == 0 and r.get(key) is not None]
        out[name] = ({"median": statistics.median(vals), "min": min(vals), "max": max(vals), "values": vals,
                      "n": len(vals)} if vals else {"median": None, "min": None, "max": None, "values": [], "n": 0})
    return out


def ratio(summary: dict, a: str, b: str) -> dict | None:
    """median(a) / median(b), with the widest range the repeats allow (min a / max b .. max a / min b)."""
    sa, sb = summary.get(a), summary.get(b)
    if not sa or not sb or not sa["n"] or not sb["n"]:
        return None
    return {"value": sa["median"] / sb["median"], "low": sa["min"] / sb["max"], "high": sa["max"] / sb["min"]}


def load_verdict(start_load, runs: dict[str, list[dict]]) -> dict:
    """``final`` unless the machine was loaded at the start or a run was disturbed (reasons listed)."""
    reasons = []
    if start_load is not None and start_load > LOAD_LIMIT:
        reasons.append(f"load1 {start_load:.2f} > {LOAD_LIMIT} at the start")
    worst = max((r["foreign_cores"] for rs in runs.values() for r in rs if r.get("foreign_cores") is not None),
                default=None)
    if worst is not None and worst > FOREIGN_LIMIT:
        reasons.append(f"other processes used up to {worst:.2f} cores during a run (limit {FOREIGN_LIMIT})")
    failed = [n for n, rs in runs.items() if any(r.get("rc") for r in rs)]
    if failed:
        reasons.append(f"runs failed: {', '.join(failed)}")
    return {"final": not reasons, "reasons": reasons, "load1_start": start_load, "load1_end": load1(),
            "max_foreign_cores": worst}


def machine() -> dict:
    import platform

    if str(ROOT / "src") not in sys.path:
        sys.path.insert(0, str(ROOT / "src"))
    from tunelab.environment import cpu_bf16_units

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "bf16_units": cpu_bf16_units(), "processor": platform.processor()}


def write_result(name: str, result: dict, out: Path | None = None) -> Path:
    """``bench/results/<name>.json`` (strict JSON, written atomically)."""
    sys.path.insert(0, str(ROOT / "src"))
    from tunelab.io import write_json

    path = out or RESULTS / f"{name}.json"
    return write_json(path, result)


def print_table(summary: dict, ratios: dict, verdict: dict, unit: str = "samples/s") -> None:
    print(f"\n{'':5} {'median':>10} {'min':>10} {'max':>10}  n   ({unit})")
    for name, s in summary.items():
        if s["n"]:
            print(f"{name:5} {s['median']:10.2f} {s['min']:10.2f} {s['max']:10.2f}  {s['n']}")
        else:
            print(f"{name:5} {'failed':>10}")
    tag = "" if verdict["final"] else "  [NOT FINAL: " + "; ".join(verdict["reasons"]) + "]"
    for k, r in ratios.items():
        if r:
            print(f"ratio {k} = {r['value']:.2f} (range {r['low']:.2f}-{r['high']:.2f}){tag}")
