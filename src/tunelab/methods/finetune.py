"""``method=finetune``: fine-tune an encoder on one task (seq_cls, token_cls, mlm).

The core of every study. Data -> tokenizer -> task module (``tunelab.models.modules``) around a
Hugging Face model with the freeze policy applied -> Lightning fit + test -> the record.

One branch each for the two frozen cases. ``freeze=all`` goes to :mod:`tunelab.methods.probe`,
which fits the classifier on the frozen encoder as ``freeze.probe`` says (logistic regression on
cached features by default; the cached head of :mod:`tunelab.methods.frozen_cache`; or this path
with the head's own lr). With frozen bottom layers (``freeze=last_n|first_n``) their output is
computed once and only the layers above train (:mod:`tunelab.methods.prefix_cache`; same
metrics as this path within 1e-5, tested).
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from tunelab.errors import TunelabError
from tunelab.seeds import order_seed
from tunelab.training import resolve_ckpt, train_and_test

log = logging.getLogger("tunelab")


def run(cfg: DictConfig, ctx) -> dict:
    """Fine-tune, test, and return the record's fields (``tunelab.run`` writes results.json)."""
    if cfg.freeze.mode == "all":
        from tunelab.methods import probe

        return probe.run(cfg, ctx)
    from tunelab.methods import prefix_cache

    no_prefix = prefix_cache.why_not(cfg)
    if no_prefix is None:
        return prefix_cache.run(cfg, ctx)
    if cfg.freeze.mode in prefix_cache.PREFIX_MODES:
        log.info(f"[tunelab] freeze={cfg.freeze.name}: no frozen-prefix cache ({no_prefix})")
    return run_encoder(cfg, ctx)


def run_encoder(cfg: DictConfig, ctx) -> dict:
    """Fine-tune an encoder on one task: the core of every study."""
    from tunelab.models.loading import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    dm, splits = load_data(cfg, tokenizer)
    module, report = build_module(cfg, dm)
    metrics, trainer = train_and_test(cfg, ctx, module, dm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    if cfg.task.name == "mlm" and "test/loss" in metrics:
        from tunelab.models.modules import perplexity

        metrics["test/perplexity"] = perplexity(metrics["test/loss"])
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report)


def load_data(cfg: DictConfig, tokenizer):
    """Datamodule with its splits loaded, dropped rows and notes logged, tokenised for fit."""
    dm = build_datamodule(cfg, tokenizer, train_transform=train_transform_of(cfg))
    splits = dm.load()
    describe_splits(cfg, splits)
    dm.setup("fit")
    return dm, splits


def describe_splits(cfg: DictConfig, splits) -> None:
    """Log the split sizes, the labels, and every dropped row and data note: nothing silently."""
    for reason, n in splits.dropped.items():
        log.info(f"[tunelab] dropped {n} rows: {reason}")
    for note in splits.notes:
        log.info(f"[tunelab] note: {note}")
    log.info(f"[tunelab] data '{cfg.data.name}': " +
             ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items()) +
             (f"; labels {splits.label_names}" if splits.label_names and cfg.task.name == "seq_cls" else ""))


def build_datamodule(cfg: DictConfig, tokenizer, *, data_cfg=None, task_cfg=None, splits=None,
                     train_transform=None):
    from tunelab.data.datamodule import TextDataModule

    return TextDataModule(
        data_cfg if data_cfg is not None else cfg.data, task_cfg if task_cfg is not None else cfg.task,
        tokenizer, max_length=cfg.model.max_length, batch_size=cfg.optim.batch_size,
        eval_batch_size=cfg.optim.eval_batch_size, seed=order_seed(cfg), cache_dir=cfg.cache_dir,
        splits=splits, train_transform=train_transform,
    )


def positive_index(label_names: list[str], data_cfg: Any) -> int:
    """Which class F1 is about for binary tasks: ``data.positive_label``, else the second."""
    pos = getattr(data_cfg, "positive_label", None)
    if pos is None:
        return 1
    if pos not in label_names:
        raise TunelabError(f"data.positive_label={pos!r} is not one of the labels {label_names}.")
    return label_names.index(pos)


def build_module(cfg: DictConfig, dm, *, model_cfg=None, task_name=None, model=None):
    """The task's LightningModule around a freshly loaded (or given) Hugging Face model."""
    from tunelab.models import dropout
    from tunelab.models.loading import load_model, print_load_report
    from tunelab.models.modules import TASK_MODULES

    task_name = task_name or cfg.task.name
    label_names = dm.label_names
    report = None
    if model is None:
        model, report = load_model(model_cfg or cfg.model, task_name,
                                   num_labels=len(label_names) if label_names else None,
                                   label_names=label_names, fast_dropout=dropout.wanted(cfg.trainer))
        print_load_report(report, log.info)
    kw = dict(optim_cfg=cfg.optim, freeze_cfg=cfg.freeze, label_names=label_names, log=log.info)
    cls = TASK_MODULES[task_name]
    if task_name == "seq_cls":
        module = cls(model, num_labels=len(label_names), positive_index=positive_index(label_names, cfg.data), **kw)
    elif task_name == "token_cls":
        module = cls(model, num_labels=len(label_names), **kw)
    else:
        module = cls(model, **kw)
    return module, report


def encoder_record(cfg: DictConfig, *, metrics: dict, splits, module, trainer, dm, report, **extra) -> dict:
    """The part of results.json a fine-tuning runner fills in (``extra`` adds task-specific keys)."""
    from tunelab.data.splits import majority_rate

    return {
        "metrics": metrics,
        "majority_rate": majority_rate(splits) if cfg.task.name == "seq_cls" else None,
        "pred_class_counts": module.test_outputs.get("pred_class_counts"),
        # Per-example test predictions: run.py writes them to predictions.npz.
        "predictions": module.test_outputs.get("predictions"),
        "label_names": splits.label_names,
        "n_examples": splits.sizes(),
        "params": module.param_counts(),
        "extra": {
            "dropped_rows": splits.dropped,
            **label_counts(splits),
            "data_notes": splits.notes,
            "tokenization_cache_hits": dm.cache_hits,
            "model_load": {"missing": report.missing, "notes": report.notes} if report else None,
            "epochs_run": trainer.current_epoch,
            "steps_run": trainer.global_step,
            **extra,
        },
    }


def label_counts(splits) -> dict:
    """Class counts the report needs to score the majority-class baseline's F1 exactly."""
    names = splits.label_names
    if not names or "label" not in splits.train:
        return {}
    import numpy as np

    train = np.bincount(splits.train["label"], minlength=len(names))
    test = np.bincount(splits.test["label"], minlength=len(names))
    return {
        "majority_label": names[int(train.argmax())],
        "train_label_counts": {n: int(c) for n, c in zip(names, train)},
        "test_label_counts": {n: int(c) for n, c in zip(names, test)},
    }


def train_transform_of(cfg: DictConfig):
    """The training-split transform (augmentation), if the config asks for one."""
    aug = cfg.get("augment")
    if aug is None or aug.get("name", "none") == "none":
        return None
    from tunelab.augment import train_transform

    return train_transform(aug)
