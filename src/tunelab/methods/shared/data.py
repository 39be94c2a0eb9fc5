"""The data every method reads: the same splits, tokenised and logged the same way.

Every method of a study must be measured on the same ground: :func:`load_splits` gives exactly
the train/val/test split an encoder run of the same ``data`` config uses (the split depends on
``data.split_seed`` only), and :func:`describe_splits` logs every dropped row and data note, so
nothing is dropped silently.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from tunelab.errors import TunelabError
from tunelab.seeds import order_seed

log = logging.getLogger("tunelab")


def load_data(cfg: DictConfig, tokenizer):
    """Datamodule with its splits loaded, dropped rows and notes logged, tokenised for fit."""
    dm = build_datamodule(cfg, tokenizer, train_transform=train_transform_of(cfg))
    splits = dm.load()
    describe_splits(cfg, splits)
    dm.setup("fit")
    return dm, splits


def load_splits(cfg: DictConfig):
    """The splits of a method that reads whole texts without a tokenizer (sparse, features,
    zero-shot); augmentation does not apply to them (tunelab.validation refuses it)."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    splits = make_splits(load_raw(cfg.data, "seq_cls"), cfg.data, "seq_cls")
    describe_splits(cfg, splits)
    return splits


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


def class_space(cfg: DictConfig, splits) -> tuple[int, int]:
    """(number of classes, index of the class binary F1 is about: ``data.positive_label``)."""
    return len(splits.label_names), positive_index(splits.label_names, cfg.data)


def label_counts(splits) -> dict:
    """Class counts the report needs to score the majority-class baseline's F1 exactly."""
    names = splits.label_names
    if not names or "label" not in splits.train:
        return {}
    import numpy as np

    counts = {s: np.bincount(getattr(splits, s)["label"], minlength=len(names))
              for s in splits.names if s != "val"}
    return {"majority_label": names[int(counts["train"].argmax())],
            # train_, test_ and (with an out-of-domain split) test_ood_label_counts
            **{f"{s}_label_counts": {n: int(c) for n, c in zip(names, k)} for s, k in counts.items()}}


def train_transform_of(cfg: DictConfig):
    """The training-split transform (augmentation), if the config asks for one."""
    aug = cfg.get("augment")
    if aug is None or aug.get("name", "none") == "none":
        return None
    from tunelab.augment import train_transform

    return train_transform(aug)
