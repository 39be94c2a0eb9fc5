"""Faults: NaN loss, a failing job in a sweep (basic launcher and Optuna), disk full and
unwritable dirs, unsafe checkpoints, secrets. Nothing truncated, nothing written as ok."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

from conftest import FAST, load_results, run_cli

SECRETS = {"WANDB_API_KEY": "wandb-key-0123456789abcdef", "HF_TOKEN": "hf_TOKENabcdef0123456789",
           "OPENAI_API_KEY": "sk-not-a-real-key-42"}


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_sweep_with_nan_job_goes_on_reports_it_and_leaks_no_secrets(tmp_path):
    # lr=1e30 drives the weights to inf within a few steps: the loss becomes NaN.
    r = run_cli(["-m", *FAST, "logger=csv", "optim.grad_clip=0", "optim.lr=1e-4,1e30"], tmp_path,
                env=SECRETS)
    assert r.returncode == 1, r.stderr[-3000:]  # a job failed: the multirun says so
    ok = load_results(tmp_path / "sweep" / "0" / "results.json")
    bad = load_results(tmp_path / "sweep" / "1" / "results.json")
    assert ok["status"] == "ok"
    assert bad["status"] == "failed" and bad["error"]["type"] == "NonFiniteLossError"
    assert "non-finite training loss" in bad["error"]["message"] and "lower optim.lr" in bad["error"]["message"]
    assert "traceback" not in bad["error"]  # a user error: the message says it all
    report = (tmp_path / "sweep" / "report.md").read_text()
    assert "NonFiniteLossError" in report and "failed 1" in report
    # No credential from the environment in any file the sweep wrote (results, .hydra
    # configs, logs, CSV metrics, report).
    leaked = [(str(p), k) for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000
              for k, v in SECRETS.items() if v.encode() in p.read_bytes()]
    assert not leaked, leaked


def test_nan_loss_in_a_single_run_is_a_user_error(compose, tmp_path):
    from tunelab.ops.faults import NonFiniteLossError
    from tunelab.run import RunContext, run

    cfg = compose([*FAST, "optim.grad_clip=0", "optim.lr=1e30", "trainer.enable_checkpointing=false"])
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \((nan|inf)\) at step \d+"):
        run(cfg, RunContext(out_dir=tmp_path / "run"))
    res = load_results(tmp_path / "run" / "results.json")
    assert res["status"] == "failed" and res["error"]["type"] == "NonFiniteLossError"


def test_unwritable_output_dir_is_a_clear_error(compose, tmp_path):
    from tunelab.errors import TunelabError
    from tunelab.run import RunContext, run

    cfg = compose(FAST)
    if os.geteuid() == 0:
        bad = Path("/proc/tunelab-no-such-dir/run")  # not even root can create dirs in /proc
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        bad = ro / "run"
    with pytest.raises(TunelabError, match="cannot create the output dir .*Choose a writable dir"):
        run(cfg, RunContext(out_dir=bad))


def test_disk_full_leaves_no_truncated_results_file(tmp_path, monkeypatch):
    import tunelab.io
    import tunelab.results as results
    from tunelab.errors import TunelabError

    results.write_results(tmp_path, {"status": "running"})
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(tunelab.io.os, "fsync", full)
    with pytest.raises(TunelabError, match="No space left on device .*no partial file was left behind"):
        results.write_results(tmp_path, {"status": "ok", "metrics": {"x": 1.0}})
    # the previous complete file is still there, and no temp file
    assert load_results(tmp_path / "results.json") == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_disk_full_leaves_no_truncated_checkpoint(tmp_path, monkeypatch):
    import torch

    from tunelab.ops import checkpoints, resume

    io = checkpoints.AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "global_step": 1}, target)
    real_save = torch.save

    def save_then_fail(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(checkpoints.CheckpointWriteError, match=r"disk full.*no partial file was left behind"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "global_step": 2}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert io.load_checkpoint(target)["global_step"] == 1  # the old, complete checkpoint
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['TUNELAB_EVIL_MARKER']}",))


def test_checkpoints_are_loaded_with_weights_only(tmp_path, monkeypatch):
    import torch

    from tunelab.ops import checkpoints, resume

    marker = tmp_path / "pwned"
    monkeypatch.setenv("TUNELAB_EVIL_MARKER", str(marker))
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, evil)
    with pytest.raises(checkpoints.UnsafeCheckpointError, match="refusing to load .*evil.ckpt"):
        checkpoints.AtomicCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()
    # what Lightning writes (tensors, dicts, numbers, strings, the RNG states) loads fine
    state = {"state_dict": {"w": torch.ones(2)}, "callbacks": {"tunelab.ResumeState": {"rng": resume._rng_state()}}}
    checkpoints.AtomicCheckpointIO().save_checkpoint(state, tmp_path / "ok.ckpt")
    back = checkpoints.AtomicCheckpointIO().load_checkpoint(tmp_path / "ok.ckpt")
    resume._set_rng_state(back["callbacks"]["tunelab.ResumeState"]["rng"])


@pytest.mark.parametrize("model", ["tiny", "minilm", "distilbert", "bert_base"])
def test_trust_remote_code_is_off_unless_set(compose, model):
    assert compose([f"model={model}"]).model.trust_remote_code is False
    assert compose([f"model={model}", "model.trust_remote_code=true"]).model.trust_remote_code is True


def test_secret_looking_keys_are_scrubbed():
    from tunelab.io import scrub_secrets

    cfg = {"logger": {"api_key": "abc", "project": "p"}, "hub": {"HF_TOKEN": "hf_x", "password": ""},
           "list": [{"secret": "s"}]}
    assert scrub_secrets(cfg) == {"logger": {"api_key": "***", "project": "p"},
                                  "hub": {"HF_TOKEN": "***", "password": ""}, "list": [{"secret": "***"}]}


@pytest.mark.parametrize("key", ["token", "api_key", "apikey", "WANDB_API_KEY", "hf_token", "HF_TOKEN",
                                 "access_token", "auth-token", "password", "db_password", "secret",
                                 "client_secret", "aws_secret_key", "credentials"])
def test_credential_keys_are_scrubbed(key):
    from tunelab.io import scrub_secrets

    assert scrub_secrets({"a": {key: "value"}}) == {"a": {key: "***"}}


@pytest.mark.parametrize("key", ["tokens_column", "tokenizer", "label_all_tokens", "pad_token", "mask_token",
                                 "max_tokens", "token_budget", "secretary", "keyword", "monitor_key",
                                 "passage", "tags_column"])
def test_ordinary_keys_that_mention_tokens_or_keys_stay(key):
    from tunelab.io import scrub_secrets

    assert scrub_secrets({"a": [{key: "value"}]}) == {"a": [{key: "value"}]}


def test_token_classification_config_survives_scrubbing(compose):
    # a saved config must be able to rerun the study: nothing of a real token_cls config is masked
    from omegaconf import OmegaConf

    from tunelab.io import scrub_secrets

    cfg = OmegaConf.to_container(compose(["task=token_cls", "data=wnut_ner", "model=tiny", "model.tokenizer=bert-base-uncased"]), resolve=True)
    assert scrub_secrets(cfg) == cfg
    assert cfg["data"]["tokens_column"] == "tokens" and cfg["task"]["label_all_tokens"] is False
    assert cfg["model"]["tokenizer"] == "bert-base-uncased"


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_optuna_search_writes_best_config_and_survives_a_failing_trial(tmp_path):
    # warmup_ratio=1.5 fails validation at once: that trial is FAIL in Optuna and the search
    # goes on (max_failure_rate); the best of the others lands in optimization_results.yaml.
    # (Sweep overrides on the command line replace entries of the preset's search space.)
    fast = [a for a in FAST if not a.startswith("optim.batch_size")]  # a fixed value is not searched
    r = run_cli(["-m", *fast, "hparams_search=optuna", "hydra.sweeper.n_trials=3",
                 "optim.warmup_ratio=choice(0.0,1.5)",
                 "optim.batch_size=choice(16,32)"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optim.lr", "optim.batch_size", "optim.warmup_ratio", "freeze"}
    runs = [load_results(p) for p in sorted(sweep.glob("*/results.json"))]
    assert len(runs) == 3
    ok = [x for x in runs if x["status"] == "ok"]
    assert ok and best["best_params"]["optim.warmup_ratio"] == 0.0
    assert best["best_value"] == pytest.approx(max(x["metrics"]["val/f1_macro_best"] for x in ok))
    for x in runs:
        if x["config"]["optim"]["warmup_ratio"] == 1.5:
            assert x["status"] == "failed" and "optim.warmup_ratio=1.5" in x["error"]["message"]
    assert (sweep / "report.md").is_file()
