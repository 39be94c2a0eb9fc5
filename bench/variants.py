"""The benchmark's variants, each run for one repeat in a process of its own (``--variant``).

``bench/harness.py`` starts this file once per (variant, repeat), interleaved, and reads the one
JSON line it prints. A fresh process per measurement keeps one variant's allocator state,
thread pools and caches from colouring the next one's figures.

    python bench/variants.py --variant C --steps 30 --warmup 3        # one JSON line on stdout

Variants (same model, data and batch size):
  A   seed-style loop: HF tokenizer padding="max_length" (128), BertForSequenceClassification,
      AdamW, plain PyTorch loop over a shuffled DataLoader (what the seed notebooks do);
  A0  the same written as the Hugging Face course's minimal loop (``bench/hf_minimal.py``: datasets
      + DataLoader + AdamW + linear schedule, no helper of this file), to check that A is a fair
      stand-in for "a plain HF loop" (A/A0 should be ~1);
  B   the same plain loop over tunelab's batches (dynamic padding + length-grouped sampler);
  C   tunelab through Lightning (``Trainer.fit`` on ``SequenceClassifier`` + ``TextDataModule``);
  D0  C with ``freeze=last2`` (frozen prefix recomputed every step: the uncached path);
  D1  ``freeze=last2`` on cached prefix states (``tunelab.models.cache.prefix_module``), steady state:
      the cache is built (or read) before the timed steps, and its build time reported apart;
  PEAK  no training: the machine's peak matmul rate in the precision's dtype (``bench/flops.py``),
      the denominator of each variant's MFU (``model_flops_per_s``, recorded by every variant but A0).
Precision (``--precision``) applies to every variant: E compares C in 32-true and bf16-mixed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


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


# --------------------------------------------------------------------------- devices


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
        self.samples = self.real = self.padded = self.padded_x_len = 0

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
            self.padded_x_len += attention_mask.numel() * attention_mask.shape[-1]  # batch x len^2
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
                "mean_padded_len": self.padded / self.samples, "padded_tokens": self.padded,
                "padded_x_len": self.padded_x_len}


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
        # tunelab's optimiser (fused AdamW, SequenceClassifier.configure_optimizers), so that C/B
        # measures what Lightning adds, not a kernel; A keeps the seed notebooks' default AdamW.
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=5e-5, fused=True)
        self.dev = dev

    def run(self, timer):
        loader = self.dm.train_dataloader()
        if self.dev.pin:
            loader.pin_memory = True
        return plain_loop(self.model, self.opt, self.batches(loader), timer, self.dev)

    @staticmethod
    def batches(loader):
        """Epoch after epoch (the sampler reshuffles per epoch as in training)."""
        epoch = 0
        while True:
            if hasattr(loader.batch_sampler, "set_epoch"):
                loader.batch_sampler.set_epoch(epoch)
            yield from loader
            epoch += 1


class LightningTunelab:
    """(C): Trainer.fit on tunelab's module + datamodule, exactly as a run builds them."""

    def __init__(self, cfg, dm, dev: Device, module=None):
        from tunelab.methods.shared.encoder import build_module
        from tunelab.models.plan import route_of

        self.cfg, self.dm, self.dev = cfg, dm, dev
        self.module = module if module is not None else build_module(cfg, dm, route_of(cfg))[0]
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



class PrefixCachedTunelab(LightningTunelab):
    """(D1): the prefix-cached freeze run's module and data, through the same Trainer as C."""

    def __init__(self, cfg, dm, splits, dev: Device):
        from tunelab.methods.shared.encoder import build_module
        from tunelab.models.cache.prefix_module import prepare
        from tunelab.models.plan import route_of

        route = route_of(cfg)
        assert route.runner == "prefix", route.why
        plain, report = build_module(cfg, dm, route)
        module, pdm, info = prepare(cfg, plain, report, dm, splits, log_fn=lambda *_: None)
        self.cache = {"layers": info["layers"], "hit": all(info["hits"].values()), "build_s": info["seconds"],
                      "bytes": info["bytes"], "dtype": info["dtype"]}
        super().__init__(cfg, pdm, dev, module=module)


def overrides_of(args) -> list[str]:
    ovr = [f"model={args.model}", f"data={args.data}", f"model.max_length={args.max_length}",
           f"optim.batch_size={args.batch_size}", f"data.max_train_samples={args.max_train_samples}",
           f"seed={args.seed}", "logger=none", "trainer.enable_progress_bar=false",
           "trainer.enable_checkpointing=false"]
    if args.variant in ("D0", "D1"):
        ovr.append(f"freeze={args.freeze}")
    if args.fast_dropout:
        ovr.append("trainer.fast_dropout=true")
    return ovr


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True, choices=["A", "A0", "B", "C", "D0", "D1", "PEAK"])
    ap.add_argument("--model", default="minilm", help="conf/model name (minilm, bert_base, ...)")
    ap.add_argument("--data", default="tweets_sentiment", help="conf/data name")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--max-train-samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--freeze", default="last2", help="freeze option of D0/D1")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--precision", default=None, help="default: bf16-mixed on a GPU, 32-true on CPU")
    ap.add_argument("--compile", action="store_true", help="torch.compile the models (GPU)")
    ap.add_argument("--cpu", action="store_true", help="ignore a GPU")
    ap.add_argument("--fast-dropout", action="store_true", help="trainer.fast_dropout=true (C, D0, D1)")
    ap.add_argument("--gemm-size", type=int, default=0,
                    help="PEAK: n of the n x n GEMM (0: 2048, or 512 for bf16 on a CPU without bf16 units)")
    ap.add_argument("--gemm-seconds", type=float, default=2.0, help="PEAK: seconds per timing (best of 5)")
    return ap


def run_variant(args) -> dict:
    """Set up one variant, time ``args.steps`` steps after ``args.warmup``, return the figures."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.variant == "PEAK":
        from flops import peak_gemm

        from tunelab.environment import cpu_bf16_units

        dtype = "bfloat16" if (args.precision or "32-true").startswith("bf16") else "float32"
        # Without bf16 units bf16 is emulated (~1 GFLOP/s on an AVX2 EPYC): one 2048^3 product is
        # then ~17 s and the timing loop gave no figure within 7 minutes. 512^3 times the same
        # emulation in seconds, and the result says it was emulated.
        emulated = dtype == "bfloat16" and not cpu_bf16_units()
        n = args.gemm_size or (512 if emulated else 2048)
        return dict(peak_gemm(dtype, n, args.gemm_seconds), precision=args.precision or "32-true",
                    bf16_emulated=emulated)
    dev = Device(args)
    cfg = compose(overrides_of(args))
    from tunelab.methods.shared.data import build_datamodule
    from tunelab.models.loading import load_tokenizer

    import lightning as L

    t0 = time.perf_counter()
    tok = load_tokenizer(cfg.model)
    dm = build_datamodule(cfg, tok)
    splits = dm.load()
    dm.setup("fit")
    L.seed_everything(args.seed, verbose=False)
    n_labels = len(splits.label_names)
    extra = {}
    if args.variant == "A0":
        from hf_minimal import hf_minimal

        res = hf_minimal(cfg, splits.train["text"].tolist(), splits.train["label"].to_numpy(), args)
        return dict(res, setup_s=None, rss_mb=rss_mb(), peak_rss_mb=peak_rss_mb(),
                    torch_threads=torch.get_num_threads(), precision="32-true", train_examples=len(splits.train))
    if args.variant == "A":
        v = SeedStyle(cfg, splits.train["text"].tolist(), splits.train["label"].to_numpy(), n_labels, tok, dev, args)
    elif args.variant == "B":
        v = RawTunelab(cfg, dm, n_labels, dev)
    elif args.variant == "D1":
        v = PrefixCachedTunelab(cfg, dm, splits, dev)
        extra["prefix_cache"] = v.cache
    else:  # C, D0
        v = LightningTunelab(cfg, dm, dev)
    setup_s = time.perf_counter() - t0
    res = v.run(Timer(args.warmup, args.steps, dev))
    res.update(extra, setup_s=setup_s, rss_mb=rss_mb(), peak_rss_mb=peak_rss_mb(),
               torch_threads=torch.get_num_threads(), precision=dev.precision, device=dev.name,
               train_examples=len(splits.train))
    from flops import variant_flops

    from tunelab.models.loading import load_config

    res.update(variant_flops(load_config(cfg.model), args.variant, cfg.freeze, res))
    if dev.cuda and res.get("model_flops"):
        res["train_flops_per_padded_token"] = res["model_flops"] / res["padded_tokens"]  # throughput.py's GPU MFU
        res["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    print(json.dumps(run_variant(parser().parse_args())))
