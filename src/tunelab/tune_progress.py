"""Where a tuning study stands: ``tunelab status`` on a ``hydra/sweeper=tune`` dir adds one line per arm.

A study at real size runs for many hours in pieces (the fair fight: ≈ 19 h of jobs on a 2-core
CPU), and the job table alone does not say how far it is: how many trials each arm has finished,
whether it is tuning or testing, and how many jobs may still come. Everything here is read from
the sweeper's state file (``tune.json``: its setup, the trials it drew and the tests it planned,
its last analysis) and the job rows ``tunelab.status`` already read; nothing is launched or written.

Jobs left are an upper bound: an arm still tuning may prune trials (its other seeds never run) and
tests only trial 0 when the default recipe is also the best. The time left is that bound times the
arm's own mean wall time per finished job, so it is blank for an arm that has run nothing yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from tunelab.cost import hms
from tunelab.sweep_state import TUNE_STATE, read_state

DONE = ("ok", "skipped", "failed")  # a job that will not run again (a failed one fails its trial)
FINISHED = ("complete", "pruned", "failed")


def arm_progress(state: dict, rows_by_name: dict) -> list[dict]:
    """Per arm (in the command's order): phase, trials finished of its budget, pruned, jobs done
    and their wall seconds, and the most jobs it may still run."""
    setup, facts = state["setup"], state.get("facts", {})
    analysis = (state.get("analysis") or {}).get("arms", {})
    n, t = int(setup["seeds_per_trial"]), len(setup["test_seeds"])
    done: dict = {}  # (arm, phase, trial) -> jobs that will not run again
    jobs: dict = {}  # arm -> jobs done
    walls: dict = {}  # arm -> wall seconds of the jobs done that recorded them
    for rnd in state.get("rounds", []):
        for job in rnd["jobs"]:
            row = rows_by_name.get(str(job["num"]))
            tags = job["tags"]
            if row is not None and row.state in DONE:
                key = (tags["arm"], tags["phase"], int(tags["trial"]))
                done[key] = done.get(key, 0) + 1
                jobs[tags["arm"]] = jobs.get(tags["arm"], 0) + 1
                if row.duration_s is not None:
                    walls.setdefault(tags["arm"], []).append(float(row.duration_s))
    out = []
    for label, arm in setup["arms"].items():
        budget = int(setup["trials"]) if arm.get("search") else 1
        # the trials drawn (facts) with their status at the sweeper's last look (analysis; a trial
        # drawn since has none yet: it is running)
        status = {int(v["trial"]): v["status"] for v in (analysis.get(label) or {}).get("trials", [])}
        drawn = [(int(v["trial"]), v.get("repeat_of"), status.get(int(v["trial"]), "running"))
                 for v in facts.get("trials", {}).get(label, [])]
        tests = facts.get("tests", {}).get(label)
        if tests is not None:
            left = sum(t - done.get((label, "test", int(k)), 0) for k in tests["trials"])
            phase = "tested" if left == 0 else "testing"
        else:
            left = sum(n - done.get((label, "tune", k), 0) for k, rep, st in drawn
                       if rep is None and st not in FINISHED)
            left += (budget - len(drawn)) * n + t * (2 if setup.get("test_default", True) and budget > 1 else 1)
            phase = "tuning" if drawn else "waiting"
        w = walls.get(label, [])
        out.append({"arm": label, "phase": phase, "budget": budget,
                    "finished": sum(st in FINISHED or rep is not None for _, rep, st in drawn),
                    "pruned": sum(st == "pruned" for _, rep, st in drawn if rep is None),
                    "jobs": jobs.get(label, 0), "wall_s": sum(w) if w else None, "left": left,
                    "per_job_s": sum(w) / len(w) if w else None,
                    "left_s": left * sum(w) / len(w) if w else None})
    return out


def progress_lines(sweep: Path, rows: Sequence) -> list[str]:
    """The lines ``tunelab status`` prints below the job table; none for a dir without tune.json."""
    path = Path(sweep) / TUNE_STATE
    state = read_state(path)
    if state is None or state.get("kind") != "tune":
        return []
    arms = arm_progress(state, {r.name: r for r in rows})
    count = {p: sum(a["phase"] == p for a in arms) for p in ("tested", "testing", "tuning", "waiting")}
    left = sum(a["left"] for a in arms)
    known = sum(a["left_s"] for a in arms if a["left_s"] is not None)
    unknown = [a["arm"] for a in arms if a["left"] and a["left_s"] is None]
    head = ("arm", "phase", "trials", "jobs", "wall", "per job", "jobs left (at most)", "time left (at most)")
    body = [(a["arm"], a["phase"], f"{a['finished']}/{a['budget']}" + (f", {a['pruned']} pruned" if a["pruned"] else ""),
             str(a["jobs"]), hms(a["wall_s"]), hms(a["per_job_s"]),
             str(a["left"]), hms(a["left_s"]) if a["left"] else "-") for a in arms]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    table = ["  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    summary = (f"tune study ({path}): " + ", ".join(f"{k} {v}" for k, v in count.items() if v)
               + f" of {len(arms)} arms; at most {left} jobs left")
    parts = []
    if any(a["left"] and a["left_s"] is not None for a in arms):
        parts.append(f"at most {hms(known)} at each arm's mean time per job so far")
    if unknown:
        parts.append(f"{len(unknown)} arm(s) with jobs left not timed yet ({', '.join(unknown)})")
    if parts:
        summary += ", " + " plus ".join(parts)
    return ["", summary, *table]
