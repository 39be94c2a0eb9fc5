"""Guarded dirs, interrupts and fast answers (issue 23): one process per job dir, one sweep per
sweep dir, Ctrl-C/SIGTERM recorded as interrupted and resumable, every job of a sweep listed by
``tunelab status``, and config answers given before Lightning/torch/transformers are imported."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FAST, ROOT, load_results

# Slow training steps (tunelab.ops.faults.SlowFirstAllocation): a job that is still training
# when the test acts on it; the sleep changes no number the job computes.
SLOW = {"TUNELAB_FAULT_SLOW_STEP_S": "0.4"}


def _start(args, cwd, env=None):
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, timeout=240, what=""):
    t0 = time.time()
    while not pred():
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)


def _status(path: Path):
    try:
        return load_results(path)["status"]
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------ the job dir lock


def test_a_held_job_dir_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
    from tunelab.ops.lock import LOCK_NAME, JobDirBusy, JobLock

    held = JobLock(tmp_path)
    held.acquire()
    with pytest.raises(JobDirBusy) as info:  # flock: another open file, even in this process
        JobLock(tmp_path).acquire()
    msg = str(info.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in msg and "\n" not in msg
    held.release()
    assert not (tmp_path / LOCK_NAME).exists()

    # a process that died holding it left the file (SIGKILL: no cleanup); its lock is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": pid, "started_at": "x"}))
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        lock = JobLock(tmp_path)
        lock.acquire()
    assert f"taking over the lock of pid {pid} on this host" in caplog.text
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_concurrent_runs_sigterm_and_resume(tmp_path, compose, caplog):
    """One name, two processes: the second exits 2 at once naming the first; SIGTERM ends the
    first within seconds as interrupted (exit 143); resume=auto then continues it to ok (in this
    process: the same run() train.py calls)."""
    run_dir = tmp_path / "job"
    args = [*FAST, "resume=auto", "resume.every_n_steps=1", f"hydra.run.dir={run_dir}"]
    first = _start(args, tmp_path, {"TUNELAB_FAULT_SLOW_STEP_S": "2"})  # 4 steps: time to act
    try:
        _wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file() or first.poll() is not None,
                  what="the first run's first checkpoint")
        assert first.poll() is None, first.communicate()[1][-3000:]
        t0 = time.time()
        second = subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-3000:]
        assert f"another process is training in {run_dir} (pid {first.pid} on host {socket.gethostname()}" \
            in second.stderr
        assert time.time() - t0 < 60 and "Traceback" not in second.stderr
        assert _status(run_dir / "results.json") == "running"  # the second wrote nothing

        first.send_signal(signal.SIGTERM)
        t0 = time.time()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 143, err[-3000:]
        assert time.time() - t0 < 20
    finally:
        if first.poll() is None:
            first.kill()
    rec = load_results(run_dir / "results.json")
    assert rec["status"] == "interrupted" and rec["error"]["signal"] == "SIGTERM", rec["error"]
    assert "resume=auto" in rec["error"]["message"] and "interrupted by SIGTERM" in err
    assert not (run_dir / ".tunelab.lock").exists()

    from tunelab.run import RunContext, run

    with caplog.at_level(logging.INFO, logger="tunelab"):
        rec = run(compose(args[:-1]), RunContext(out_dir=run_dir))
    assert f"resume=auto: continuing from {run_dir / 'checkpoints' / 'last.ckpt'}" in caplog.text
    assert rec["status"] == "ok" and load_results(run_dir / "results.json")["status"] == "ok"


# ------------------------------------------------------------------ sweeps: interrupt, status, dirs


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_ctrl_c_on_a_sweep_records_the_job_prints_the_summary_and_status_lists_the_rest(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    p = _start(["-m", *FAST, "seed=0,1,2", f"hydra.sweep.dir={sweep}"], tmp_path, SLOW)
    try:
        _wait_for(lambda: _status(sweep / "0" / "results.json") == "running" or p.poll() is not None,
                  what="job 0 to start")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err[-3000:]
    assert f"[tunelab] sweep {sweep}: 3 jobs: 0 ok, 0 failed, 1 interrupted, 2 not started" in out, out[-2000:]
    rec = load_results(sweep / "0" / "results.json")
    assert rec["status"] == "interrupted" and rec["error"]["signal"] == "SIGINT"
    assert "Traceback" not in err

    from tunelab import cli

    assert cli.main(["status", str(sweep), "--no-sacct"]) == 1
    table = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in table[1:-1]}
    assert set(rows) == {"0", "#1", "#2"}, table
    assert "interrupted" in rows["0"] and "not started" in rows["#1"] and "seed=2" in rows["#2"]


def test_a_sweep_dir_holding_another_sweep_is_refused_and_left_as_it_was(tmp_path):
    from tunelab.ops.sweepdir import DEFINITION, check_sweep_dir
    from tunelab.errors import ConfigError

    foreign = tmp_path / "study"
    (foreign / "0").mkdir(parents=True)
    (foreign / "0" / "results.json").write_text('{"status": "ok", "metrics": {"test/acc": 0.9}}')
    (foreign / "report.md").write_text("# someone's report\n")
    before = {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()}
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", *FAST, "seed=0,1",
                        f"hydra.sweep.dir={foreign}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert f"error: hydra.sweep.dir={foreign} is not empty and holds no tunelab sweep (0, report.md)" in r.stderr
    assert {p: p.read_bytes() for p in foreign.rglob("*") if p.is_file()} == before

    # a recorded sweep: the same study (grown, reordered) is let in, another one is not
    d = {"sweeper": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {},
         "task_overrides": ["freeze=none,all", "seed=0,1", "optim.lr=3e-5", "resume=auto", "resume.name=x"]}
    (foreign / DEFINITION).write_text(json.dumps(d))
    grown = dict(d, task_overrides=["seed=range(5)", "freeze=all,none,last2", "optim.lr=3e-5", "data.split_seed=1,2"])
    check_sweep_dir(foreign, grown)  # logger/resume are bookkeeping; swept keys may change
    for changed, said in ((["freeze=none,all", "seed=0,1", "optim.lr=1e-4"], "optim.lr=3e-5 there, optim.lr=1e-4 here"),
                          (["freeze=none,all", "seed=0,1"], "optim.lr=3e-5 there, optim.lr=<not set> here")):
        with pytest.raises(ConfigError, match=f"holds another sweep \\({said}\\)"):
            check_sweep_dir(foreign, dict(d, task_overrides=changed))


def test_report_on_a_parent_of_several_sweeps_names_them_instead_of_merging(tmp_path, capsys):
    from tunelab.ops.sweepdir import DEFINITION
    from tunelab.report import cli as report_cli

    for name in ("a", "b"):
        (tmp_path / name / "0").mkdir(parents=True)
        (tmp_path / name / DEFINITION).write_text("{}")
        (tmp_path / name / "0" / "results.json").write_text("{}")
    assert report_cli.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"'{tmp_path}' is not a sweep but holds 2 sweeps" in err and f"{tmp_path / 'a'} {tmp_path / 'b'}" in err


# ------------------------------------------------------------------ fast answers, help, one sentence

_PROBE = """
import json, sys
from hydra.core.global_hydra import GlobalHydra
from tunelab.app import main
out = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["train.py", *args]
    GlobalHydra.instance().clear()
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    heavy = [m for m in ("torch", "lightning", "transformers", "datasets") if m in sys.modules]
    out.append({"code": code, "heavy": heavy})
print("PROBE" + json.dumps(out))
"""


def test_config_errors_refusals_and_resume_skips_answer_before_torch_is_imported(tmp_path, compose):
    """Not a timing test: what makes these answers fast is that nothing heavy is imported."""
    from tunelab.ops.identity import job_identity

    done = tmp_path / "done"
    skip = [*FAST, "resume=auto", f"hydra.run.dir={done}"]
    done.mkdir()
    (done / "results.json").write_text(json.dumps({"status": "ok", "identity": job_identity(compose(skip)),
                                                   "metrics": {"test/acc": 0.5}, "duration_s": 1.0}))
    cases = [[*FAST, "optim.lr=-1", f"hydra.run.dir={tmp_path}/a"],
             [*FAST, "method=sparse", "freeze=all", f"hydra.run.dir={tmp_path}/b"], skip,
             [*FAST, "data=csv", f"data.path={tmp_path}/nope.csv", f"hydra.run.dir={tmp_path}/c"],
             [*FAST, "data=csv", f"data.path={tmp_path}/ok.csv", f"data.val_path={tmp_path}/noval.csv",
              f"hydra.run.dir={tmp_path}/d"]]
    (tmp_path / "ok.csv").write_text("text,label\ngood,pos\nbad,neg\n")
    r = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(cases)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300, env=dict(os.environ))
    probe = json.loads(r.stdout.split("PROBE", 1)[1])
    assert [p["code"] for p in probe] == [2, 2, 0, 2, 2], r.stderr[-3000:]
    assert all(p["heavy"] == [] for p in probe), probe
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: optim.lr=-1.0 must be > 0.",
                      "error: freeze=all has no effect with method=sparse (it trains no encoder layers): drop "
                      "freeze= (for a frozen encoder + classifier use method=features or freeze=all).",
                      f"error: data.path: file not found: '{tmp_path}/nope.csv' (relative paths are taken from "
                      f"{tmp_path}).",
                      f"error: data.val_path: file not found: '{tmp_path}/noval.csv' (relative paths are taken from "
                      f"{tmp_path})."], errors
    assert load_results(tmp_path / "a" / "results.json")["status"] == "failed"


def test_help_says_what_tunelab_is_the_common_commands_and_the_groups(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--help"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout
    assert text.startswith("tunelab: studies of BERT-family fine-tuning")
    for said in ("python train.py data=", "python train.py -m freeze=none,all", "experiment=freeze_study",
                 "tunelab report", "tunelab status", "README.md", "docs/RESULTS_SCHEMA.md",
                 "method: adapt, curriculum, features, finetune, sparse, zeroshot", "freeze: all,"):
        assert said in text, said
    assert text.index("tunelab status") < text.index("== Configuration groups") and "_schema" not in text


def test_the_help_group_list_is_built_once_per_search_path(tmp_path, monkeypatch):
    # OmegaConf evaluates the help template's ${tunelab_help_groups:} on every compose, and walking
    # every group costs ~0.5 s: it is listed once per search path, and another path gets its own list
    import shutil

    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    from tunelab import config

    config.register_configs()
    calls = []
    real = ConfigLoaderImpl.list_groups
    monkeypatch.setattr(ConfigLoaderImpl, "list_groups", lambda self, parent: calls.append(parent) or real(self, parent))
    monkeypatch.setattr(config, "_HELP_GROUPS", {})
    conf = ROOT / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        first = config.help_groups()
        walked = len(calls)
        assert walked > 5 and config.help_groups() == first and len(calls) == walked
    freezes = ", ".join(sorted(p.stem for p in (conf / "freeze").glob("*.yaml")))
    assert f"\nfreeze: {freezes}\n" in first and "_schema" not in first
    shutil.copytree(conf, tmp_path / "conf")
    (tmp_path / "conf" / "freeze" / "zz_mine.yaml").write_text("name: none\n")
    with initialize_config_dir(config_dir=str(tmp_path / "conf"), version_base="1.3"):
        other = config.help_groups()
    assert len(calls) > walked and f"freeze: {freezes}, zz_mine\n" in other


def test_inputs_that_used_to_end_in_a_traceback_are_one_sentence(tmp_path, compose):
    from tunelab.errors import ConfigError
    from tunelab.overrides import schema_option_error
    from tunelab.run import _message
    from tunelab.validation import validate

    assert schema_option_error(["method=finetune_schema"]).startswith(
        "method=finetune_schema is the schema the method configs are checked against, not a method: "
        "choose method=finetune")
    only_config = tmp_path / "only_config"
    only_config.mkdir()
    (only_config / "config.json").write_text("{}")
    for folder, missing in ((only_config, "no weights (model.safetensors or pytorch_model.bin), no tokenizer"),
                            (tmp_path, "no config.json, no weights")):
        with pytest.raises(ConfigError, match=re.escape(f"model.name={folder} is a folder but not a whole Hugging "
                                                        f"Face model: it has {missing}")):
            validate(compose([*FAST, f"model.name={folder}", "model.random_init=false"]))
    # the record of an exception without a message (the old NameError: _WHY)
    assert _message(SystemExit(1)) == "the process was made to exit (SystemExit, code 1) during the job"
    assert _message(KeyboardInterrupt()) == "KeyboardInterrupt (raised without a message)"


def test_an_sbatch_refusal_is_one_sentence(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: debug' >&2\nexit 1\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "-m", "hydra/launcher=slurm", *FAST, "seed=0,1",
                        f"hydra.sweep.dir={tmp_path}/sweep"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 2, r.stderr[-3000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "error: sbatch refused the sweep's jobs (sbatch: error: invalid partition specified: debug): fix the "
        "hydra.launcher setting it names (partition, timeout_min, mem_gb, cpus_per_task, gpus_per_node) and run "
        "the command again; nothing was submitted.")
    assert "Traceback" not in r.stderr


def test_a_signal_during_an_import_waits_for_the_import(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised half-way through an import leaves the module broken (numpy's
    lazy attributes then recurse forever); the handler re-sends the signal after the import."""
    import importlib
    import sys

    from tunelab.ops import interrupt

    (tmp_path / "probe_mod.py").write_text(
        "import sys\nfrom tunelab.ops.interrupt import _in_import\nINSIDE = _in_import(sys._getframe())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert importlib.import_module("probe_mod").INSIDE is True
    assert interrupt._in_import(sys._getframe()) is False
    sys.modules.pop("probe_mod", None)


def test_a_signal_whose_exception_was_swallowed_is_delivered_again(tmp_path):
    """CI once saw a Ctrl-C land while ``tokenizers`` called back into Python: the Interrupted
    became "Exception ignored in: ..." and the sweep ran on to exit 0. A ``__del__`` swallows an
    exception the same way (through sys.unraisablehook); the signal must still stop the process."""
    script = tmp_path / "swallow.py"
    script.write_text(
        "import os, signal, time\n"
        "from tunelab.ops import interrupt\n"
        "interrupt.install()\n"
        "class Swallows:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(10**6): pass  # the handler raises here, where nothing can catch it\n"
        "try:\n"
        "    Swallows()\n"
        "    time.sleep(20)\n"
        "    print('ran on')\n"
        "except interrupt.Interrupted:\n"
        "    print('stopped by', interrupt.received())\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.stdout.strip() == "stopped by SIGINT", (r.stdout, r.stderr[-2000:])
    assert "Exception ignored" not in r.stderr


def test_an_arm_without_its_experiment_is_one_sentence():
    from tunelab.overrides import arm_error

    msg = arm_error(["arm=bert_lora", "seed=1"])
    assert msg == ("arm=bert_lora is a study arm, placed by an experiment: add experiment=freeze_study (or "
                   "experiment=hart2020), or run the arm alone as +arm=bert_lora.")
    assert arm_error(["experiment=freeze_study", "arm=bert_lora"]) is None
    assert arm_error(["+arm=bert_lora"]) is None
