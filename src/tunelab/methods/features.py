"""``method=features``: a classifier on frozen-encoder features.

The encoder's pooled output (``method.pooling=cls|mean|concat_last4|pooler``) + a logistic
regression or a single dense layer (``method.classifier=logreg|linear``): the computation of
:mod:`tunelab.methods.shared.probe`, which ``freeze=all``'s probe runs too.
"""

from __future__ import annotations

from omegaconf import DictConfig

from tunelab.methods.shared.probe import encoder_params, fit_features
from tunelab.models.plan import fixed_record


def run(cfg: DictConfig, ctx) -> dict:
    """Frozen-encoder features (cached on disk) + logistic regression or a dense layer."""
    # The encoder is a fixed function of the text: its random init (model.random_init) is drawn
    # under method.encoder_seed, not the run seed, so seeds vary the classifier only and reuse
    # one cache entry.
    cache = str(cfg.cache_dir) if cfg.cache_dir else None
    rec = fit_features(cfg, ctx, cfg.method, job_type="features", where="method", cache_dir=cache)
    rec["plan"] = fixed_record(runner="features", cache="features" if cache else "none",
                               why="a fixed encoder's pooled features" + (", cached" if cache else ""),
                               encoder_params=encoder_params(cfg.model), classifier_params=rec["params"]["trainable"],
                               pooling=str(cfg.method.pooling))
    return rec
