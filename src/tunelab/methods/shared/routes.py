"""The plan's route, run: what ``method=finetune`` (and ``method=adapt``'s fine-tuning stage) does.

The route (:func:`tunelab.models.plan.route_of`, decided once from the config and the model's
config) names the runner; this module only dispatches to it:

* ``encoder``  — :func:`tunelab.methods.shared.encoder.run_encoder`, the full forward pass;
* ``features`` / ``prefix`` — the same, on cached outputs of the frozen part
  (:mod:`tunelab.methods.shared.cached`; same numbers, tested);
* ``logreg``   — the frozen probe (:func:`tunelab.methods.shared.probe.run_logreg`);
* ``lpft``     — a probe, then everything fine-tuned from it (:mod:`tunelab.methods.shared.lpft`).
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, open_dict

from tunelab.methods.shared import cached, encoder, lpft, probe

log = logging.getLogger("tunelab")


def with_route_optim(cfg: DictConfig, route) -> DictConfig:
    """``cfg`` with the optim.* keys the route sets (the probe's head lr and epochs), as a copy."""
    if not route.optim:
        return cfg
    out = cfg.copy()
    with open_dict(out):
        for k, v in route.optim.items():
            out.optim[k] = v
    return out


def run_route(cfg: DictConfig, ctx, route=None) -> dict:
    """Train and test as the plan's route says; returns the record's fields."""
    from tunelab.models.plan import route_of

    route = route or route_of(cfg)
    log.info(f"[tunelab] plan: freeze={route.policy.name} -> runner {route.runner}, cache {route.cache} "
             f"({route.why})")
    if route.optim:
        log.info("[tunelab] freeze=all: the head trains alone at " +
                 ", ".join(f"optim.{k}={v:g}" for k, v in route.optim.items()) + " (freeze.probe.lr, .epochs)")
    cfg = with_route_optim(cfg, route)
    if route.runner == "logreg":
        return probe.run_logreg(cfg, ctx, route)
    if route.runner == "features":
        return cached.run_features(cfg, ctx, route)
    if route.runner == "prefix":
        return cached.run_prefix(cfg, ctx, route)
    if route.runner == "lpft":
        return lpft.run_lpft(cfg, ctx, route)
    return encoder.run_encoder(cfg, ctx, route)
