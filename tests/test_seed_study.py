"""The issue's done-when, on the tiny model: a crossed init x order sweep of two freeze arms writes
predictions per job and a report with every study section."""

from __future__ import annotations

import pytest

import json

from conftest import FAST


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
def test_crossed_seed_sweep_writes_predictions_and_study_report(cli, tmp_path):
    r = cli("-m", *FAST, "optim.lr=5e-3", "freeze=none,all", "init_seed=range(2)", "order_seed=range(2)")
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    jobs = sorted(p.parent for p in sweep.glob("*/results.json"))
    assert len(jobs) == 8 and all((j / "predictions.npz").is_file() for j in jobs)
    runs = [json.loads((j / "results.json").read_text()) for j in jobs]
    assert {(x["freeze"], x["init_seed"], x["order_seed"]) for x in runs} == {
        (f, i, o) for f in ("none", "all") for i in range(2) for o in range(2)}
    report = json.loads((sweep / "report.json").read_text())
    assert report["swept_keys"] == ["freeze"]  # the seeds are replicates, not groups
    assert set(report["metrics"]["test/acc"]["variance"]) == {"freeze=none", "freeze=all"}
    assert report["examples"]["pairs"][0]["seeds"] == "pooled (4 pairs)"
    md = (sweep / "report.md").read_text()
    for section in ("## What ran", "Hedges' g", "seeds/arm for 80% power", "Variance decomposition",
                    "Expected best score", "Seed ensembles and agreement", "Paired tests between groups"):
        assert section in md, section
    assert (sweep / "expected_max_test_acc.png").stat().st_size > 1000
