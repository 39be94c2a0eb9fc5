"""Shared fixtures: compose the real config (conf/) and run the real CLI.

Fast tests use ``model=tiny`` (a 2-layer random BERT built from the packaged model's config and
its real tokenizer); tests marked ``slow`` use the packaged model and data end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One compute thread per test process: `make test` runs two pytest workers on a 2-core machine,
# and most of a test's time is single-threaded start-up (importing transformers takes ~10 s here).
# With torch's default of one thread per core, two workers' OpenMP pools fight over the cores.
# Tests compare runs made under the same setting, so their assertions do not depend on it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# Overrides that make a CLI run take seconds: tiny model, few examples, no W&B.
FAST = ["model=tiny", "logger=none", "data.max_train_samples=64", "data.max_eval_samples=32",
        "optim.epochs=1", "optim.batch_size=16", "trainer.enable_progress_bar=false"]


# The longest tests (minutes: packaged model, SLURM, DDP, kill-and-resume, sweeps) go first, so
# that with two workers (pytest-xdist) the short ones fill in around them and both finish together.
_LONG_FILES = ("test_arms_learn.py", "test_end_to_end.py", "test_slurm.py", "test_resume.py", "test_ddp.py", "test_faults.py",
               "test_adaptive_sweeper.py", "test_tune_sweeper.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda it: 0 if it.nodeid.split("::")[0].endswith(_LONG_FILES) else 1)


def pytest_terminal_summary(terminalreporter):
    """The property suite's case count (tests/test_property_inputs.py records it per test as a
    user property, which pytest-xdist passes from its workers)."""
    n = sum(v for reports in terminalreporter.stats.values() for rep in reports
            for k, v in getattr(rep, "user_properties", ()) if k == "hypothesis_cases")
    if n:
        terminalreporter.write_line(f"property-based bad input (hypothesis): {n} generated cases checked")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Tokenisation/feature caches go to a per-session temp dir, never the user's ~/.cache.
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def compose():
    """compose(overrides) -> the DictConfig train.py would see."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tunelab.config import register_configs

    register_configs()

    def _compose(overrides=(), return_hydra_config=False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hcompose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)

    yield _compose
    GlobalHydra.instance().clear()


def run_cli(args, tmp_path, *, timeout=600, env=None, cwd=None):
    """Run ``python train.py ARGS`` as a user would; outputs go under tmp_path."""
    e = dict(os.environ, PYTHONUNBUFFERED="1")
    e.update(env or {})
    cmd = [sys.executable, str(ROOT / "train.py"), *args]
    if not any(a.startswith("hydra.run.dir") for a in args):
        cmd += [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]
    return subprocess.run(cmd, cwd=cwd or tmp_path, env=e, capture_output=True, text=True, timeout=timeout)


def load_splits(compose, *overrides):
    """The train/val/test splits a run of ``model=tiny`` + overrides would see (same code path)."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    cfg = compose(["model=tiny", *overrides])
    return make_splits(load_raw(cfg.data, cfg.task.name), cfg.data, cfg.task.name)


def load_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def cli(tmp_path):
    def _cli(*args, **kw):
        return run_cli(list(args), tmp_path, **kw)
    return _cli


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    """One tiny random-initialised Hugging Face folder per encoder family (tests/families.py),
    built once per test session (per worker under xdist): ``{family: FamilyFolder}``."""
    from families import build_all

    return build_all(tmp_path_factory.mktemp("families"))
