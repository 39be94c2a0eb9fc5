"""Batch jobs (stdout not a terminal) log a plain progress line every N steps and per validation."""

from __future__ import annotations

import csv
import re

import pytest

from conftest import FAST, run_cli

LINE = re.compile(r"\[tunelab\] progress: step (\d+)/(\d+) \((\d+)%\) epoch (\d+)/(\d+) loss ([\d.]+) "
                  r"samples/s ([\d.]+) ETA (\d+:\d\d:\d\d)")


def test_progress_lines_in_a_batch_log_match_the_logged_losses(tmp_path):
    # 64 examples / batch 16 = 4 steps per epoch, 2 epochs; a line every 3 steps: steps 3 and 6
    args = [a for a in FAST if not a.startswith(("logger=", "optim.epochs"))]
    r = run_cli([*args, "logger=csv", "optim.epochs=2", "trainer.log_every_n_steps=1",
                 "trainer.progress_every_n_steps=3", "optim.early_stopping_patience=null"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout + r.stderr
    lines = [LINE.search(x) for x in out.splitlines() if "progress: step" in x]
    assert [m.group(1, 2, 3, 4, 5) for m in lines] == [("3", "8", "38", "1", "2"), ("6", "8", "75", "2", "2")]
    assert all(float(m.group(7)) > 0 for m in lines)
    # the loss shown is the step's training loss, as the CSV logger recorded it (step index = step - 1)
    with open(tmp_path / "run" / "csv" / "metrics.csv", newline="") as f:
        logged = {int(row["step"]): float(row["train/loss_step"]) for row in csv.DictReader(f)
                  if row.get("train/loss_step")}
    for m in lines:
        assert float(m.group(6)) == pytest.approx(logged[int(m.group(1)) - 1], abs=5e-5)
    vals = [x for x in out.splitlines() if "[tunelab] validation: step" in x]
    assert len(vals) == 2 and "step 4/8 (50%) epoch 1/2 val/acc" in vals[0] and "val/loss" in vals[1]


def test_progress_lines_can_be_turned_off(tmp_path):
    r = run_cli([*FAST, "trainer.progress_every_n_steps=0"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "progress: step" not in r.stdout + r.stderr
