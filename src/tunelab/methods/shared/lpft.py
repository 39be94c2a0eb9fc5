"""The plan's ``lpft`` route: a linear probe, then the whole model fine-tuned from it (Kumar et al. 2022).

Fine-tuning starts from a random head, and while that head is still wrong its gradients push
the pretrained features around; LP-FT first fits the head alone on the frozen encoder (the
probe phase: exactly ``freeze=all``'s ``probe.fit=head`` route, on cached encoder outputs where
the family has a cached head), then fine-tunes everything from that head with a fresh optimiser
at ``optim.lr``. One job, two plans, both recorded (``plan.phases``); the test metrics are the
fine-tuned model's, the probe's validation metrics (when there is a validation split) are kept
as ``lp/val/...``.

Resuming: the probe phase writes no checkpoint and is cheap and deterministic for a seed, so a
resumed job runs it again and then continues the fine-tuning from its own last checkpoint.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig, open_dict

from tunelab.methods.shared.data import load_data, positive_index
from tunelab.methods.shared.encoder import load_task_model
from tunelab.methods.shared.record import encoder_record
from tunelab.training import build_trainer, resolve_ckpt, train_and_test

log = logging.getLogger("tunelab")


def _probe_cfg(cfg: DictConfig, lp_route) -> DictConfig:
    """The probe phase's settings: its lr and epochs, no checkpoints, no early stopping."""
    c = cfg.copy()
    with open_dict(c):
        for k, v in lp_route.optim.items():
            c.optim[k] = v
        c.optim.early_stopping_patience = None
        c.trainer.enable_checkpointing = False
    return c


def _probe_module(c: DictConfig, lp_route, model, tokenizer, dm, splits, report, plan):
    """(module, datamodule) of the probe phase: the head on cached outputs, or the full pass."""
    from tunelab.models.cache.frozen import FeatureDataModule, FrozenFeatureClassifier, encode_splits
    from tunelab.models.cache.heads import head_parts
    from tunelab.models.modules import TASK_MODULES
    from tunelab.seeds import init_seed

    names = dm.label_names
    if lp_route.runner == "features":
        feats, hits, secs = encode_splits(c, model, tokenizer, splits, report, seed=init_seed(c),
                                          batch_size=max(int(c.optim.eval_batch_size), 64), pooling=lp_route.pooling)
        log.info("[tunelab] lpft probe: frozen-encoder features "
                 + ", ".join(f"{s} {'cached' if h else 'computed'}" for s, h in hits.items()) + f" ({secs:.1f} s)")
        labels = {s: getattr(splits, s)["label"].to_numpy() for s in feats}
        fdm = FeatureDataModule(dm, feats, labels, pin_memory=torch.cuda.is_available())
        module = FrozenFeatureClassifier(model, head_fn=head_parts(model)[1], plan=plan, num_labels=len(names),
                                         positive_index=positive_index(names, c.data), optim_cfg=c.optim,
                                         label_names=names, log=log.info)
        return module, fdm
    kw = dict(plan=plan, num_labels=len(names), optim_cfg=c.optim, label_names=names, log=log.info)
    if c.task.name == "seq_cls":
        kw["positive_index"] = positive_index(names, c.data)
    return TASK_MODULES[c.task.name](model, **kw), dm


def run_lpft(cfg: DictConfig, ctx, route) -> dict:
    """Probe, then fine-tune; returns the record's fields (the fine-tuned model's test metrics)."""
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.modules import TASK_MODULES
    from tunelab.models.plan import Route, make_plan
    from tunelab.models.policy import Policy

    tokenizer = load_tokenizer(cfg.model)
    dm, splits = load_data(cfg, tokenizer)
    model, report = load_task_model(cfg, dm)
    # Phase 1: the head alone on the frozen encoder.
    lp_route = route.lp
    c = _probe_cfg(cfg, lp_route)
    lp_plan = make_plan(lp_route, model, c.optim)
    module, datamodule = _probe_module(c, lp_route, model, tokenizer, dm, splits, report, lp_plan)
    log.info(f"[tunelab] lpft: probe phase — the head alone for {c.optim.epochs} epochs at lr {c.optim.lr:g} "
             f"({lp_route.runner}, {lp_plan.trainable_params:,} trainable)")
    trainer = build_trainer(c, ctx.out_dir, False, monitor=None, mode="max", max_epochs=int(c.optim.epochs))
    trainer.fit(module, datamodule=datamodule)
    lp_metrics = {f"lp/{k}": float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    # Phase 2: everything, from the probed head, with a fresh optimiser and schedule.
    ft_route = Route.direct(Policy(name=route.policy.name, mode="none"), cfg.task.name,
                            why="lpft: fine-tuning everything from the probed head")
    ft_plan = make_plan(ft_route, model, cfg.optim)
    names = dm.label_names
    kw = dict(plan=ft_plan, num_labels=len(names), optim_cfg=cfg.optim, label_names=names, log=log.info)
    if cfg.task.name == "seq_cls":
        kw["positive_index"] = positive_index(names, cfg.data)
    module = TASK_MODULES[cfg.task.name](model, **kw)
    log.info(f"[tunelab] lpft: fine-tuning phase — everything at lr {cfg.optim.lr:g} for {cfg.optim.epochs} epochs")
    metrics, trainer = train_and_test(cfg, ctx, module, dm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    rec = encoder_record(cfg, metrics={**metrics, **lp_metrics}, splits=splits, module=module, trainer=trainer,
                         dm=dm, report=report)
    rec["plan"] = {**ft_plan.record(), "mode": "lpft", "fit": "lpft", "runner": "lpft", "cache": route.cache, "cache_why": route.why,
                   "phases": [lp_plan.record(), ft_plan.record()]}
    return rec
