"""An encoder trained under its plan: the LightningModule, and the full forward pass.

:func:`run_encoder` is the plan's ``encoder`` route: data -> tokenizer -> the task's
LightningModule around the Hugging Face model under its plan (:func:`build_module`) -> Lightning
fit + test -> the record. The cached routes (:mod:`.cached`) build the same module.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from tunelab.methods.shared.data import load_data, positive_index
from tunelab.methods.shared.record import encoder_record
from tunelab.training import resolve_ckpt, train_and_test

log = logging.getLogger("tunelab")


def run_encoder(cfg: DictConfig, ctx, route) -> dict:
    """The full forward pass: fine-tune an encoder on one task under its plan."""
    from tunelab.models.loading import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    dm, splits = load_data(cfg, tokenizer)
    module, report = build_module(cfg, dm, route)
    metrics, trainer = train_and_test(cfg, ctx, module, dm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    if cfg.task.name == "mlm" and "test/loss" in metrics:
        from tunelab.models.modules import perplexity

        metrics["test/perplexity"] = perplexity(metrics["test/loss"])
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report)


def load_task_model(cfg: DictConfig, dm, *, model_cfg=None, task_name=None):
    """``(model, load report)``: the task's Hugging Face model for ``dm``'s labels, freshly loaded."""
    from tunelab.models import dropout
    from tunelab.models.loading import load_model, print_load_report

    task_name = task_name or cfg.task.name
    label_names = dm.label_names
    model, report = load_model(model_cfg or cfg.model, task_name,
                               num_labels=len(label_names) if label_names else None,
                               label_names=label_names, fast_dropout=dropout.wanted(cfg.trainer))
    print_load_report(report, log.info)
    return model, report


def build_module(cfg: DictConfig, dm, route, *, model=None, task_name=None, **plan_kw):
    """``(module, load report)``: the task's LightningModule around a freshly loaded (or given)
    model, under the plan ``route`` and ``cfg.optim`` make (``plan_kw``: see ``make_plan``)."""
    from tunelab.models.modules import TASK_MODULES
    from tunelab.models.plan import make_plan

    task_name = task_name or cfg.task.name
    report = None
    if model is None:
        model, report = load_task_model(cfg, dm, task_name=task_name)
    plan = make_plan(route, model, cfg.optim, **plan_kw)
    label_names = dm.label_names
    kw = dict(plan=plan, optim_cfg=cfg.optim, label_names=label_names, log=log.info)
    cls = TASK_MODULES[task_name]
    if task_name == "seq_cls":
        module = cls(model, num_labels=len(label_names), positive_index=positive_index(label_names, cfg.data), **kw)
    elif task_name == "token_cls":
        module = cls(model, num_labels=len(label_names), **kw)
    else:
        module = cls(model, **kw)
    return module, report
