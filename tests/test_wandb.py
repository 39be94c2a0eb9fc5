"""The real wandb client, offline: what a sweep's W&B runs hold, read back from their files.

wandb (0.31) writes an offline run as ``<job dir>/wandb/offline-run-<time>-<id>/run-<id>.wandb``,
a LevelDB-style log of protobuf ``Record``s (run, config, history, summary, ...). The reader
below is independent of tunelab: it follows the format (7-byte file header ``:W&B`` + magic +
version; 32 KiB blocks of chunks with a 7-byte header: crc32, length, type FULL/FIRST/MIDDLE/LAST).
"""

from __future__ import annotations

import json
import signal
import time
import struct
from pathlib import Path

import pytest

from conftest import FAST, load_results, run_cli

pytest.importorskip("wandb")

WANDB = [a for a in FAST if not a.startswith("logger=")] + ["logger=wandb", "logger.mode=offline"]
BLOCK = 32768
LONG = "x" * 70  # notes=<70 chars> is a 76-character override: too long for a W&B tag


def wandb_records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        buf += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def read_run(run_file: Path) -> dict:
    """run id, group, job type, tags, config, history rows and the final summary of one run file."""
    out = {"config": {}, "history": [], "summary": {}}
    for rec in wandb_records(run_file):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out.update(id=r.run_id, group=r.run_group, job_type=r.job_type, tags=list(r.tags))
            out["config"].update({i.key: json.loads(i.value_json) for i in r.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                   for i in rec.summary.update})
    return out


def _runs(job_dir: Path) -> list[Path]:
    return sorted(job_dir.glob("wandb/offline-run-*/run-*.wandb"))


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_offline_sweep_runs_carry_group_job_type_swept_tags_history_and_summary(tmp_path):
    r = run_cli(["-m", *WANDB, f"notes=short,{LONG}", "freeze=none", "trainer.log_every_n_steps=1"], tmp_path,
                env={"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb_dir")})
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    assert "anonymous" not in out.lower(), out[-2000:]
    from tunelab.loggers import wandb_run_id

    sweep = tmp_path / "sweep"
    for job, tags in (("0", ["notes=short"]), ("1", [])):
        res = load_results(sweep / job / "results.json")
        files = _runs(sweep / job)
        assert len(files) == 1, files
        run = read_run(files[0])
        assert f"W&B run {run['id']} is offline, saved in {files[0].parent}; upload it with: wandb sync " \
               f"{files[0].parent}" in out
        assert run["id"] == wandb_run_id(res["identity"], sweep / job)
        assert run["group"] == f"{tmp_path.name}_sweep" and run["job_type"] == "seq_cls"
        assert run["tags"] == tags  # freeze is not swept, the seed never a tag, the long value too long
        assert run["config"]["optim"]["lr"] == res["config"]["optim"]["lr"]
        assert run["config"]["data"]["tokens_column"] == "tokens"  # not scrubbed
        steps = [h["trainer/global_step"] for h in run["history"] if "train/loss_step" in h]
        assert steps == [0, 1, 2, 3]  # 64 examples / batch 16, logged every step
        assert any("val/loss" in h for h in run["history"]) and run["summary"]["trainer/global_step"] == 4
        assert run["summary"]["status"] == "ok"
        assert run["summary"]["test/acc"] == pytest.approx(res["metrics"]["test/acc"])
        assert run["summary"]["test/f1_macro"] == pytest.approx(res["metrics"]["test/f1_macro"])
    assert load_results(sweep / "1" / "results.json")["config"]["notes"] == LONG


def _services_of(wandb_dir: Path) -> list[int]:
    """PIDs of live processes whose environment names this WANDB_DIR (the killed job's service)."""
    out = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"WANDB_DIR={wandb_dir}".encode() in env.read_bytes():
                out.append(int(env.parent.name))
        except OSError:
            continue
    return out


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_a_killed_and_resumed_job_continues_its_own_wandb_run(tmp_path):
    from tunelab.loggers import wandb_run_id

    args = [*WANDB, "optim.epochs=2", "resume=auto", "resume.name=w", "resume.every_n_steps=2",
            f"hydra.run.dir={tmp_path / 'job'}"]
    # WANDB_SERVICE="": each job starts its own W&B service. An earlier in-process W&B test of this
    # pytest worker leaves its service's address in os.environ; jobs inheriting it would share that
    # service, which still holds the killed job's run id ("run ID ... is in use").
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path / "wandb_dir"), "WANDB_SERVICE": ""}
    r = run_cli(args, tmp_path, env={**env, "TUNELAB_FAULT_SIGKILL_AT_STEP": "5"})
    assert r.returncode == -signal.SIGKILL, r.stderr[-3000:]
    # The killed job's own W&B service outlives it until it notices its parent is gone: wait.
    for _ in range(60):
        if not _services_of(tmp_path / "wandb_dir"):
            break
        time.sleep(0.5)
    r = run_cli(args, tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    files = _runs(tmp_path / "job")
    # (the killed process had no time to flush its records: only its run dir's name has the id)
    ids = {p.parent.name.rsplit("-", 1)[1] for p in files}
    second = read_run(files[-1])
    assert len(files) == 2 and ids == {second["id"]}  # one W&B run: `wandb sync` continues it
    assert second["id"] == wandb_run_id(load_results(tmp_path / "job" / "results.json")["identity"], tmp_path / "job")
    assert second["summary"]["status"] == "ok" and second["summary"]["trainer/global_step"] == 8
