"""The benchmark suites, one command each, results in ``bench/results/<suite>.json``.

    python bench/run.py abc      # A0 HF minimal loop, A seed-style, B raw loop, C Lightning
    python bench/run.py prefix   # D: freeze=last2 uncached (D0) vs prefix-cached (D1), steady state
    python bench/run.py bf16     # E: A, and C in 32-true vs bf16-mixed
    python bench/run.py dropout  # D0, D1 and C in bf16, each with torch's dropout and trainer.fast_dropout
    python bench/run.py sweep    # F: a 6-job sweep serial vs side by side (hydra/launcher=parallel)
    python bench/run.py mfu      # peak GEMM (fp32, bf16) and each variant's model FLOP/s: an MFU for CPUs

Every measurement is a process of its own, repeats are interleaved, and a result is marked
``final`` only on a quiet machine (``bench/harness.py``). ``--wait-idle 120`` waits up to two
minutes for load1 <= 0.5 before starting. Tiny smoke run: ``--model tiny --steps 3 --warmup 1
--repeats 1 --max-train-samples 64``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import harness as H

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = str(ROOT / "bench" / "variants.py")

SUITES = {
    # suite -> (variants as (name, variants.py flags), ratios as (name, a, b))
    "abc": ([("A0", ["--variant", "A0"]), ("A", ["--variant", "A"]), ("B", ["--variant", "B"]),
             ("C", ["--variant", "C"])],
            [("C/A", "C", "A"), ("C/B", "C", "B"), ("B/A", "B", "A"), ("A/A0 (check: ~1)", "A", "A0")]),
    "prefix": ([("D0", ["--variant", "D0"]), ("D1", ["--variant", "D1"])], [("D1/D0", "D1", "D0")]),
    "bf16": ([("A", ["--variant", "A", "--precision", "32-true"]),
              ("C32", ["--variant", "C", "--precision", "32-true"]),
              ("C16", ["--variant", "C", "--precision", "bf16-mixed"])],
             [("C16/C32", "C16", "C32"), ("C32/A", "C32", "A"), ("C16/A", "C16", "A")]),
    # trainer.fast_dropout (suffix f) against torch's dropout, on D (fp32) and on C in bf16.
    "dropout": ([("D0", ["--variant", "D0"]), ("D1", ["--variant", "D1"]),
                 ("D0f", ["--variant", "D0", "--fast-dropout"]), ("D1f", ["--variant", "D1", "--fast-dropout"]),
                 ("C16", ["--variant", "C", "--precision", "bf16-mixed"]),
                 ("C16f", ["--variant", "C", "--precision", "bf16-mixed", "--fast-dropout"])],
                [("D1/D0", "D1", "D0"), ("D1f/D0f", "D1f", "D0f"), ("D0f/D0", "D0f", "D0"),
                 ("D1f/D1", "D1f", "D1"), ("C16f/C16", "C16f", "C16")]),
    # The CPU's limit: peak matmul rates (P32, P16: bench/flops.py) and the training variants
    # whose model FLOP/s are set against them (A and D in fp32, C in both precisions).
    "mfu": ([("P32", ["--variant", "PEAK", "--precision", "32-true"]),
             ("P16", ["--variant", "PEAK", "--precision", "bf16-mixed"]),
             ("A", ["--variant", "A", "--precision", "32-true"]),
             ("C32", ["--variant", "C", "--precision", "32-true"]),
             ("C16", ["--variant", "C", "--precision", "bf16-mixed"]),
             ("D0", ["--variant", "D0", "--precision", "32-true"]),
             ("D1", ["--variant", "D1", "--precision", "32-true"])],
            [("C16/C32", "C16", "C32"), ("D1/D0", "D1", "D0")]),
}
# the PEAK variant of each precision in a suite (their runs time GEMMs, not training steps)
PEAKS = {"32-true": "P32", "bf16-mixed": "P16"}
# Suites with D1: the prefix cache is built by an untimed D1 run first (steady state).
PREFIX_SUITES = ("prefix", "dropout")


def variant_flags(args) -> list[str]:
    flags = ["--model", args.model, "--data", args.data, "--batch-size", str(args.batch_size),
             "--max-length", str(args.max_length), "--max-train-samples", str(args.max_train_samples),
             "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
             "--seed", str(args.seed), "--freeze", args.freeze]
    return flags + (["--cpu"] if args.cpu else [])


def layer_flops_ratio(n_layers: int, trained: int) -> float:
    """Expected D1/D0 from layer FLOPs alone (forward 1, backward 2 per trained layer; the frozen
    layers run forward only in D0 and not at all in D1; embeddings, head and optimiser ignored)."""
    return (n_layers + 2 * trained) / (3 * trained)


def step_suite(args) -> dict:
    specs, ratio_specs = SUITES[args.suite]
    if args.only:
        keep = set(args.only.split(","))
        specs = [s for s in specs if s[0] in keep]
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="tunelab-bench-cache-"))
    variants = {name: [sys.executable, VARIANTS, *flags, *variant_flags(args)] for name, flags in specs}
    if args.gemm_size:
        variants = {n: c + (["--gemm-size", str(args.gemm_size)] if n in PEAKS.values() else [])
                    for n, c in variants.items()}
    env = {"TUNELAB_CACHE": str(cache)}
    cached = [n for n in variants if n.startswith("D1")]  # D1, D1f: read the prefix cache
    if cached:
        # Steady state: the cache is built before any timed run (by an untimed D1 run).
        print("building the prefix cache (untimed) ...", flush=True)
        H.run_child(variants[cached[0]], env=env)
    runs = H.interleave(variants, args.repeats, env_of=lambda n, i: env)
    summary = H.summarize({n: r for n, r in runs.items() if n not in PEAKS.values()}, "samples_per_s")
    ratios = {k: H.ratio(summary, a, b) for k, a, b in ratio_specs}
    extra = {}
    if args.suite in PREFIX_SUITES:
        from tunelab.models.loading import load_config
        from variants import compose

        conf = load_config(compose([f"model={args.model}"]).model)
        n_layers = conf.num_hidden_layers
        trained = 2 if args.freeze == "last2" else None
        if trained:
            extra["expected_from_layer_flops"] = {
                args.model: layer_flops_ratio(n_layers, trained), "bert_base (12 layers)": layer_flops_ratio(12, trained)}
        extra["prefix_cache"] = next((r.get("prefix_cache") for n in cached for r in runs[n] if r.get("prefix_cache")),
                                     None)
    if any(n in PEAKS.values() for n in runs):
        from flops import mfu_table

        extra["mfu"] = mfu_table(runs, PEAKS)
    return {"runs": runs, "summary": summary, "ratios": ratios, "unit": "samples/s", **extra}


def sweep_suite(args) -> dict:
    """F: the same sweep through the basic launcher (one job at a time) and side by side."""
    base = [sys.executable, str(ROOT / "train.py"), "-m", *shlex.split(args.sweep_args)]
    variants = {"serial": base}
    for k in [int(x) for x in args.jobs.split(",")]:
        variants[f"par{k}"] = base + ["hydra/launcher=parallel", f"hydra.launcher.jobs={k}"]
    tmp = Path(tempfile.mkdtemp(prefix="tunelab-bench-sweep-"))

    def env_of(name, i):
        # A fresh cache per run: each variant pays tokenisation and feature/prefix caches alike.
        return {"TUNELAB_CACHE": str(tmp / f"cache-{name}-{i}"), "WANDB_MODE": "disabled"}

    cmds = {n: c + [f"hydra.sweep.dir={tmp}/{n}-$i"] for n, c in variants.items()}
    runs: dict = {n: [] for n in cmds}
    for i in range(args.repeats):
        for n, c in cmds.items():
            c = [x.replace("$i", str(i)) for x in c]
            res = H.run_child(c, env=env_of(n, i), json_out=False, timeout=args.timeout)
            res["jobs_ok"] = sum(json.loads(p.read_text()).get("status") == "ok"
                                 for p in Path(c[-1].split("=", 1)[1]).glob("*/results.json"))
            runs[n].append(res)
            print(f"  repeat {i}: {n:7} {res['process_wall_s']:8.1f} s wall, {res['jobs_ok']} jobs ok, "
                  f"foreign cores {H._f(res['foreign_cores'])}", flush=True)
    summary = H.summarize(runs, "process_wall_s")
    ratios = {f"serial/{n} (speed-up)": H.ratio(summary, "serial", n) for n in cmds if n != "serial"}
    return {"runs": runs, "summary": summary, "ratios": ratios, "unit": "wall s (lower is better)",
            "sweep_args": args.sweep_args}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suite", choices=[*SUITES, "sweep"])
    ap.add_argument("--only", default="", help="comma-separated variant names of the suite")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--data", default="tweets_sentiment")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1, help="run seed (>= 1: D1 reads the cache seed 0's run built)")
    ap.add_argument("--freeze", default="last2")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cpu", action="store_true")
    ap.add_argument("--cache-dir", default=None, help="TUNELAB_CACHE of the children (default: a fresh temp dir)")
    ap.add_argument("--sweep-args", default="freeze=none,all,last2 seed=0,1 logger=none "
                                            "trainer.enable_progress_bar=false",
                    help="sweep suite: the train.py -m overrides (default: 6 jobs of the default run)")
    ap.add_argument("--jobs", default="2", help="sweep suite: jobs side by side, e.g. 2,3")
    ap.add_argument("--timeout", type=float, default=None, help="sweep suite: seconds per sweep")
    ap.add_argument("--gemm-size", type=int, default=0, help="mfu suite: n of the peak n x n GEMM (default 2048; 512 for bf16 on a CPU without bf16 units)")
    ap.add_argument("--wait-idle", type=float, default=0, help="wait up to this many s for load1 <= 0.5")
    ap.add_argument("--name", default=None, help="results file name (default: the suite)")
    args = ap.parse_args(argv)

    start_load = H.wait_idle(args.wait_idle) if args.wait_idle else H.load1()
    print(f"suite {args.suite}: load1 {H._f(start_load)}, {H.machine()['cpu_count']} CPUs", flush=True)
    t0 = time.time()
    body = sweep_suite(args) if args.suite == "sweep" else step_suite(args)
    verdict = H.load_verdict(start_load, body["runs"])
    result = {"suite": args.suite, "args": vars(args), "machine": H.machine(), "verdict": verdict,
              "seconds": time.time() - t0, **body}
    H.print_table(body["summary"], body["ratios"], verdict, body["unit"])
    if body.get("mfu"):
        from flops import print_mfu

        print_mfu(body["mfu"])
    for k, v in body.items():
        if k.startswith("expected"):
            print(f"{k}: " + ", ".join(f"{m} {x:.2f}" for m, x in v.items()))
    path = H.write_result(args.name or args.suite, result)
    print(f"wrote {path}" + ("" if verdict["final"] else " (flagged: not final)"))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
