"""bench/: the harness's statistics and load verdict (hand-computed), and a tiny smoke run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import harness as H  # noqa: E402


def _runs():
    ok = dict(rc=0, foreign_cores=0.1)
    return {"A": [dict(ok, samples_per_s=10.0), dict(ok, samples_per_s=14.0), dict(ok, samples_per_s=12.0)],
            "C": [dict(ok, samples_per_s=30.0), dict(ok, samples_per_s=36.0), dict(rc=1, samples_per_s=None)]}


def test_summary_and_ratio_range():
    s = H.summarize(_runs(), "samples_per_s")
    assert s["A"] == {"median": 12.0, "min": 10.0, "max": 14.0, "values": [10.0, 14.0, 12.0], "n": 3}
    assert s["C"]["median"] == 33.0 and s["C"]["n"] == 2          # the failed repeat is left out
    r = H.ratio(s, "C", "A")
    assert r == pytest.approx({"value": 33 / 12, "low": 30 / 14, "high": 36 / 10})


def test_verdict_flags_load_foreign_work_and_failures():
    quiet = {"A": [dict(rc=0, foreign_cores=0.05)]}
    assert H.load_verdict(0.2, quiet)["final"] is True
    v = H.load_verdict(0.9, quiet)
    assert not v["final"] and "load1 0.90" in v["reasons"][0]
    v = H.load_verdict(0.1, {"A": [dict(rc=0, foreign_cores=0.6)]})
    assert not v["final"] and "0.60 cores" in v["reasons"][0]
    v = H.load_verdict(0.1, _runs())
    assert not v["final"] and v["reasons"] == ["runs failed: C"]


def test_foreign_cores_of_an_idle_child_is_small():
    """A child that only sleeps: whatever busy CPU the machine shows is foreign, and measured."""
    r = H.run_child([sys.executable, "-c", "import time, json; time.sleep(1); print(json.dumps({'x': 1}))"])
    assert r["rc"] == 0 and r["x"] == 1 and r["process_wall_s"] >= 1.0
    assert r["foreign_cores"] is not None and 0 <= r["foreign_cores"] <= H.machine()["cpu_count"]


def test_smoke_bf16_suite_writes_json(tmp_path):
    out = tmp_path / "res"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "bf16", "--only", "C32,C16",
                        "--model", "tiny", "--steps", "2", "--warmup", "1", "--repeats", "1",
                        "--max-train-samples", "64", "--batch-size", "16", "--cache-dir", str(tmp_path / "c"),
                        "--name", "smoke"], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "TUNELAB_BENCH_RESULTS": str(out)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = json.loads((out / "smoke.json").read_text())
    assert set(res["summary"]) == {"C32", "C16"} and all(s["n"] == 1 for s in res["summary"].values())
    assert res["runs"]["C16"][0]["precision"] == "bf16-mixed" and res["runs"]["C32"][0]["precision"] == "32-true"
    assert res["ratios"]["C16/C32"]["value"] > 0 and isinstance(res["verdict"]["final"], bool)
