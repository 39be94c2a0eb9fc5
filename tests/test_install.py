"""A non-editable install runs from any directory: the configs ship inside the package."""

from __future__ import annotations

import pytest

import os
import subprocess
import sys

from conftest import FAST, ROOT, load_results


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_pip_install_then_train_from_another_directory(tmp_path):
    import shutil

    # A copy of what a source distribution holds (setuptools builds in the source tree).
    src = tmp_path / "src_copy"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("conf", "src"):  # src/tunelab/conf stays a link to conf/
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = tmp_path / "site"
    # --no-deps: the dependencies are this environment's; only tunelab itself is installed anew.
    build = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                            "--no-compile", "--target", str(target), str(src)],
                           capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    assert (target / "tunelab" / "conf" / "config.yaml").is_file()
    assert (target / "tunelab" / "conf" / "method" / "finetune.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(target))
    code = "import sys, tunelab; print(tunelab.__file__); from tunelab.app import main; main()"
    r = subprocess.run([sys.executable, "-c", code, *FAST, "curriculum=custom",
                        "curriculum.stages=[tweets_sentiment]", "curriculum.baselines=false",
                        "curriculum.max_train_samples=16", "curriculum.max_eval_samples=8",
                        f"hydra.run.dir={work}/run"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.splitlines()[0].startswith(str(target))  # the installed copy ran, not the checkout
    rec = load_results(work / "run" / "results.json")
    # a curriculum composes its stages' data configs from the installed package's conf/
    assert rec["status"] == "ok" and rec["method"] == "curriculum"
