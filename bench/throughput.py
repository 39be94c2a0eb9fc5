"""Training throughput: the seed-style loop (A) vs a raw loop on tunelab's batches (B) vs tunelab
through Lightning (C), on the same machine, model, data and batch size.

    python bench/throughput.py                       # packaged MiniLM, packaged tweets, bs 32
    python bench/throughput.py --steps 40 --repeats 5 --startup --default-run
    python bench/throughput.py --model bert_base --precision bf16-mixed --compile   # on a GPU

The variants are those of ``bench/variants.py`` (A seed-style: pad to 128, shuffled; B: the
same plain loop over tunelab's batches; C: ``Trainer.fit`` on tunelab's module and data), each
repeat of each variant in a process of its own, interleaved A B C A B C, through
``bench/harness.py``: medians and min-max over repeats of training samples/s, real and padded
tokens/s, padding fraction, samples per CPU-second, RSS; the ratios C/A and C/B with their
range; the load before, during (other processes' CPU use) and after, and whether the result is
``final`` (quiet machine) or flagged. ``--startup`` measures the start-up cost of a run
(imports, model load, data load) in fresh interpreters; ``--default-run`` runs ``train.py
logger=none`` in a child and reports its peak RSS. On a CUDA GPU: ``--precision bf16-mixed``,
SDPA attention, ``--compile``, pinned memory, and model-FLOPs utilisation (MFU) against
``--peak-tflops``. Results go to ``bench/results/throughput.json``; the other suites (prefix
cache, bf16, sweeps) are in ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import harness as H
from variants import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# bf16 dense peak of common GPUs (TFLOP/s, no sparsity), for MFU when --peak-tflops is not given.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}
LABELS = {"A": "seed-style loop (pad to max_length, plain PyTorch)",
          "B": "raw loop, tunelab batches (dynamic padding + length grouping)",
          "C": "tunelab via Lightning (Trainer.fit)"}
FIGURES = ("samples_per_s", "samples_per_cpu_s", "tokens_per_s", "padded_tokens_per_s", "padding_fraction",
           "mean_padded_len", "rss_mb", "peak_rss_mb", "seconds", "cpu_seconds")


# --------------------------------------------------------------------------- start-up


def _child_time(code: str, env=None) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, **(env or {})),
                   capture_output=True)
    return time.perf_counter() - t


def measure_startup(overrides, repeats: int = 1) -> dict:
    """Fresh interpreters: import costs, then model and data load in one process."""
    out: dict = {}
    imports = {
        "python": "pass",
        "torch": "import torch",
        "transformers": "import transformers",
        "lightning": "import lightning",
        "tunelab.run": "import tunelab.run",
        "tunelab.features": "import tunelab.models.cache.features",
        "run_imports": "import tunelab.run, lightning, transformers, torch; import tunelab.models.modules, "
                       "tunelab.data.datamodule, tunelab.methods.shared.routes",
    }
    for name, code in imports.items():
        out[f"import {name}"] = statistics.median(_child_time(code) for _ in range(repeats))
    probe = f"""
import json, time, sys
sys.path.insert(0, {str(ROOT / 'bench')!r})
t = time.perf_counter()
import tunelab.run, lightning, transformers, torch, tunelab.models.modules, tunelab.data.datamodule
import tunelab.methods.shared.routes
t_imp = time.perf_counter() - t
from variants import compose
cfg = compose({list(overrides)!r})
t = time.perf_counter()
from tunelab.models.loading import load_tokenizer, load_model
tok = load_tokenizer(cfg.model)
t_tok = time.perf_counter() - t
t = time.perf_counter()
from tunelab.methods.shared.data import build_datamodule
dm = build_datamodule(cfg, tok); dm.load()
t_data = time.perf_counter() - t
t = time.perf_counter()
dm.setup("fit")
t_tokenize = time.perf_counter() - t
t = time.perf_counter()
m, _ = load_model(cfg.model, "seq_cls", num_labels=2)
t_model = time.perf_counter() - t
print(json.dumps(dict(imports=t_imp, tokenizer=t_tok, data_load=t_data, tokenize=t_tokenize,
                      tokenize_cache_hit=all(dm.cache_hits.values()), model_load=t_model)))
"""
    runs = []
    for _ in range(repeats):
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[f"in-run {k}"] = vals[-1] if isinstance(vals[0], bool) else statistics.median(vals)
    return out


_RSS_WRAPPER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def _peak():
    # VmHWM (kB) is per address space, so it restarts at exec; ru_maxrss would also count the
    # parent's pages copied at fork (a big benchmark process would inflate the figure).
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(out, "w").write(line.split()[1])
atexit.register(_peak)
sys.argv[0] = {train!r}
runpy.run_path({train!r}, run_name="__main__")
"""


def default_run_rss(extra, tmp: Path) -> dict:
    """Run ``train.py`` in a child that records its own peak RSS at exit."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    rss_file = tmp.parent / "peak_rss_kb"
    args = ["logger=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp}", *extra]
    cmd = [sys.executable, "-c", _RSS_WRAPPER.format(train=str(ROOT / "train.py")), str(rss_file), *args]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    wall = time.perf_counter() - t
    try:
        peak = int(rss_file.read_text()) / 1024
    except (OSError, ValueError):
        peak = peak_rss_mb(resource.RUSAGE_CHILDREN)
    return {"cmd": "train.py " + " ".join(args), "rc": r.returncode, "wall_s": wall,
            "peak_rss_mb": peak,
            "tail": (r.stderr or r.stdout)[-600:] if r.returncode else ""}


# --------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="minilm", help="conf/model name (minilm, bert_base, ...)")
    ap.add_argument("--data", default="tweets_sentiment", help="conf/data name")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per repeat and variant")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--variants", default="A,B,C")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--precision", default=None, help="default: bf16-mixed on a GPU, 32-true on CPU")
    ap.add_argument("--compile", action="store_true", help="torch.compile the models (GPU)")
    ap.add_argument("--cpu", action="store_true", help="ignore a GPU")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU")
    ap.add_argument("--startup", action="store_true", help="measure start-up costs (fresh interpreters)")
    ap.add_argument("--startup-repeats", type=int, default=1)
    ap.add_argument("--default-run", action="store_true", help="peak RSS of `train.py logger=none`")
    ap.add_argument("--default-run-args", default="", help="extra overrides for --default-run")
    ap.add_argument("--wait-idle", type=float, default=0, help="wait up to this many s for load1 <= 0.5")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args(argv)

    start_load = H.wait_idle(args.wait_idle) if args.wait_idle else H.load1()
    flags = ["--model", args.model, "--data", args.data, "--batch-size", str(args.batch_size),
             "--max-length", str(args.max_length), "--max-train-samples", str(args.max_train_samples),
             "--steps", str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads)]
    flags += (["--precision", args.precision] if args.precision else []) + (["--compile"] if args.compile else [])
    flags += ["--cpu"] if args.cpu else []
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    variants = {n: [sys.executable, str(ROOT / "bench" / "variants.py"), "--variant", n, *flags] for n in names}
    print(f"load1 {H._f(start_load)}; {len(names)} variants x {args.repeats} repeats, one process each, "
          f"{args.warmup} warm-up + {args.steps} timed steps, bs {args.batch_size}", flush=True)
    runs = H.interleave(variants, args.repeats)
    summary = {}
    for name, rs in runs.items():
        ok = [r for r in rs if r.get("rc") == 0]
        if not ok:
            continue
        summary[name] = {k: statistics.median(r[k] for r in ok) for k in FIGURES if k in ok[0]}
        summary[name]["samples_per_s_all"] = [round(r["samples_per_s"], 2) for r in ok]
        summary[name]["samples_per_s_min"] = min(r["samples_per_s"] for r in ok)
        summary[name]["samples_per_s_max"] = max(r["samples_per_s"] for r in ok)
    spread = H.summarize(runs, "samples_per_s")
    ratios = {f"{a}/{b}": H.ratio(spread, a, b) for a, b in (("C", "A"), ("C", "B"), ("B", "A"))
              if a in summary and b in summary}
    cpu_spread = H.summarize(runs, "samples_per_cpu_s")
    ratios.update({f"{a}/{b} (per CPU-second)": H.ratio(cpu_spread, a, b) for a, b in (("C", "A"), ("C", "B"))
                   if a in summary and b in summary})
    verdict = H.load_verdict(start_load, runs)

    first = next((r for rs in runs.values() for r in rs if r.get("rc") == 0), {})
    gpu = None
    if str(first.get("device", "")).lower() not in ("", "cpu") and "train_flops_per_padded_token" in first:
        peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in first["device"]), None)
        gpu = {"peak_tflops": peak}
        for name, s in summary.items():
            fl = statistics.median(r["train_flops_per_padded_token"] for r in runs[name] if r.get("rc") == 0)
            s["achieved_tflops"] = fl * s["padded_tokens_per_s"] / 1e12
            if peak:
                s["mfu"] = s["achieved_tflops"] / peak

    print()
    print(f"{'':3} {'samples/s':>10} {'min-max':>15} {'smp/CPU-s':>10} {'tokens/s':>10} {'padding':>8} {'RSS MB':>8}  what")
    for name, s in summary.items():
        extra = f"  MFU {s['mfu']:.1%}" if "mfu" in s else ""
        print(f"{name:3} {s['samples_per_s']:10.1f} {s['samples_per_s_min']:7.1f}-{s['samples_per_s_max']:<7.1f} "
              f"{s['samples_per_cpu_s']:10.1f} {s['tokens_per_s']:10.0f} {s['padding_fraction']:8.1%} "
              f"{s['rss_mb']:8.0f}  {LABELS.get(name, name)}{extra}")
    tag = "" if verdict["final"] else "  [NOT FINAL: " + "; ".join(verdict["reasons"]) + "]"
    print("ratios: " + ", ".join(f"{k} = {v['value']:.2f} ({v['low']:.2f}-{v['high']:.2f})"
                                 for k, v in ratios.items() if v) + tag)

    result = {
        "device": first.get("device"), "precision": first.get("precision"), "compile": args.compile,
        "torch_threads": first.get("torch_threads"), "machine": H.machine(), "verdict": verdict,
        "loadavg_start": start_load, "loadavg_end": H.load1(), "model": args.model, "data": args.data,
        "batch_size": args.batch_size, "max_length": args.max_length, "train_examples": first.get("train_examples"),
        "warmup": args.warmup, "steps": args.steps, "repeats": args.repeats, "variants": summary,
        "ratios": ratios, "runs": runs, "gpu": gpu,
    }
    if args.startup:
        overrides = [f"model={args.model}", f"data={args.data}", f"model.max_length={args.max_length}",
                     f"data.max_train_samples={args.max_train_samples}", "logger=none"]
        print(f"\nstart-up (fresh interpreters, median of {args.startup_repeats}):")
        su = measure_startup(overrides, args.startup_repeats)
        for k, v in su.items():
            print(f"  {k:32} {v:7.2f} s" if not isinstance(v, bool) else f"  {k:32} {v}")
        result["startup"] = su
    if args.default_run:
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
        dr = default_run_rss(args.default_run_args.split(), tmp / "run")
        print(f"\ndefault run ({dr['cmd']}): rc {dr['rc']}, {dr['wall_s']:.1f} s, peak RSS {dr['peak_rss_mb']:.0f} MB")
        if dr["rc"]:
            print(dr["tail"])
        result["default_run"] = dr
    out = H.write_result("throughput", result, Path(args.out))
    print(f"\nwrote {out}" + ("" if verdict["final"] else " (flagged: not final)"))
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
