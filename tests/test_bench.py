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


@pytest.mark.long  # a sweep, a pip install or a kill in subprocesses (15-40 s): make test-long (CI)
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


# =============================================================================== MFU (bench/flops.py)
import flops  # noqa: E402  (bench/ is on sys.path above)


def test_train_flops_by_hand():
    # h 4, FFN 8, 2 layers; steps over a batch of 2 sequences padded to 3 and one of 1 padded to 5:
    # tokens 2*3 + 5 = 11, sum of batch x len^2 = 2*9 + 25 = 43; P_layer = 4*16 + 2*4*8 = 128.
    # A layer's forward: 2*128*11 + 4*4*43 = 2816 + 688 = 3504.
    assert flops.layer_params(4, 8) == 128
    assert flops.train_flops(4, 8, 2, 11, 43) == 6 * 256 * 11 + 12 * 2 * 4 * 43 == 3 * 2 * 3504
    assert flops.train_flops(4, 8, 2, 11, 43, trained=1) == 3 * 3504 + 3504            # D0: frozen forward
    assert flops.train_flops(4, 8, 2, 11, 43, trained=1, frozen_computed=False) == 3 * 3504  # D1: cached


def test_train_flops_match_torchs_flop_counter_on_a_bert_step():
    """torch counts the matmuls a real forward + backward of a 2-layer BERT does (eager attention,
    no pooler): the formula's model FLOPs, exactly."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertModel

    conf = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                      vocab_size=50, attn_implementation="eager")
    model = BertModel(conf, add_pooling_layer=False)
    ids = torch.randint(0, 50, (3, 7), generator=torch.Generator().manual_seed(0))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids).last_hidden_state.sum().backward()
    assert counter.get_total_flops() == flops.train_flops(32, 48, 2, tokens=3 * 7, tokens_x_len=3 * 7 * 7)


def test_mfu_table_by_hand():
    runs = {"P32": [dict(rc=0, peak_flops_per_s=100e9, precision="32-true"),
                    dict(rc=0, peak_flops_per_s=120e9, precision="32-true")],
            "C32": [dict(rc=0, model_flops_per_s=30e9, precision="32-true", padding_fraction=0.2),
                    dict(rc=0, model_flops_per_s=50e9, precision="32-true", padding_fraction=0.2),
                    dict(rc=1, model_flops_per_s=None)],
            "C16": [dict(rc=0, model_flops_per_s=40e9, precision="bf16-mixed", padding_fraction=0.2)]}
    t = flops.mfu_table(runs, {"32-true": "P32", "bf16-mixed": "P16"})
    assert set(t) == {"C32", "C16"}
    assert t["C32"]["mfu"] == pytest.approx(40 / 110) and t["C32"]["mfu_range"] == pytest.approx([30 / 120, 50 / 100])
    assert t["C32"]["real_token_fraction"] == pytest.approx(0.8)
    assert t["C16"]["mfu"] is None and t["C16"]["model_gflops_per_s"] == pytest.approx(40)  # no bf16 peak run


def test_peak_gemm_smoke():
    r = flops.peak_gemm("float32", n=64, seconds=0.01, repeats=1)
    assert r["peak_flops_per_s"] > 0 and r["peak_op"] in ("mm", "linear") and r["gemm_n"] == 64


def test_peak_gemm_size_shrinks_only_for_emulated_bf16(monkeypatch):
    """Without bf16 units a 2048^3 bf16 product is emulated (~17 s each here): the PEAK variant
    times 512^3 instead and says so; with bf16 units, in fp32, or with --gemm-size given, n stays."""
    import tunelab.environment as env
    import variants

    seen = {}
    monkeypatch.setattr(flops, "peak_gemm", lambda dtype, n, s: seen.update(dtype=dtype, n=n) or {})
    cases = [([], "bf16-mixed", 0, 512, True), (["avx512_bf16"], "bf16-mixed", 0, 2048, False),
             ([], "bf16-mixed", 1024, 1024, True), ([], "32-true", 0, 2048, False)]
    for units, precision, size, want_n, emulated in cases:
        monkeypatch.setattr(env, "cpu_bf16_units", lambda units=units: units)
        args = variants.parser().parse_args(["--variant", "PEAK", "--precision", precision, "--gemm-size", str(size)])
        r = variants.run_variant(args)
        assert (seen["n"], r["bf16_emulated"]) == (want_n, emulated), (units, precision, size)
        assert seen["dtype"] == ("bfloat16" if precision == "bf16-mixed" else "float32")


def test_variant_flops_count_what_each_variant_trains():
    from types import SimpleNamespace as NS

    conf = NS(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    res = {"padded_tokens": 11, "padded_x_len": 43, "seconds": 2.0}
    last1 = NS(mode="last_n", n=1)
    assert flops.variant_flops(conf, "C", NS(mode="none"), res)["model_flops"] == 6 * 3504   # both layers train
    assert flops.variant_flops(conf, "D0", last1, res)["model_flops"] == 4 * 3504            # + frozen forward
    assert flops.variant_flops(conf, "D1", last1, res)["model_flops_per_s"] == 3 * 3504 / 2  # cached prefix
    assert flops.variant_flops(conf, "D0", NS(mode="gradual"), res) == {}
