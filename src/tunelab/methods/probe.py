"""``freeze=all``: fit the classifier on the frozen encoder as ``freeze.probe`` says.

``tunelab.methods.finetune.run`` hands every ``freeze=all`` job here. Why the head of a frozen
encoder is not trained like a fine-tuned model, and what each ``freeze.probe.fit`` does, is in
:mod:`tunelab.schemas.probe`. The routes, each logged when taken:

* ``logreg`` on sequence classification: :func:`tunelab.methods.features.fit_features`, the code
  of ``method=features``, on the probe's pooling (features from the disk cache unless
  ``trainer.feature_cache=false``);
* ``head``: the Lightning head on cached features (:mod:`tunelab.methods.frozen_cache`) with
  ``optim.lr``/``optim.head_lr`` set to ``probe.lr`` and ``optim.epochs`` to ``probe.epochs``;
  where the cache does not apply (token classification, augmentation, a checkpoint to resume,
  a model type without a cached head) the same optimiser settings drive the full forward pass.
  For token classification ``logreg`` has no per-token counterpart here, so it trains this way too;
* ``paper``: the fine-tuning recipe as configured (``optim.*``, the pooler output).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict

log = logging.getLogger("tunelab")


def fit_of(cfg: DictConfig) -> str:
    probe = cfg.freeze.get("probe")
    return "paper" if probe is None else str(probe.fit)


def with_head_optim(cfg: DictConfig) -> DictConfig:
    """A copy of ``cfg`` whose optimiser trains the head alone: lr, head lr and epochs from the probe."""
    probe = cfg.freeze.probe
    out = cfg.copy()
    with open_dict(out):
        out.optim.lr = float(probe.lr)
        out.optim.head_lr = float(probe.lr)
        out.optim.epochs = int(probe.epochs)
    return out


def encoder_params(model_cfg) -> int:
    """Parameters of the frozen encoder, counted on the meta device (no weights read)."""
    import torch
    from transformers import AutoModel

    from tunelab.models.loading import load_config

    with torch.device("meta"):
        model = AutoModel.from_config(load_config(model_cfg))
    return int(sum(p.numel() for p in model.parameters()))


def run(cfg: DictConfig, ctx) -> dict:
    from tunelab.methods import frozen_cache
    from tunelab.methods.finetune import run_encoder

    fit = fit_of(cfg)
    if fit == "logreg" and cfg.task.name == "seq_cls":
        return run_logreg(cfg, ctx)
    if fit != "paper":
        if fit == "logreg":
            log.info(f"[tunelab] freeze=all task={cfg.task.name}: freeze.probe.fit=logreg is for sequence "
                     "classification; training the head instead (fit=head)")
        cfg = with_head_optim(cfg)
        log.info(f"[tunelab] freeze=all: the head trains alone at lr {cfg.optim.lr:g} for {cfg.optim.epochs} "
                 f"epochs (freeze.probe.lr, .epochs)")
    why_not = frozen_cache.why_not(cfg)
    if why_not is None:
        pooling = None if fit == "paper" else str(cfg.freeze.probe.pooling)
        log.info("[tunelab] freeze=all: the encoder is fixed, so its outputs are computed once and cached; "
                 "only the head trains (trainer.feature_cache=false for the full forward pass)")
        return frozen_cache.run(cfg, ctx, pooling=pooling)
    log.info(f"[tunelab] freeze=all without the feature cache: {why_not}")
    return run_encoder(cfg, ctx)


def run_logreg(cfg: DictConfig, ctx) -> dict:
    """Logistic regression on the frozen encoder's pooled features, C chosen by CV."""
    from omegaconf import OmegaConf

    from tunelab.methods.features import fit_features
    from tunelab.seeds import order_seed

    probe = cfg.freeze.probe
    # The method=features node this probe is: same code, same numbers as method=features
    # method.pooling=<pooling> (random-init encoders drawn under seed 0 in both).
    fc = OmegaConf.create({"pooling": probe.pooling, "classifier": "logreg", "standardize": True,
                           "batch_size": max(int(cfg.optim.eval_batch_size), 64), "encoder_seed": 0,
                           "C": probe.C, "Cs": list(probe.Cs), "cv": int(probe.cv),
                           "max_iter": int(probe.max_iter)})
    cache = str(cfg.cache_dir) if cfg.cache_dir and bool(cfg.trainer.feature_cache) else None
    log.info(f"[tunelab] freeze=all: logistic regression on the frozen encoder's {probe.pooling}-pooled "
             f"features (freeze.probe.fit=logreg; fit=head or fit=paper train the HF head instead)")
    # A convex fit has no initialisation; the CV folds are its only randomness: the data order.
    return fit_features(cfg, ctx, fc, job_type="finetune", where="freeze.probe", cache_dir=cache,
                        total_params=encoder_params(cfg.model), seed=order_seed(cfg))
