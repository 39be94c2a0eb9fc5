"""The curriculum run: train the stages in order with the chosen strategy, evaluate every task
after every stage (the accuracy matrix R), train each task alone for forward transfer, check
the parameter-efficient strategies, and assemble the record (``extra.curriculum``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig

from tunelab.errors import ConfigError
from tunelab.methods.curriculum.env import PER_TASK_STRATEGIES, STRATEGIES, Env
from tunelab.methods.curriculum.stages import Stage, assign_heads, load_stages, stage_record
from tunelab.context import RunContext

log = logging.getLogger("tunelab")


def run_curriculum(cfg: DictConfig, ctx: RunContext) -> dict:
    """Train the stages in order with the configured strategy; R, ACC, BWT, FWT, forgetting."""
    from tunelab.methods.curriculum.adapters import adapter_params, save_task
    from tunelab.methods.curriculum.heatmap import plot_matrix
    from tunelab.methods.curriculum.metrics import continual_metrics
    from tunelab.methods.curriculum.model import param_bytes
    from tunelab.methods.curriculum.replay import replay_sample
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.plan import check_depth
    from tunelab.training import start_logger

    t_start = time.time()
    # "adapters available but none are activated": by design when a task is evaluated before
    # its adapter is trained (the bare base encoder).
    logging.getLogger("adapters.model_mixin").setLevel(logging.ERROR)
    strategy = str(cfg.strategy.name)
    if cfg.task.name != "seq_cls":
        raise ConfigError(f"curriculum={cfg.curriculum.name} supports task=seq_cls only (got task={cfg.task.name}).")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r} is not one of {list(STRATEGIES)}.")
    check_depth(cfg)
    tokenizer = load_tokenizer(cfg.model)
    stages = load_stages(cfg)
    if strategy == "replay":  # check the buffer settings before any training
        replay_sample(stages[0].splits.train, size=cfg.strategy.replay_size,
                      fraction=cfg.strategy.replay_fraction, seed=int(cfg.seed), stage_index=0)
    heads = assign_heads(stages, per_task=strategy in PER_TASK_STRATEGIES)
    env = Env(cfg, ctx, tokenizer, stages, heads, strategy)
    env.logger = start_logger(cfg, ctx, job_type="curriculum")
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
            if strategy in PER_TASK_STRATEGIES and cfg.strategy.save_adapters:
                # Rank 0 writes; every rank reloads for the check (every rank takes part in each evaluation).
                d = ctx.out_dir / "task_adapters" / f"{s.adapter}"
                if rank_zero_only.rank == 0:
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
    total_params = runs[-1]["total_params"]

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

    sizes = {k: int(sum(s.splits.sizes()[k] for s in stages)) for k in ("train", "val", "test")}
    curriculum = {
        "name": str(cfg.curriculum.name), "strategy": strategy, "tasks": tasks, "rows": rows,
        "stages": [stage_record(s) for s in stages], "heads": heads,
        "R": R, "R_f1_macro": R_f1, "initial": initial, "alone": alone,
        **{k: v for k, v in cm.items() if k != "T"},
        "final_pred_counts": {s.name: e["pred_counts"] for s, e in zip(stages, evals[-1])},
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
        # Each stage's plan is in extra.curriculum.runs; the last stage's stands for the job.
        "plan": {**runs[-1]["plan"], "stages": len(runs)},
        "extra": {"curriculum": curriculum},
    }


def reload_check(env: Env, model, saved: list[tuple[Stage, Path]]) -> dict:
    """Rebuild the original encoder, load every saved adapter and head from disk, and compare the
    predictions with the trained in-memory model's on each task's test split."""
    import torch

    from tunelab.methods.curriculum.adapters import activate, load_head, load_tasks
    from tunelab.methods.curriculum.model import MultiHeadClassifier

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # rank 0 has written every task's files
    enc = load_tasks(env.build_encoder(), env.strategy, [(s.adapter, d) for s, d in saved])
    heads = {s.head: len(env.heads[s.head]) for s, _ in saved}
    fresh = MultiHeadClassifier(enc, heads, head_seeds={k: 0 for k in heads})
    out = {}
    for s, d in saved:
        load_head(fresh, s.head, d)
        activate(model, env.strategy, s.head, s.adapter)
        a, _ = env.predict(model, s)
        activate(fresh, env.strategy, s.head, s.adapter)
        b, _ = env.predict(fresh, s)
        out[s.name] = {"max_abs_diff": float((a - b).abs().max()),
                       "same_predictions": bool(torch.equal(a.argmax(-1), b.argmax(-1)))}
    return out
