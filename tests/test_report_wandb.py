"""The report as one offline W&B run: job type 'report', the sweep's group, tables and plots on disk."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_report import make_sweep  # noqa: E402

from tunelab import report as rp


def test_report_run_offline_has_tables_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = make_sweep(tmp_path)
    import wandb

    from tunelab import cli

    seen, real_init = [], wandb.init
    monkeypatch.setattr(wandb, "init", lambda **kw: seen.append(kw) or real_init(**kw))
    assert cli.main(["report", str(sweep), "--metric", "test/acc", "--wandb"]) == 0
    assert len(seen) == 1 and seen[0]["job_type"] == "report" and seen[0]["group"] == "2025-01-01_12-00-00"
    assert seen[0]["mode"] == "offline"
    runs = list((sweep / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((sweep / "wandb").iterdir())
    tables = {p.name.split("_")[0]: json.loads(p.read_text()) for p in runs[0].rglob("*.table.json")}
    assert set(tables) >= {"summary", "tests"}
    summary = tables["summary"]
    groups = {row[summary["columns"].index("group")] for row in summary["data"]}
    assert groups == {"freeze=none", "freeze=last2", "freeze=all"}
    tests = tables["tests"]
    assert "g" in tests["columns"] and "seeds_needed" in tests["columns"] and len(tests["data"]) == 2 + 3
    assert list(runs[0].rglob("*.png")), "the box plot is logged as an image"


def test_sweep_end_logs_the_report_run_only_for_wandb_sweeps(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    from omegaconf import OmegaConf

    from tunelab.hydra_callbacks import ReportCallback

    monkeypatch.setenv("WANDB_MODE", "offline")
    sweep = make_sweep(tmp_path)
    cfg = {"hydra": {"sweep": {"dir": str(sweep)}},
           "logger": {"name": "csv", "project": "tunelab", "entity": None, "mode": "offline", "group": None}}
    ReportCallback(metrics=["test/acc"]).on_multirun_end(OmegaConf.create(cfg))
    assert (sweep / "report.md").is_file() and not (sweep / "wandb").exists()
    cfg["logger"]["name"] = "wandb"
    ReportCallback(metrics=["test/acc"]).on_multirun_end(OmegaConf.create(cfg))
    assert len(list((sweep / "wandb").glob("offline-run-*"))) == 1


def test_paired_table_from_predictions(tmp_path):
    from test_report_study import CELLS, _sweep

    from tunelab.report.wandb_run import tables

    rep = rp.build_report(_sweep(tmp_path / "s", CELLS), metrics=["test/acc"], paired_boot=50, write=False)
    cols, rows = tables(rep)["paired"]
    assert len(rows) == 1 and rows[0][:3] == ["freeze=all", "freeze=none", "pooled (6 pairs)"]
    pooled = rep.examples.pairs[0]
    assert rows[0][cols.index("test/acc:diff")] == pooled.diffs["test/acc"]["diff"]
    assert rows[0][cols.index("p")] == pooled.p
