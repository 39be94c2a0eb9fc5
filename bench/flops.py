"""Model FLOPs of a training step and the machine's peak matmul rate: an MFU for CPUs.

MFU (model FLOPs utilisation; Chowdhery et al. 2022, PaLM, appendix B) = the FLOPs a step must do
by the model's arithmetic, per second, over what the hardware's dense matmul can do. On a GPU the
peak is a datasheet figure; a CPU's depends on its cores, vector units (AVX-512, AMX), clocks
and the BLAS torch uses, so here it is measured: the best rate of a large square GEMM (``torch.mm`` or ``F.linear``) in the
step's precision (fp32, or bf16 for bf16-mixed autocast) with the same threads (:func:`peak_gemm`).

Model FLOPs of a step (:func:`train_flops`): per token and encoder layer the forward pass does
2 x P_layer (P_layer = 4 h^2 + 2 h i: Q, K, V, output and the two FFN matrices; biases and
LayerNorm are not matmuls) plus 4 h s for attention (Q K^T and attention x V over the s padded
positions of its sequence); backward costs twice the forward. So a layer that trains costs
3 x forward, a frozen layer that is computed costs 1 x forward (no gradients), and a frozen layer
read from the prefix cache costs nothing. With every layer training this is the usual
6 N tokens + 12 L h sum(s) (N = L P_layer, the non-embedding parameters). Embedding lookups,
pooler and classifier (one token per sequence) are left out. Padded tokens count: the hardware
computes them (``mfu``); ``real_token_fraction`` says how much of that was text.
"""

from __future__ import annotations

import time
from typing import Optional


def layer_params(hidden: int, intermediate: int) -> int:
    """Matmul weights of one BERT layer: Q, K, V, attention output (h x h each) and the FFN (2 h i)."""
    return 4 * hidden * hidden + 2 * hidden * intermediate


def train_flops(hidden: int, intermediate: int, layers: int, tokens: float, tokens_x_len: float,
                trained: Optional[int] = None, frozen_computed: bool = True) -> float:
    """Model FLOPs of training steps over ``tokens`` padded tokens, ``tokens_x_len`` = the sum over
    batches of batch size x padded length^2 (= the sum over tokens of their sequence's length).

    ``trained``: the top layers that train (None: all); the others are frozen and computed in the
    forward pass only, or not at all when ``frozen_computed`` is False (the prefix cache)."""
    trained = layers if trained is None else trained
    forward = 2 * layer_params(hidden, intermediate) * tokens + 4 * hidden * tokens_x_len  # one layer
    frozen = layers - trained
    return forward * (3 * trained + (frozen if frozen_computed else 0))


def variant_flops(conf, variant: str, freeze, res: dict) -> dict:
    """A benchmark variant's model FLOPs and FLOP/s over its timed steps (``res``: the Timer's
    padded tokens, batch x len^2 sum and seconds; ``conf``: the model's HF config): every layer
    trains in A, B and C; in D0 the frozen layers run forward only, in D1 they are read from the
    cache. Empty for a freeze without a fixed set of trained layers (only ``last_n`` has one)."""
    trained = None
    if variant in ("D0", "D1"):
        if freeze.mode != "last_n":
            return {}
        trained = int(freeze.n)
    flops = train_flops(conf.hidden_size, conf.intermediate_size, conf.num_hidden_layers, res["padded_tokens"],
                        res["padded_x_len"], trained=trained, frozen_computed=variant != "D1")
    return {"model_flops": flops, "model_flops_per_s": flops / res["seconds"],
            "trained_layers": trained or conf.num_hidden_layers, "layers": conf.num_hidden_layers}


def peak_gemm(dtype: str = "float32", n: int = 2048, seconds: float = 2.0, repeats: int = 5) -> dict:
    """The machine's best n x n x n matmul rate in ``dtype``: FLOP/s = 2 n^3 per product, the best
    of ``repeats`` timings of about ``seconds`` each, through ``torch.mm`` and through
    ``F.linear`` (x @ W^T with W stored as nn.Linear stores it: what training's layers call, and on
    some CPUs another kernel: here bf16 linear ran 10x faster than bf16 mm without bf16 units)."""
    import torch
    import torch.nn.functional as F

    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=g).to(dt) for _ in range(2))
    rates = {}
    for name, op in (("mm", lambda: torch.mm(a, b)), ("linear", lambda: F.linear(a, b))):
        op()  # warm-up: allocation, BLAS/oneDNN kernel choice
        t0 = time.perf_counter()
        op()
        reps = max(1, int(seconds / max(time.perf_counter() - t0, 1e-9)))
        rates[name] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(reps):
                op()
            rates[name].append(2 * n ** 3 * reps / (time.perf_counter() - t0))
    best = max(rates, key=lambda k: max(rates[k]))
    return {"peak_flops_per_s": max(rates[best]), "peak_op": best, "gemm_rates": rates, "gemm_n": n,
            "dtype": dtype, "torch_threads": torch.get_num_threads()}


def mfu_table(runs: dict, peaks: dict) -> dict:
    """Per training variant: median model FLOP/s (min-max over repeats) over the median peak of
    its precision. ``runs``: {variant: [result per repeat]} (failed repeats left out);
    ``peaks``: {precision: variant name of its PEAK run}, e.g. {"32-true": "P32"}."""
    import statistics

    def ok(rs, key):
        return [r[key] for r in rs if r.get("rc", 0) == 0 and r.get(key) is not None]

    peak = {prec: ok(runs.get(name, []), "peak_flops_per_s") for prec, name in peaks.items()}
    out = {}
    for name, rs in runs.items():
        vals = ok(rs, "model_flops_per_s")
        prec = next((r.get("precision") for r in rs if r.get("precision")), None)
        if name in peaks.values() or not vals:
            continue
        p = peak.get(prec) or []
        row = {"precision": prec, "model_gflops_per_s": statistics.median(vals) / 1e9,
               "model_gflops_min": min(vals) / 1e9, "model_gflops_max": max(vals) / 1e9,
               "peak_gflops_per_s": statistics.median(p) / 1e9 if p else None, "mfu": None, "mfu_range": None,
               "real_token_fraction": 1 - statistics.median(ok(rs, "padding_fraction") or [0.0])}
        if p:
            row["mfu"] = statistics.median(vals) / statistics.median(p)
            row["mfu_range"] = [min(vals) / max(p), max(vals) / min(p)]
        out[name] = row
    return out


def print_mfu(table: dict) -> None:
    print(f"\n{'':5} {'precision':>10} {'model GFLOP/s':>14} {'peak GFLOP/s':>13} {'MFU':>7} {'MFU range':>13} "
          f"{'text tokens':>11}")
    for name, r in table.items():
        peak = "n/a" if r["peak_gflops_per_s"] is None else f"{r['peak_gflops_per_s']:.1f}"
        mfu = "n/a" if r["mfu"] is None else f"{r['mfu']:.3f}"
        rng = "n/a" if r["mfu_range"] is None else f"{r['mfu_range'][0]:.3f}-{r['mfu_range'][1]:.3f}"
        print(f"{name:5} {r['precision']:>10} {r['model_gflops_per_s']:14.1f} {peak:>13} {mfu:>7} {rng:>13} "
              f"{r['real_token_fraction']:11.2f}")
