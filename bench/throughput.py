"""Training throughput: the seed-style loop (A) vs a raw loop on tunelab's batches (B) vs tunelab
through Lightning (C), on the same machine, model, data and batch size.

    python bench/throughput.py                       # packaged MiniLM, packaged tweets, bs 32
    python bench/throughput.py --steps 40 --repeats 5 --startup --default-run
    python bench/throughput.py --model bert_base --precision bf16-mixed --compile   # on a GPU

(A) Hugging Face tokenizer with padding="max_length", max_length=128,
    BertForSequenceClassification, AdamW, a plain PyTorch loop over a shuffled DataLoader.
(B) the same model/optimiser in a plain loop over tunelab's own training batches (dynamic
    padding + the length-grouped batch sampler of ``TextDataModule``).
(C) ``Trainer.fit`` on tunelab's ``SequenceClassifier`` and ``TextDataModule`` (logger none, no
    checkpointing, no progress bar): what a run actually executes.

Each repeat runs ``--warmup`` untimed steps then ``--steps`` timed steps of each variant in turn
(A, B, C interleaved, so load from other processes hits all three alike); B and C see the same
batches in the same order. Reported: medians over repeats of training samples/s, real
(non-padding) tokens/s and padded tokens/s, the padding fraction, the process's peak RSS, and
C/A and C/B. ``--startup`` measures the start-up cost of a run (imports, model load, data load)
in fresh interpreters; ``--default-run`` runs ``train.py logger=none`` in a child and reports its
peak RSS. On a CUDA GPU: ``--precision bf16-mixed``, SDPA attention, ``--compile``, pinned
memory, and model-FLOPs utilisation (MFU) against ``--peak-tflops``.
Results go to ``bench/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# bf16 dense peak of common GPUs (TFLOP/s, no sparsity), for MFU when --peak-tflops is not given.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "A10": 125.0, "V100": 125.0}


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # pragma: no cover
        return float("nan")


def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def compose(overrides):
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tunelab.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = hcompose("config", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


# --------------------------------------------------------------------------- devices / flops


class Device:
    def __init__(self, args):
        import torch

        self.cuda = torch.cuda.is_available() and not args.cpu
        self.name = torch.cuda.get_device_name(0) if self.cuda else platform.processor() or "cpu"
        self.torch_device = torch.device("cuda" if self.cuda else "cpu")
        self.precision = args.precision or ("bf16-mixed" if self.cuda else "32-true")
        self.compile = args.compile
        self.pin = self.cuda

    def autocast(self):
        import contextlib

        import torch

        if self.precision.startswith("bf16"):
            return torch.autocast(self.torch_device.type, dtype=torch.bfloat16)
        if self.precision.startswith("16"):
            return torch.autocast(self.torch_device.type, dtype=torch.float16)
        return contextlib.nullcontext()

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()


def train_flops_per_token(config, seq_len: float) -> float:
    """≈ 6·N (dense matmuls, fwd+bwd) + attention 12·L·h·s per token (Kaplan et al. / PaLM)."""
    h, L, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    n_dense = L * (4 * h * h + 2 * h * inter)  # Q,K,V,O + FFN (embeddings are lookups)
    return 6 * n_dense + 12 * L * h * seq_len


# --------------------------------------------------------------------------- variants


def load_hf_model(cfg, n_labels, dev: Device):
    from tunelab.models.loading import load_model

    model, _ = load_model(cfg.model, "seq_cls", num_labels=n_labels)
    if dev.cuda:
        # SDPA is transformers' default for BERT when available; make it explicit.
        model.config._attn_implementation = "sdpa"
    model.to(dev.torch_device)
    model.train()
    return model


def maybe_compile(model, dev: Device):
    if dev.compile:
        import torch

        return torch.compile(model, dynamic=True)
    return model


class Timer:
    """Times `steps` steps after `warmup` steps; counts samples and real/padded tokens."""

    def __init__(self, warmup: int, steps: int, dev: Device):
        self.warmup, self.steps, self.dev = warmup, steps, dev
        self.reset()

    def reset(self):
        self.i = 0
        self.t0 = self.t1 = None
        self.samples = self.real = self.padded = 0

    def before(self):
        if self.i == self.warmup:
            self.dev.sync()
            self.t0 = time.perf_counter()
            self.c0 = time.process_time()

    def after(self, attention_mask):
        if self.i >= self.warmup:
            self.samples += attention_mask.shape[0]
            self.real += int(attention_mask.sum())
            self.padded += attention_mask.numel()
        self.i += 1
        if self.i == self.warmup + self.steps:
            self.dev.sync()
            self.t1 = time.perf_counter()
            self.c1 = time.process_time()
            return True
        return False

    def result(self) -> dict:
        dt = self.t1 - self.t0
        cpu = max(self.c1 - self.c0, 1e-9)
        # CPU seconds of this process: less sensitive than wall time to other processes' load.
        return {"seconds": dt, "cpu_seconds": cpu, "samples_per_cpu_s": self.samples / cpu,
                "samples_per_s": self.samples / dt, "tokens_per_s": self.real / dt,
                "padded_tokens_per_s": self.padded / dt, "padding_fraction": 1 - self.real / self.padded,
                "mean_padded_len": self.padded / self.samples}


def plain_loop(model, opt, batches, timer: Timer, dev: Device):
    import torch

    timer.reset()
    for batch in batches:
        batch = {k: v.to(dev.torch_device, non_blocking=True) for k, v in batch.items()}
        timer.before()
        with dev.autocast():
            loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if timer.after(batch["attention_mask"]):
            break
    del torch
    return timer.result()


class SeedStyle:
    """(A): what the seed notebooks do: pad every example to 128, random batches."""

    def __init__(self, cfg, texts, labels, n_labels, tokenizer, dev: Device, args):
        import numpy as np
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=args.max_length,
                        return_tensors="pt")
        ds = TensorDataset(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"],
                           torch.tensor(np.asarray(labels), dtype=torch.long))
        g = torch.Generator().manual_seed(0)
        self.loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=g, pin_memory=dev.pin)
        self.model = maybe_compile(load_hf_model(cfg, n_labels, dev), dev)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-5)
        self.dev = dev

    def batches(self):
        while True:
            for ids, mask, tt, y in self.loader:
                yield {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt, "labels": y}

    def run(self, timer):
        return plain_loop(self.model, self.opt, self.batches(), timer, self.dev)


class RawTunelab:
    """(B): the same plain loop over tunelab's batches (dynamic padding, length-grouped)."""

    def __init__(self, cfg, dm, n_labels, dev: Device):
        import torch

        self.dm = dm
        self.model = maybe_compile(load_hf_model(cfg, n_labels, dev), dev)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-5)
        self.dev = dev

    def run(self, timer):
        loader = self.dm.train_dataloader()
        if self.dev.pin:
            loader.pin_memory = True
        return plain_loop(self.model, self.opt, iter(loader), timer, self.dev)


class LightningTunelab:
    """(C): Trainer.fit on tunelab's module + datamodule, exactly as a run builds them."""

    def __init__(self, cfg, dm, dev: Device):
        from tunelab.methods.finetune import build_module

        self.cfg, self.dm, self.dev = cfg, dm, dev
        self.module, _ = build_module(cfg, dm)
        if dev.cuda:
            self.module.model.config._attn_implementation = "sdpa"
        if dev.compile:
            self.module.model = maybe_compile(self.module.model, dev)

    def run(self, timer):
        import lightning as L
        from lightning.pytorch.callbacks import Callback

        class Clock(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                timer.before()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if timer.after(batch["attention_mask"]):
                    trainer.should_stop = True

        timer.reset()
        t = self.cfg.trainer
        trainer = L.Trainer(
            accelerator="gpu" if self.dev.cuda else "cpu", devices=1, precision=self.dev.precision,
            max_steps=timer.warmup + timer.steps, max_epochs=-1, logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
            num_sanity_val_steps=0, use_distributed_sampler=False, callbacks=[Clock()],
            gradient_clip_val=self.cfg.optim.grad_clip or None, log_every_n_steps=t.log_every_n_steps,
        )
        trainer.fit(self.module, datamodule=self.dm)
        return timer.result()


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
        "tunelab.features": "import tunelab.models.features",
        "run_imports": "import tunelab.run, lightning, transformers, torch; import tunelab.models.modules, "
                       "tunelab.data.datamodule; tunelab.run._import_plugins()",
    }
    for name, code in imports.items():
        out[f"import {name}"] = statistics.median(_child_time(code) for _ in range(repeats))
    probe = f"""
import json, time, sys
sys.path.insert(0, {str(ROOT / 'bench')!r})
t = time.perf_counter()
import tunelab.run, lightning, transformers, torch, tunelab.models.modules, tunelab.data.datamodule
tunelab.run._import_plugins()
t_imp = time.perf_counter() - t
from throughput import compose
cfg = compose({list(overrides)!r})
t = time.perf_counter()
from tunelab.models.loading import load_tokenizer, load_model
tok = load_tokenizer(cfg.model)
t_tok = time.perf_counter() - t
t = time.perf_counter()
from tunelab.methods.finetune import build_datamodule
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
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = Device(args)
    overrides = [f"model={args.model}", f"data={args.data}", f"model.max_length={args.max_length}",
                 f"optim.batch_size={args.batch_size}", f"data.max_train_samples={args.max_train_samples}",
                 "logger=none", "trainer.enable_progress_bar=false", "trainer.enable_checkpointing=false"]
    cfg = compose(overrides)
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print(f"device: {dev.name} ({'cuda' if dev.cuda else 'cpu'}), torch threads {torch.get_num_threads()}, "
          f"precision {dev.precision}, compile {dev.compile}; load average {load}")

    from tunelab.models.loading import load_tokenizer
    from tunelab.methods.finetune import build_datamodule

    tok = load_tokenizer(cfg.model)
    dm = build_datamodule(cfg, tok)
    splits = dm.load()
    dm.setup("fit")
    n_labels = len(splits.label_names)
    import lightning as L

    L.seed_everything(0, verbose=False)
    variants = {}
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    t = time.perf_counter()
    if "A" in names:
        variants["A"] = SeedStyle(cfg, splits.train["text"].tolist(), splits.train["label"].to_numpy(),
                                  n_labels, tok, dev, args)
    if "B" in names:
        variants["B"] = RawTunelab(cfg, dm, n_labels, dev)
    if "C" in names:
        variants["C"] = LightningTunelab(cfg, dm, dev)
    print(f"set-up {time.perf_counter() - t:.1f} s; train examples {len(splits.train)}, "
          f"bs {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps x {args.repeats} repeats")

    runs: dict[str, list[dict]] = {k: [] for k in variants}
    for r in range(args.repeats):
        for name, v in variants.items():
            res = v.run(Timer(args.warmup, args.steps, dev))
            res["rss_mb"] = rss_mb()
            runs[name].append(res)
            print(f"  repeat {r}: {name} {res['samples_per_s']:8.1f} samples/s  {res['tokens_per_s']:9.0f} tok/s  "
                  f"{res['samples_per_cpu_s']:7.1f} samples/CPU-s  "
                  f"({res['seconds']:.2f} s, load {os.getloadavg()[0]:.1f})", flush=True)

    labels = {"A": "seed-style loop (pad to max_length, plain PyTorch)",
              "B": "raw loop, tunelab batches (dynamic padding + length grouping)",
              "C": "tunelab via Lightning (Trainer.fit)"}
    summary: dict = {}
    for name, rs in runs.items():
        med = {k: statistics.median(x[k] for x in rs) for k in rs[0]}
        med["samples_per_s_all"] = [round(x["samples_per_s"], 2) for x in rs]
        summary[name] = med
    ratios = {}
    if "A" in summary and "C" in summary:
        ratios["C/A"] = summary["C"]["samples_per_s"] / summary["A"]["samples_per_s"]
    if "B" in summary and "C" in summary:
        ratios["C/B"] = summary["C"]["samples_per_s"] / summary["B"]["samples_per_s"]
    if "A" in summary and "B" in summary:
        ratios["B/A"] = summary["B"]["samples_per_s"] / summary["A"]["samples_per_s"]
    for a, b in (("C", "A"), ("C", "B")):
        if a in summary and b in summary:
            ratios[f"{a}/{b} (per CPU-second)"] = summary[a]["samples_per_cpu_s"] / summary[b]["samples_per_cpu_s"]

    gpu = None
    if dev.cuda:
        from tunelab.models.loading import load_config

        config = load_config(cfg.model)
        peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in dev.name), None)
        gpu = {"peak_tflops": peak, "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30}
        for name, s in summary.items():
            flops = train_flops_per_token(config, s["mean_padded_len"]) * s["padded_tokens_per_s"]
            s["achieved_tflops"] = flops / 1e12
            if peak:
                s["mfu"] = flops / 1e12 / peak

    print()
    print(f"{'':3} {'samples/s':>10} {'smp/CPU-s':>10} {'tokens/s':>10} {'padded tok/s':>13} {'padding':>8} {'RSS MB':>8}  what")
    for name, s in summary.items():
        extra = f"  MFU {s['mfu']:.1%}" if "mfu" in s else ""
        print(f"{name:3} {s['samples_per_s']:10.1f} {s['samples_per_cpu_s']:10.1f} {s['tokens_per_s']:10.0f} {s['padded_tokens_per_s']:13.0f} "
              f"{s['padding_fraction']:8.1%} {s['rss_mb']:8.0f}  {labels[name]}{extra}")
    print("ratios: " + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    print(f"peak RSS of this process: {peak_rss_mb():.0f} MB")

    result = {
        "device": dev.name, "cuda": dev.cuda, "precision": dev.precision, "compile": dev.compile,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "loadavg_start": load,
        "loadavg_end": os.getloadavg(), "model": args.model, "data": args.data, "batch_size": args.batch_size,
        "max_length": args.max_length, "train_examples": len(splits.train), "warmup": args.warmup,
        "steps": args.steps, "repeats": args.repeats, "variants": summary, "ratios": ratios,
        "runs": runs, "peak_rss_mb": peak_rss_mb(), "gpu": gpu,
        "versions": {"torch": torch.__version__, "lightning": L.__version__,
                     "transformers": __import__("transformers").__version__, "python": platform.python_version()},
    }
    if args.startup:
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    os.replace(tmp, out)
    print(f"\nwrote {out}")
    return result


if __name__ == "__main__":
    main()
