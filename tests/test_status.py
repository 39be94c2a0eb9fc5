"""``tunelab status DIR``: each job's state from its files, running vs killed told apart by pid."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from tunelab import cli


def _job(sweep: Path, name: str, status=None, pid=None, **extra) -> Path:
    d = sweep / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(f"- seed={name}\n")
    if status:
        rec = {"status": status, "seed": int(name), "overrides": [f"seed={name}"], "metrics": {},
               "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 75.0 if status != "running" else None,
               "environment": {"host": socket.gethostname(), "pid": pid}, **extra}
        (d / "results.json").write_text(json.dumps(rec))
    return d


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_status_table_tells_running_from_killed(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    _job(sweep, "0", "ok")
    _job(sweep, "1", "failed", error={"type": "ConfigError", "message": "optim.lr=-1 is below 0"})
    # this very process: alive (its record written after it started, as a job's is)
    _job(sweep, "2", "running", pid=os.getpid(), started_at=datetime.now(timezone.utc).isoformat())
    _job(sweep, "3", "running", pid=_dead_pid())  # gone: killed before it finished
    _job(sweep, "4")  # died before results.json
    assert cli.main(["status", str(sweep), "--no-sacct"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["job", "state", "slurm", "duration", "swept", "error"]
    rows = {line.split()[0]: line.split()[1] for line in out[1:-1]}
    assert rows == {"0": "ok", "1": "failed", "2": "running", "3": "interrupted", "4": "missing"}
    assert "0:01:15" in out[1] and "ConfigError: optim.lr=-1 is below 0" in out[2]
    assert "still says running" in out[4]
    assert out[-1] == (f"5 jobs: 1 ok, 1 failed, 1 interrupted, 1 running, 1 missing; not ok: "
                       f"{sweep / '1'} {sweep / '3'} {sweep / '4'}")


def test_status_of_an_all_ok_sweep_exits_0_and_an_empty_dir_2(tmp_path, capsys):
    _job(tmp_path / "sweep", "0", "ok")
    assert cli.main(["status", str(tmp_path / "sweep"), "--no-sacct"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 jobs: 1 ok, 0 failed"
    (tmp_path / "empty").mkdir()
    assert cli.main(["status", str(tmp_path / "empty")]) == 2
    assert "no job dirs" in capsys.readouterr().err


def test_status_shows_a_resumed_runs_wall_time_over_every_attempt(tmp_path, capsys):
    # killed after 225 s, resumed from that checkpoint, its last attempt took 75 s (duration_s):
    # the run took 300 s (cost.wall_s), and that is what status shows; a record without cost.wall_s
    # (written before it was recorded) still shows duration_s
    _job(tmp_path / "sweep", "0", "ok", cost={"wall_s": 300.0, "wall_s_before_resume": 225.0})
    _job(tmp_path / "sweep", "1", "ok")
    assert cli.main(["status", str(tmp_path / "sweep"), "--no-sacct"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["0", "ok", "-", "0:05:00"]
    assert out[2].split()[:4] == ["1", "ok", "-", "0:01:15"]
