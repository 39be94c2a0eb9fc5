"""The runners of the plan's cached routes: the frozen part runs once, the rest trains on it.

Both give the numbers of :func:`tunelab.methods.shared.encoder.run_encoder` (tested): the model
is loaded by the same call at the same point of the seeded RNG stream, the same plan is applied,
batches come from the same sampler. What is cached, and how, lives with the models
(:mod:`tunelab.models.cache`); this module only wires data, model, cache and Trainer together.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig

from tunelab.methods.shared.data import load_data, positive_index
from tunelab.methods.shared.encoder import build_module, load_task_model
from tunelab.methods.shared.record import encoder_record
from tunelab.training import resolve_ckpt, train_and_test

log = logging.getLogger("tunelab")


def run_features(cfg: DictConfig, ctx, route) -> dict:
    """``freeze=all`` (probe fit=head|paper): the HF head trained on cached encoder outputs.

    ``route.pooling`` None feeds the head what the HF model would (the full path's numbers); a
    pooling name (``freeze.probe.fit=head``) feeds it that hidden-size vector instead.
    """
    from tunelab.models.cache.frozen import FeatureDataModule, FrozenFeatureClassifier, encode_splits
    from tunelab.models.cache.heads import head_parts
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.plan import make_plan
    from tunelab.seeds import init_seed

    tokenizer = load_tokenizer(cfg.model)
    # Tokenised too: token lengths form the batches exactly as in the full path.
    dm, splits = load_data(cfg, tokenizer)
    label_names = dm.label_names
    # Same call, same point of the seeded RNG stream as build_module: same head init.
    model, report = load_task_model(cfg, dm)
    plan = make_plan(route, model, cfg.optim)
    feats, hits, secs = encode_splits(cfg, model, tokenizer, splits, report, seed=init_seed(cfg),
                                      batch_size=max(int(cfg.optim.eval_batch_size), 64), pooling=route.pooling)
    log.info("[tunelab] frozen-encoder features: "
             + ", ".join(f"{s} {'cached' if h else 'computed'}" for s, h in hits.items())
             + f" ({secs:.1f} s); training the head only")
    labels = {s: getattr(splits, s)["label"].to_numpy() for s in feats}
    fdm = FeatureDataModule(dm, feats, labels, pin_memory=torch.cuda.is_available())
    pooling, head_fn = head_parts(model)
    module = FrozenFeatureClassifier(
        model, head_fn=head_fn, plan=plan, num_labels=len(label_names),
        positive_index=positive_index(label_names, cfg.data), optim_cfg=cfg.optim,
        label_names=label_names, log=log.info)
    metrics, trainer = train_and_test(cfg, ctx, module, fdm, has_val=len(splits.val) > 0)
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report, feature_cache={"hits": hits, "pooling": route.pooling or pooling,
                                                        "seconds": round(secs, 3)})


def run_prefix(cfg: DictConfig, ctx, route) -> dict:
    """Frozen bottom layers (``last_n``/``first_n``): the top trained on cached prefix states."""
    from tunelab.models.cache.prefix_module import prepare
    from tunelab.models.loading import load_tokenizer

    dm, splits = load_data(cfg, load_tokenizer(cfg.model))
    plain, report = build_module(cfg, dm, route)
    module, pdm, info = prepare(cfg, plain, report, dm, splits)
    metrics, trainer = train_and_test(cfg, ctx, module, pdm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report, prefix_cache=info)
