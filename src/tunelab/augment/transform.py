"""EDA on a data set: per-example seeding, :func:`augment_examples`, and the training-split
transform that the data module applies (:func:`train_transform`)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tunelab.augment.eda import eda
from tunelab.augment.wordnet import WordNetMissingError, load_wordnet, wordnet_dir
from tunelab.errors import ConfigError
from tunelab.schemas.adaptation import as_augment_config, check_augment

__all__ = ["augment_examples", "example_rng", "train_transform", "wordnet_read"]

L = TypeVar("L")


def example_rng(seed: int, index: int) -> random.Random:
    """The generator for example ``index`` under ``seed``.

    Seeding from a string hashes it with SHA-512 (not Python's salted ``hash``), so the stream
    is the same in every process; one stream per example makes each example's augmentations
    independent of the others and of the order or sharding in which examples are processed.
    """
    return random.Random(f"tunelab.eda:{int(seed)}:{int(index)}")


# eda()'s keyword options and their defaults (the EDA paper's recommended setting).
EDA_DEFAULTS = {"num_aug": 4, "alpha_sr": 0.1, "alpha_ri": 0.1, "alpha_rs": 0.1, "p_rd": 0.1, "clean": False}


def augment_examples(
    texts: Sequence[str],
    labels: Sequence[L],
    *,
    seed: int,
    wordnet: Any = None,
    **options: Any,
) -> tuple[list[str], list[L]]:
    """Training texts plus ``num_aug`` EDA copies of each, with labels repeated alongside.

    ``options`` are :func:`~tunelab.augment.eda.eda`'s keyword options with its defaults
    (``num_aug``, ``alpha_sr``, ``alpha_ri``, ``alpha_rs``, ``p_rd``, ``clean``).

    Layout: the ``n`` originals first, unchanged and in order, then the copies grouped by
    source example (``num_aug`` for example 0, then for example 1, ...); the result has
    ``(num_aug + 1) * n`` items and ``out_labels[k]`` is the label of the example ``out_texts[k]``
    came from. The DataLoader shuffles anyway; the fixed layout makes the result easy to check
    and lets ``out[:n]`` recover the originals. With ``clean=True`` the originals are returned as
    given (only the copies are cleaned), so the un-augmented data are never altered.

    Deterministic: example ``i`` uses :func:`example_rng` ``(seed, i)``, so the same inputs and
    seed give identical output in any process, and a different seed gives different copies.
    The EDA options are trusted (see :func:`~tunelab.augment.eda.eda`).
    """
    if len(texts) != len(labels):
        raise ValueError(f"texts and labels differ in length: {len(texts)} != {len(labels)}")
    out_texts, out_labels = list(texts), list(labels)
    opts = {**EDA_DEFAULTS, **options}
    unknown = set(opts) - set(EDA_DEFAULTS)
    if unknown:
        raise TypeError(f"augment_examples: unknown EDA options {sorted(unknown)}")
    if opts["num_aug"] == 0:
        return out_texts, out_labels
    if wordnet is None and (opts["alpha_sr"] > 0 or opts["alpha_ri"] > 0):
        wordnet = load_wordnet()
    for i, (text, label) in enumerate(zip(texts, labels)):
        copies = eda(text, rng=example_rng(seed, i), wordnet=wordnet, **opts)
        out_texts.extend(copies)
        out_labels.extend([label] * len(copies))
    return out_texts, out_labels


def _reads_wordnet(cfg: Any) -> bool:
    """Synonym replacement and random insertion look words up in WordNet; swap and deletion do not."""
    return cfg.name != "none" and (cfg.alpha_sr > 0 or cfg.alpha_ri > 0)


def wordnet_read(aug_cfg: Any) -> Path | None:
    """The WordNet directory a job with this ``augment`` config reads (None: it reads none, or
    none is installed, which the job itself reports). An input like the data file: another
    WordNet gives other synonyms, so other training copies (:mod:`tunelab.ops.inputs`)."""
    if aug_cfg is None:
        return None
    try:
        check_augment(aug_cfg)
        cfg = as_augment_config(aug_cfg)
        return wordnet_dir() if _reads_wordnet(cfg) else None
    except (ConfigError, WordNetMissingError):  # said when the job builds its transform
        return None


def train_transform(aug_cfg: Any) -> Callable[[Any, int], Any] | None:
    """The training-split transform for ``run.train_transform_of``: ``fn(train_df, seed) -> df``.

    ``aug_cfg`` is the ``augment`` config node (or a mapping, or an ``AugmentConfig``); it is
    checked here, once (:func:`~tunelab.schemas.adaptation.check_augment`), so a bad sweep
    override fails at start-up with a ``ConfigError``, not after the model has loaded.

    ``train_df`` has ``text`` and ``label`` columns (the TRAIN split only; the data module never
    passes validation or test); the result has the originals first, then ``num_aug`` EDA copies
    of each with its label repeated, ``(num_aug + 1) * len(train_df)`` rows in all. The draws
    depend on ``seed + augment.seed_offset`` only (the run seed is passed in). ``augment=none``
    returns None. WordNet is loaded here, so a missing install fails before the model loads.
    """
    check_augment(aug_cfg)
    cfg = as_augment_config(aug_cfg)
    if cfg.name == "none":
        return None
    wordnet = None
    if _reads_wordnet(cfg):
        try:
            wordnet = load_wordnet()
        except WordNetMissingError as e:
            raise ConfigError(f"augment={cfg.name} needs WordNet: {e}") from None

    def transform(train_df: Any, seed: int) -> Any:
        import pandas as pd

        if "tokens" in train_df.columns or "text" not in train_df.columns:
            raise ConfigError(
                f"augment={cfg.name} works on sentence-level text classification only: it "
                "changes words, so token-level tags (NER) would no longer line up. "
                "Use augment=none."
            )
        has_labels = "label" in train_df.columns
        labels = train_df["label"].tolist() if has_labels else [None] * len(train_df)
        texts, out_labels = augment_examples(
            train_df["text"].astype(str).tolist(), labels, seed=int(seed) + cfg.seed_offset,
            num_aug=cfg.num_aug, alpha_sr=cfg.alpha_sr, alpha_ri=cfg.alpha_ri,
            alpha_rs=cfg.alpha_rs, p_rd=cfg.p_rd, wordnet=wordnet, clean=cfg.clean,
        )  # fmt: skip
        out = pd.DataFrame({"text": texts})
        if has_labels:
            out["label"] = pd.Series(out_labels, dtype=train_df["label"].dtype)
        return out

    return transform
