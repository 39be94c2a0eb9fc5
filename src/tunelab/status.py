"""``tunelab status DIR``: the state of every job of a sweep, from its files (and ``sacct``).

Usable while a sweep runs and after the launching process is gone (a login node logged out, a
closed laptop): everything is read from the job dirs. A job's ``results.json`` is written as
``running`` when it starts and ``ok``/``failed``/``interrupted`` when it ends, so a file that
still says ``running`` is either running or was killed (SIGKILL, OOM, node loss, scancel). This
module tells them apart: on the same host by the recorded pid, on SLURM by ``sacct``; otherwise
it says it cannot know. Jobs a grid sweep defines but that left no dir (the sweep was stopped
first) are listed too, as ``not started``, from the sweep's own record
(``tunelab.ops.sweepdir``). The same rows give the one-line summary a multirun prints at its
end (``tunelab.hydra_callbacks.SweepSummaryCallback``), or when Ctrl-C stops it.

The report is built by the launching process at the end of a sweep. On SLURM it can instead be
built by a job that waits for the whole array, so the login-node process need not survive::

    sbatch --dependency=afterany:<array job id> --wrap "tunelab report <sweep dir>"
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

from tunelab.cost import hms, run_wall_s
from tunelab.ops.lock import recorded_process_alive
from tunelab.report.collect import Job, find_job_dirs, load_job, parse_overrides, swept_keys

# SLURM states in which a job still runs (or will again: requeued, pending).
SLURM_ACTIVE = ("RUNNING", "PENDING", "REQUEUED", "RESIZING", "SUSPENDED", "CONFIGURING", "COMPLETING")
NOT_OK = ("failed", "interrupted", "missing", "corrupt", "not started")


@dataclass
class JobRow:
    name: str
    path: Path
    state: str  # ok | skipped | failed | running | interrupted | missing | corrupt | queued | starting | not started
    duration_s: Optional[float] = None
    slurm_id: Optional[str] = None
    slurm_state: Optional[str] = None
    overrides: str = ""
    error: str = ""


def _hydra_job_id(job_dir: Path) -> Optional[str]:
    """The launcher's job id Hydra saved in ``.hydra/hydra.yaml`` (submitit: the SLURM job id),
    for jobs that have not written results.json yet."""
    try:
        import yaml

        job = (yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text()) or {})["hydra"]["job"]
    except Exception:
        return None
    jid = str(job.get("id") or "")
    return jid if jid and jid[0].isdigit() else None


def _slurm_id(record: dict, job_dir: Optional[Path] = None) -> Optional[str]:
    if not record:
        return _hydra_job_id(job_dir) if job_dir is not None else None
    s = ((record or {}).get("environment") or {}).get("slurm") or {}
    if s.get("SLURM_ARRAY_JOB_ID") and s.get("SLURM_ARRAY_TASK_ID") is not None:
        return f"{s['SLURM_ARRAY_JOB_ID']}_{s['SLURM_ARRAY_TASK_ID']}"
    return s.get("SLURM_JOB_ID")


def sacct_states(job_ids: Sequence[str], *, queue: bool = False) -> dict[str, str]:
    """``{job id: state}`` from ``sacct`` (or, ``queue=True``, from ``squeue``, which lists each
    pending array task on its own line); empty when there is no SLURM here."""
    ids = [i for i in job_ids if i]
    cmd = (["squeue", "-h", "-r", "-o", "%i|%T"] if queue else ["sacct", "-X", "-n", "-P", "-o", "JobID,State"])
    if not ids or not shutil.which(cmd[0]):
        return {}
    try:
        r = subprocess.run([*cmd, "-j", ",".join(ids)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in r.stdout.splitlines() if r.returncode == 0 else []:
        job, _, state = line.partition("|")
        out[job.strip()] = state.split()[0] if state.strip() else ""
    return out


def _still_running(job: Job, slurm_state: Optional[str]) -> Optional[bool]:
    """True/False when it can be known, None when not (another host, no sacct). SLURM's word
    first; else the process on this host, which :func:`load_job` already found alive for a job
    it calls running."""
    if slurm_state:
        return slurm_state in SLURM_ACTIVE
    return True if job.state == "running" else recorded_process_alive(job.result or {})


def _seconds_since(iso: Optional[str]) -> Optional[float]:
    try:
        return round(time.time() - datetime.fromisoformat(str(iso)).timestamp(), 1)
    except (TypeError, ValueError):
        return None


def _was_written_since(job_dir: Path, since: float) -> bool:
    """The job took part in the launch that started at ``since`` (Hydra rewrote its .hydra/)."""
    paths = [job_dir / ".hydra" / "overrides.yaml", job_dir / "results.json"]
    return any(p.is_file() and p.stat().st_mtime >= since for p in paths)


def sweep_rows(sweep_dir: Path, *, since: Optional[float] = None, use_sacct: bool = True) -> list[JobRow]:
    """One row per job dir. With ``since`` (a launch's start time), only the jobs of that launch,
    and ok jobs that had finished before it (resume=auto skipped them) are ``skipped``."""
    sweep = Path(sweep_dir)
    jobs = [load_job(d, sweep) for d in find_job_dirs(sweep)]
    unstarted = _not_started(sweep, jobs)
    if since is not None:
        jobs = [j for j in jobs if _was_written_since(j.path, since)]
    jobs += unstarted
    ids = {j.name: _slurm_id(j.result, j.path) for j in jobs} if use_sacct else {}
    slurm = sacct_states(list(ids.values())) if use_sacct else {}
    keys = swept_keys(jobs, seed_keys=())
    rows = []
    for j in jobs:
        rec = j.result or {}
        sid = ids.get(j.name)
        shown = parse_overrides(j.overrides or [])
        row = JobRow(j.name, j.path, j.state, run_wall_s(rec), sid, slurm.get(sid or ""),
                     " ".join(f"{k}={shown[k]}" for k in keys if k in shown), j.problem)
        if j.state == "missing" and row.slurm_state in SLURM_ACTIVE:
            row.state, row.error = "starting", ""  # the SLURM job runs, results.json comes soon
        if j.state in ("interrupted", "running") and rec.get("status") == "running":
            alive = _still_running(j, row.slurm_state)
            row.duration_s = _seconds_since(rec.get("started_at"))
            if alive is not False:
                row.state = "running"
                row.error = "" if alive else "running? (started on another host; no sacct to ask)"
            elif j.state == "running":  # SLURM says the job ended, though its pid is alive here (reused)
                row.state, row.error = "interrupted", "results.json still says running: killed before it finished"
        if j.state == "ok" and since is not None:
            done = rec.get("finished_at")
            try:
                if done and datetime.fromisoformat(done).timestamp() < since:
                    row.state = "skipped"
            except ValueError:
                pass
        rows.append(row)
    if use_sacct and since is None:
        queued = _queued_rows(sweep, {r.slurm_id for r in rows})
        if queued:  # submitit submits a whole array at once: what SLURM queues is what has not started
            rows = [r for r in rows if r.state != "not started"] + queued
    return rows


def _not_started(sweep: Path, jobs: Sequence[Job]) -> list[Job]:
    """The jobs the sweep defines (``tunelab.ops.sweepdir``: its grid, from the last launch's
    record) that no job dir holds: never started (an interrupted sweep, a lost array task)."""
    from tunelab.ops.sweepdir import defined_jobs, read_definition

    defn = read_definition(sweep)
    defined = (defined_jobs(defn) if defn else None) or []
    have = {frozenset(j.overrides) for j in jobs if j.overrides is not None}
    return [Job(f"#{num}", sweep / str(num), "not started", overrides,
                problem="defined by the sweep, never started")
            for num, overrides in enumerate(defined) if frozenset(overrides) not in have]


def _queued_rows(sweep: Path, seen: set) -> list[JobRow]:
    """SLURM jobs of the sweep (``.submitit/<job id>/``) that have no job dir yet: queued or
    starting. Only sacct knows them; without it they are not listed."""
    sub = sweep / ".submitit"
    ids = sorted(d.name for d in sub.iterdir() if d.is_dir() and d.name not in seen) if sub.is_dir() else []
    states = sacct_states(ids, queue=True)
    return [JobRow(f".submitit/{i}", sub / i, "queued" if states[i] == "PENDING" else "starting",
                   slurm_id=i, slurm_state=states[i])
            for i in ids if states.get(i) in SLURM_ACTIVE]


def summary_line(rows: Sequence[JobRow]) -> str:
    """``4 jobs: 2 ok, 1 skipped (already ok), 1 failed, ...; failed: <dirs>``."""
    count = {s: sum(r.state == s for r in rows) for s in
             ("ok", "skipped", "failed", "interrupted", "running", "queued", "starting", "missing", "corrupt",
              "not started")}
    parts = [f"{n} {s}" + (" (already ok)" if s == "skipped" else "") for s, n in count.items()
             if n or s in ("ok", "failed")]
    bad = [str(r.path) for r in rows if r.state in NOT_OK]
    return f"{len(rows)} jobs: " + ", ".join(parts) + (f"; not ok: {' '.join(bad)}" if bad else "")


def format_table(rows: Sequence[JobRow], width: int = 60) -> str:
    """A plain-text table (no colours: it goes to logs and mails too)."""
    head = ("job", "state", "slurm", "duration", "swept", "error")
    body = [(r.name, r.state, f"{r.slurm_id} {r.slurm_state}" if r.slurm_state else (r.slurm_id or "-"),
             hms(r.duration_s), r.overrides or "-", (r.error or "")[:width]) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in (head, *body)]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep_dir", help="a sweep dir (hydra.sweep.dir) or a single run's dir")
    parser.add_argument("--no-sacct", action="store_true", help="do not ask SLURM's sacct for job states")


def run(args: argparse.Namespace) -> int:
    """Print the table and the summary; exit 0 when every job is ok (or skipped), 1 when some
    are not (yet) ok, 2 when the dir holds no jobs."""
    sweep = Path(args.sweep_dir).expanduser()
    rows = sweep_rows(sweep, use_sacct=not args.no_sacct) if sweep.is_dir() else []
    if not rows:
        import sys

        why = ("no job dirs in '{}' (no results.json or .hydra/overrides.yaml below it)" if sweep.is_dir() else
               "'{}' is not a sweep dir (it does not exist or is a file): give the dir a sweep wrote "
               "(hydra.sweep.dir, e.g. multirun_outputs/<date>/<time>)")
        print(f"tunelab status: error: {why.format(sweep)}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(summary_line(rows))
    from tunelab.tune_progress import progress_lines

    for line in progress_lines(sweep, rows):  # a tuning study: where each arm stands
        print(line)
    return 0 if all(r.state in ("ok", "skipped") for r in rows) else 1
