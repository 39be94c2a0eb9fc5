"""Curricula: fine-tune one encoder on several datasets in sequence, measure forgetting, and the
standard remedies (``strategy``: sequential, joint, replay, adapters, lora).

A curriculum (``curriculum=related|unrelated|custom``) is a list of stages, each naming a data
config (``conf/data/<name>.yaml``) plus overrides (``domain``...) and optional epochs/lr. Every
stage gets its own train/val/test split. The job trains the stages in order, carrying the
encoder; stages with the same label names share a head, others get their own (``head:`` in a
stage names one explicitly). After each stage every task's test split is evaluated with that
task's own head (and adapter) -> ``R[i][j]``. Each task is also trained alone from the original
encoder (``curriculum.baselines``) for forward transfer. ``tunelab.continual.metrics`` defines
ACC, BWT, FWT and forgetting; all go to ``results.json`` (``extra.curriculum``) and the headline
numbers to ``metrics`` (``test/ACC``, ``test/BWT``, ``test/FWT``, ``params/...``).

Stages train for a fixed number of epochs and keep their final weights (no early stopping or
best-checkpoint restore: the next stage continues from where this one ended).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tunelab.errors import ConfigError, TunelabError
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from tunelab.run import RunContext

log = logging.getLogger("tunelab")

STRATEGIES = ("sequential", "joint", "replay", "adapters", "lora")
PER_TASK_STRATEGIES = ("adapters", "lora")
STAGE_KEYS = {"data", "name", "epochs", "lr", "head", "overrides"}
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"



# --------------------------------------------------------------------------- stages


@dataclass
class Stage:
    index: int
    name: str
    data: str
    data_cfg: Any
    epochs: int
    lr: float
    head_hint: Optional[str] = None
    splits: Any = None
    head: str = ""
    eval_dm: Any = None

    @property
    def where(self) -> str:
        return f"curriculum stage {self.index + 1} '{self.name}'"

    @property
    def labels(self) -> list[str]:
        return list(self.splits.label_names)

    @property
    def adapter(self) -> str:
        return f"task{self.index}"


def _data_dirs() -> list[Path]:
    dirs = []
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            for src in HydraConfig.get().runtime.config_sources:
                if src.provider != "hydra" and src.schema == "file":
                    dirs.append(Path(src.path) / "data")
    except Exception:  # noqa: BLE001 - outside a Hydra job the packaged conf/ is used
        pass
    dirs.append(CONF_DIR / "data")
    return dirs


def data_yaml(name: str, where: str) -> Path:
    """conf/data/<name>.yaml (searched in the job's config dirs) or a YAML path."""
    p = Path(str(name)).expanduser()
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    for d in _data_dirs():
        if (d / f"{name}.yaml").is_file():
            return d / f"{name}.yaml"
    known = sorted({f.stem for d in _data_dirs() if d.is_dir() for f in d.glob("*.yaml")})
    raise ConfigError(f"{where}: data config '{name}' not found; data options are {known} (or a .yaml path).")


def stage_specs(cfg: DictConfig) -> list[dict]:
    cur = cfg.curriculum
    raw = cur.stages
    if raw is None or len(raw) == 0:
        raise ConfigError(
            f"curriculum={cur.name} has no stages: give curriculum.stages a list such as "
            f"[{{data: tweets_sentiment, domain: apple}}, {{data: drug_reviews}}], or use curriculum=related|unrelated.")
    specs = []
    for i, st in enumerate(raw):
        st = OmegaConf.to_container(st, resolve=True) if OmegaConf.is_config(st) else st
        if isinstance(st, str) and st.strip():
            st = {"data": st}
        if not isinstance(st, dict) or not st.get("data"):
            raise ConfigError(
                f"curriculum stage {i + 1} is empty ({st!r}): each stage needs a data config, e.g. "
                f"{{data: tweets_sentiment, domain: apple}} or {{data: drug_reviews, epochs: 2}}.")
        specs.append(dict(st))
    return specs


def compose_data_cfg(spec: dict, cfg: DictConfig, where: str):
    """The stage's DataConfig: schema <- conf/data/<data>.yaml <- curriculum sizes <- stage keys."""
    from tunelab.config import DataConfig

    path = data_yaml(spec["data"], where)
    over = {k: v for k, v in spec.items() if k not in STAGE_KEYS}
    over.update(spec.get("overrides") or {})
    sizes = {k: cfg.curriculum[k] for k in ("max_train_samples", "max_eval_samples")
             if cfg.curriculum[k] is not None and k not in over}
    try:
        d = OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(path), sizes, over)
        OmegaConf.to_container(d, resolve=True, throw_on_missing=True)
    except Exception as e:  # omegaconf: unknown key, wrong type, missing value
        raise ConfigError(f"{where}: data config '{spec['data']}' with {over}: {e}") from None
    return d


def load_stages(cfg: DictConfig) -> list[Stage]:
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    stages, seen = [], set()
    for i, spec in enumerate(stage_specs(cfg)):
        name = str(spec.get("name") or (f"{spec['data']}:{spec['domain']}" if spec.get("domain") else spec["data"]))
        if name in seen:
            name = f"{name}#{i + 1}"
        seen.add(name)
        where = f"curriculum stage {i + 1} '{name}'"
        dcfg = compose_data_cfg(spec, cfg, where)
        epochs = int(spec.get("epochs") or cfg.optim.epochs)
        lr = float(spec.get("lr") or cfg.strategy.lr or cfg.optim.lr)
        if epochs < 1 or lr <= 0:
            raise ConfigError(f"{where}: epochs={epochs} must be >= 1 and lr={lr} > 0.")
        try:
            raw = load_raw(dcfg, "seq_cls")
            splits = make_splits(raw, dcfg, "seq_cls")
        except TunelabError as e:
            raise type(e)(f"{where}: {e}") from None
        if len(splits.train) == 0 or len(splits.test) == 0:
            from tunelab.errors import DataError

            raise DataError(f"{where}: the stage is empty ({splits.sizes()}).")
        stages.append(Stage(i, name, str(spec["data"]), dcfg, epochs, lr, spec.get("head"), splits))
        log.info(f"[tunelab] {where}: " + ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items())
                 + f"; labels {splits.label_names}")
    return stages


def assign_heads(stages: list[Stage], per_task: bool) -> dict[str, list[str]]:
    """Head key per stage: one per task (adapters/lora), else shared by label names or by ``head:``.

    Stages that share a head must have the same label names in the same order, else ConfigError."""
    heads: dict[str, list[str]] = {}
    owner: dict[str, Stage] = {}
    for s in stages:
        if per_task:
            key = s.adapter
        elif s.head_hint:
            key = str(s.head_hint)
        else:
            key = "/".join(sorted(s.labels))
        if key in heads and heads[key] != s.labels:
            o = owner[key]
            raise ConfigError(
                f"{s.where}: its labels {s.labels} clash with those of stage {o.index + 1} '{o.name}' "
                f"{heads[key]}, which shares its head '{key}': a shared head needs the same label "
                f"names in the same order (set data.labels in the stage), or give the stage its own head (head: <name>).")
        if key not in heads:
            heads[key], owner[key] = list(s.labels), s
        s.head = key
    return heads


# --------------------------------------------------------------------------- replay


def replay_sample(df, *, size: Optional[int], fraction: Optional[float], seed: int, stage_index: int):
    """A seeded sample of a finished stage's training data: ``size`` rows or ``fraction`` of them."""
    if (size is None) == (fraction is None):
        raise ConfigError("strategy=replay needs exactly one of strategy.replay_size (examples per stage) "
                          "and strategy.replay_fraction (of each stage's training split).")
    if size is not None and size < 1:
        raise ConfigError(f"strategy.replay_size={size} must be >= 1.")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"strategy.replay_fraction={fraction} must be in (0, 1].")
    n = int(size) if size is not None else max(1, int(round(float(fraction) * len(df))))
    n = min(n, len(df))
    rng = np.random.default_rng([int(seed), int(stage_index), 20240])
    idx = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[idx].reset_index(drop=True)


def mixed_frame(parts: list[tuple[Stage, Any]]):
    """Concatenate (stage, train df) parts with global labels; return (df, routes)."""
    import pandas as pd

    offsets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for s, _ in parts:
        if s.head not in offsets:
            offsets[s.head] = sum(sizes.values())
            sizes[s.head] = len(s.labels)
    frames = []
    for s, df in parts:
        d = df[["text", "label"]].copy()
        d["label"] = d["label"].astype(int) + offsets[s.head]
        frames.append(d)
    routes = [(h, offsets[h], sizes[h]) for h in offsets]
    return pd.concat(frames, ignore_index=True), routes


# --------------------------------------------------------------------------- trainer settings


def ddp_strategy(trainer_cfg) -> str:
    """Per-task heads and inactive adapters leave parameters without gradients: DDP must look for
    unused parameters, or it fails at the next step."""
    s = str(trainer_cfg.strategy)
    if s in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook"):
        return f"{s}_find_unused_parameters_true"
    dev = trainer_cfg.devices
    multi = (isinstance(dev, int) and (dev > 1 or dev == -1)) or (not isinstance(dev, (int, str)) and len(dev) > 1) \
        or (isinstance(dev, str) and dev not in ("1", "auto") and (dev == "-1" or "," in dev or dev.isdigit() and int(dev) > 1)) \
        or int(trainer_cfg.num_nodes) > 1
    if s == "auto" and multi:
        return "ddp_find_unused_parameters_true"
    return s


def stage_cfg(cfg: DictConfig, *, epochs: int, lr: float, validate: bool) -> DictConfig:
    c = copy.deepcopy(cfg)
    c.optim.lr = lr
    c.optim.epochs = epochs
    c.optim.early_stopping_patience = None
    c.trainer.enable_checkpointing = False
    c.trainer.strategy = ddp_strategy(cfg.trainer)
    if not validate:
        c.trainer.limit_val_batches = 0
    return c


# --------------------------------------------------------------------------- the runner


@dataclass
class Env:
    cfg: DictConfig
    ctx: RunContext
    tokenizer: Any
    stages: list[Stage]
    heads: dict[str, list[str]]
    strategy: str
    logger: Any = None
    base_snapshot: Optional[list] = None
    timings: dict = field(default_factory=dict)

    @property
    def head_seeds(self) -> dict[str, int]:
        return {k: int(self.cfg.seed) * 1000 + i + 1 for i, k in enumerate(self.heads)}

    def build_encoder(self):
        """The original encoder, identical on every call (seeded for random-init models)."""
        import torch

        from tunelab.models import load_model

        with torch.random.fork_rng():
            torch.manual_seed(int(self.cfg.seed))
            enc, _ = load_model(self.cfg.model, "encoder")
        return enc

    def build_model(self, stages: list[Stage], *, snapshot: bool = False):
        import torch

        from tunelab.continual.model import MultiHeadClassifier, add_bottleneck, init_bottleneck, lora_wrap
        from tunelab.models import model_label

        enc = self.build_encoder()
        name = model_label(self.cfg.model)
        if snapshot:
            self.base_snapshot = [(p, p.detach().clone()) for p in enc.parameters()]
        if self.strategy == "adapters":
            init_bottleneck(enc, stages[0].where, name)
            for s in stages:
                with torch.random.fork_rng():
                    torch.manual_seed(int(self.cfg.seed) * 1000 + 500 + s.index)
                    add_bottleneck(enc, s.adapter, int(self.cfg.strategy.reduction_factor), s.where, name)
        elif self.strategy == "lora":
            with torch.random.fork_rng():
                torch.manual_seed(int(self.cfg.seed) * 1000 + 500)
                enc = lora_wrap(enc, [s.adapter for s in stages], self.cfg.strategy, stages[0].where, name)
        heads = {}
        for s in stages:
            heads.setdefault(s.head, len(self.heads[s.head]))
        return MultiHeadClassifier(enc, heads, head_seeds=self.head_seeds)

    def eval_dm(self, s: Stage):
        if s.eval_dm is None:
            from tunelab.data.splits import Splits
            from tunelab.methods.finetune import build_datamodule

            sp = s.splits
            dm = build_datamodule(self.cfg, self.tokenizer, data_cfg=s.data_cfg, task_cfg=self.cfg.task,
                                  splits=Splits(train=sp.train.iloc[:0], val=sp.val.iloc[:0], test=sp.test,
                                                label_names=sp.label_names))
            dm.setup("test")
            s.eval_dm = dm
        return s.eval_dm

    def evaluate(self, model, s: Stage, trained: bool) -> dict:
        from tunelab.continual.model import activate, predict_logits, scores

        adapter = None
        if self.strategy in PER_TASK_STRATEGIES and (trained or self.strategy == "lora"):
            adapter = s.adapter
        activate(model, self.strategy, s.head, adapter)
        logits, labels = predict_logits(model, self.eval_dm(s).tokenized["test"], self.tokenizer,
                                        int(self.cfg.optim.eval_batch_size))
        out = scores(logits, labels, len(s.labels))
        out["head"], out["adapter"] = s.head, adapter
        return out

    def fit(self, model, parts: list[tuple[Stage, Any]], *, epochs: int, lr: float, main: Stage,
            label: str) -> dict:
        """One training run on the (possibly mixed) data of ``parts``; ``main`` is whose val split
        and data settings the run uses."""
        from tunelab import freezing
        from tunelab.continual.model import set_trainable
        from tunelab.data.splits import Splits
        from tunelab.modules import SequenceClassifier
        from tunelab.methods.finetune import build_datamodule, positive_index
        from tunelab.training import build_trainer

        t0 = time.time()
        train, routes = mixed_frame(parts)
        validate = bool(self.cfg.curriculum.validate) and len(parts) == 1
        c = stage_cfg(self.cfg, epochs=epochs, lr=lr, validate=validate)
        sp = main.splits
        dm = build_datamodule(c, self.tokenizer, data_cfg=main.data_cfg, task_cfg=self.cfg.task,
                              splits=Splits(train=train, val=sp.val if validate else sp.val.iloc[:0],
                                            test=sp.test, label_names=sp.label_names))
        dm.setup("fit")
        module = SequenceClassifier(model, num_labels=len(main.labels),
                                    positive_index=positive_index(main.labels, main.data_cfg),
                                    optim_cfg=c.optim, freeze_cfg=self.cfg.freeze, label_names=main.labels,
                                    log=log.info)
        model.active = main.head
        model.routes = routes
        adapter = main.adapter if self.strategy in PER_TASK_STRATEGIES else None
        set_trainable(model, self.strategy, {h for h, _, _ in routes}, adapter)
        trainable, total = freezing.count(model.parameters())
        log.info(f"[tunelab] {label}: training {len(train):,} examples for {epochs} epoch(s) at lr {lr:g}; "
                 f"trainable params {trainable:,} of {total:,}")
        trainer = build_trainer(c, self.ctx.out_dir, self.logger, monitor=None, mode="max", max_epochs=epochs)
        try:
            trainer.fit(module, datamodule=dm)
        finally:
            model.routes = None
        return {"trainable_params": trainable, "total_params": total, "train_examples": len(train),
                "steps": int(trainer.global_step), "seconds": round(time.time() - t0, 2), "lr": lr,
                "epochs": epochs}


def _stage_record(s: Stage) -> dict:
    d = s.data_cfg
    return {"name": s.name, "data": s.data, "domain": d.domain, "labels": s.labels, "head": s.head,
            "epochs": s.epochs, "lr": s.lr, "n_examples": s.splits.sizes(),
            "dropped_rows": s.splits.dropped}


def run_curriculum(cfg: DictConfig, ctx: RunContext) -> dict:
    """Train the stages in order with the configured strategy; R, ACC, BWT, FWT, forgetting."""
    from tunelab import freezing
    from tunelab.continual.metrics import continual_metrics, plot_matrix
    from tunelab.continual.model import adapter_params, param_bytes, save_task
    from tunelab.loggers import build_logger
    from tunelab.models import load_tokenizer
    from tunelab.io import scrub_secrets
    from tunelab.training import run_name

    t_start = time.time()
    # "adapters available but none are activated": by design when a task is evaluated before
    # its adapter is trained (the bare base encoder).
    logging.getLogger("adapters.model_mixin").setLevel(logging.ERROR)
    strategy = str(cfg.strategy.name)
    if cfg.task.name != "seq_cls":
        raise ConfigError(f"curriculum={cfg.curriculum.name} supports task=seq_cls only (got task={cfg.task.name}).")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not one of {list(STRATEGIES)}.")
    tokenizer = load_tokenizer(cfg.model)
    stages = load_stages(cfg)
    if strategy == "replay":  # check the buffer settings before any training
        replay_sample(stages[0].splits.train, size=cfg.strategy.replay_size,
                      fraction=cfg.strategy.replay_fraction, seed=int(cfg.seed), stage_index=0)
    heads = assign_heads(stages, per_task=strategy in PER_TASK_STRATEGIES)
    env = Env(cfg, ctx, tokenizer, stages, heads, strategy)
    env.logger = build_logger(cfg.logger, ctx.out_dir, run_name=run_name(ctx), group=ctx.group,
                              tags=ctx.swept_tags, config=scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
                              job_type="curriculum")
    ctx.logger = env.logger
    model = env.build_model(stages, snapshot=strategy in PER_TASK_STRATEGIES)
    T = len(stages)

    # Before any training: the zero-shot reference of each task (fresh heads, no adapter).
    initial = [env.evaluate(model, s, trained=False)["acc"] for s in stages]

    R, R_f1, rows, runs, evals = [], [], [], [], []
    saved: list[tuple[Stage, Path]] = []
    bytes_per_task: list[int] = []
    if strategy == "joint":
        lr = float(cfg.strategy.lr or cfg.optim.lr)
        runs.append(env.fit(model, [(s, s.splits.train) for s in stages], epochs=max(s.epochs for s in stages),
                            lr=lr, main=stages[0], label="joint training on all stages"))
        row = [env.evaluate(model, s, trained=True) for s in stages]
        R.append([e["acc"] for e in row]), R_f1.append([e["f1_macro"] for e in row]), rows.append("joint")
        evals.append(row)
    else:
        buffers: list[tuple[Stage, Any]] = []
        for s in stages:
            parts = [(s, s.splits.train)] + (buffers if strategy == "replay" else [])
            info = env.fit(model, parts, epochs=s.epochs, lr=s.lr, main=s, label=s.where)
            info["replayed_examples"] = sum(len(df) for _, df in buffers) if strategy == "replay" else 0
            runs.append(info)
            if strategy == "replay":
                buffers.append((s, replay_sample(s.splits.train, size=cfg.strategy.replay_size,
                                                 fraction=cfg.strategy.replay_fraction, seed=int(cfg.seed),
                                                 stage_index=s.index)))
            if strategy in PER_TASK_STRATEGIES and cfg.strategy.save_adapters and rank_zero_only.rank == 0:
                d = ctx.out_dir / "task_adapters" / f"{s.adapter}"
                bytes_per_task.append(save_task(model, strategy, s.adapter, s.head, s.labels, d))
                saved.append((s, d))
            done = {t.index for t in stages[:s.index + 1]}
            row = [env.evaluate(model, t, trained=t.index in done) for t in stages]
            R.append([e["acc"] for e in row]), R_f1.append([e["f1_macro"] for e in row])
            rows.append(f"after {s.name}")
            evals.append(row)
            log.info(f"[tunelab] R[{s.index}] = " + ", ".join(f"{t.name} {e['acc']:.3f}" for t, e in zip(stages, row)))

    # Storage per task and what trains.
    if strategy in PER_TASK_STRATEGIES:
        per_task_param_bytes = [param_bytes(adapter_params(model, strategy, s.adapter) + list(model.head(s.head).parameters()))
                                for s in stages]
        if not bytes_per_task:
            bytes_per_task = per_task_param_bytes
    else:
        enc_bytes = param_bytes(model.encoder.parameters())
        per_task_param_bytes = [enc_bytes + param_bytes(model.head(s.head).parameters()) for s in stages]
        bytes_per_task = per_task_param_bytes
    trainable_mean = float(np.mean([r["trainable_params"] for r in runs]))
    total_params = freezing.count(model.parameters())[1]

    # Checks of the parameter-efficient strategies: base untouched, saved adapters reload exactly.
    checks: dict = {}
    if env.base_snapshot is not None:
        import torch

        checks["base_weights_unchanged"] = all(torch.equal(p.detach(), c) for p, c in env.base_snapshot)
        env.base_snapshot = None
    if saved:
        checks["reload"] = reload_check(env, model, saved)

    # Each task alone from the original encoder: the FWT reference.
    alone = None
    alone_runs = []
    if cfg.curriculum.baselines and strategy != "joint" and T > 1:
        t0 = time.time()
        alone = []
        for s in stages:
            m = env.build_model([s])
            alone_runs.append(env.fit(m, [(s, s.splits.train)], epochs=s.epochs, lr=s.lr, main=s,
                                      label=f"baseline: {s.name} alone"))
            alone.append(env.evaluate(m, s, trained=True)["acc"])
            del m
        env.timings["baselines_s"] = round(time.time() - t0, 2)

    cm = continual_metrics(R, alone=alone, initial=initial)
    tasks = [s.name for s in stages]
    heatmap = None
    if cfg.curriculum.heatmap and rank_zero_only.rank == 0:
        title = f"{cfg.curriculum.name} / {strategy} (seed {cfg.seed}): ACC {cm['ACC']:.3f}" + \
            (f", BWT {cm['BWT']:+.3f}" if "BWT" in cm else "") + (f", FWT {cm['FWT']:+.3f}" if "FWT" in cm else "")
        heatmap = str(plot_matrix(R, ctx.out_dir / "R_heatmap.png", tasks=tasks, rows=rows, title=title))

    metrics = {f"test/{k}": cm[k] for k in ("ACC", "BWT", "FWT", "FWT_zeroshot", "forgetting") if k in cm}
    metrics["test/f1_macro_avg"] = float(np.mean(R_f1[-1]))
    metrics["params/trainable"] = trainable_mean
    metrics["params/bytes_per_task"] = float(np.mean(bytes_per_task))
    metrics["time/train_s"] = float(sum(r["seconds"] for r in runs))
    for s, e in zip(stages, evals[-1]):
        metrics[f"test/acc_final/{s.name}"] = e["acc"]

    final_counts = {s.name: {lab: c for lab, c in zip(s.labels, e["pred_counts"])} for s, e in zip(stages, evals[-1])}
    sizes = {k: int(sum(s.splits.sizes()[k] for s in stages)) for k in ("train", "val", "test")}
    curriculum = {
        "name": str(cfg.curriculum.name), "strategy": strategy, "tasks": tasks, "rows": rows,
        "stages": [_stage_record(s) for s in stages], "heads": heads,
        "R": R, "R_f1_macro": R_f1, "initial": initial, "alone": alone,
        **{k: v for k, v in cm.items() if k != "T"},
        "final_pred_counts": final_counts,
        "eval_routes": [[{"task": t.name, "head": e["head"], "adapter": e["adapter"]} for t, e in zip(stages, row)]
                        for row in evals],
        "runs": runs, "baseline_runs": alone_runs,
        "trainable_params": trainable_mean, "trainable_per_stage": [r["trainable_params"] for r in runs],
        "bytes_per_task": float(np.mean(bytes_per_task)), "bytes_per_task_each": bytes_per_task,
        "param_bytes_per_task": per_task_param_bytes,
        "checks": checks, "heatmap": heatmap,
        "timings": {"train_s": metrics["time/train_s"], **env.timings, "total_s": round(time.time() - t_start, 2)},
    }
    return {
        "data": ">".join(s.data for s in stages),
        "metrics": metrics,
        "majority_rate": None,
        "pred_class_counts": None,
        "label_names": None,
        "n_examples": sizes,
        "params": {"trainable": int(max(r["trainable_params"] for r in runs)), "total": int(total_params)},
        "extra": {"curriculum": curriculum},
    }


def reload_check(env: Env, model, saved: list[tuple[Stage, Path]]) -> dict:
    """Rebuild the original encoder, load every saved adapter and head from disk, and compare the
    predictions with the trained in-memory model's on each task's test split."""
    import torch

    from tunelab.continual.model import MultiHeadClassifier, activate, load_head, load_tasks, predict_logits

    enc = load_tasks(env.build_encoder(), env.strategy, [(s.adapter, d) for s, d in saved])
    heads = {s.head: len(env.heads[s.head]) for s, _ in saved}
    fresh = MultiHeadClassifier(enc, heads, head_seeds={k: 0 for k in heads})
    out = {}
    for s, d in saved:
        load_head(fresh, s.head, d)
        ds = env.eval_dm(s).tokenized["test"]
        bs = int(env.cfg.optim.eval_batch_size)
        activate(model, env.strategy, s.head, s.adapter)
        a, _ = predict_logits(model, ds, env.tokenizer, bs)
        activate(fresh, env.strategy, s.head, s.adapter)
        b, _ = predict_logits(fresh, ds, env.tokenizer, bs)
        out[s.name] = {"max_abs_diff": float((a - b).abs().max()),
                       "same_predictions": bool(torch.equal(a.argmax(-1), b.argmax(-1)))}
    return out
