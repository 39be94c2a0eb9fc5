"""Schemas for masked-LM domain adaptation and training-text augmentation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Optional, get_type_hints

from tunelab.errors import ConfigError
from tunelab.schemas.checks import bounded, check_node, choice


@dataclass
class AdaptConfig:
    """Stage 1 of a two-stage run: masked-LM training on unlabelled text (tunelab.methods.adapt).

    ``tapt``: the task's own *training* texts (never its validation/test texts);
    ``dapt``: a separate domain corpus (``corpus``). Stage 2 fine-tunes the adapted encoder on
    the labelled task through the normal path. Ranges are declared on the fields; the rules
    across fields (tapt takes no corpus, dapt needs one) are ``tunelab.validation.check_adapt``.
    """

    # none | tapt (MLM on the task's own training texts) | dapt (MLM on a domain corpus)
    name: str = choice("none", "none", "tapt", "dapt")
    # dapt: a data config name under conf/data (drug_reviews, bbc_news, ...), or a file:
    # .txt (one text per line), .jsonl / .csv / .tsv (column ``text_column``).
    corpus: Optional[str] = None
    text_column: str = "text"
    encoding: str = "utf-8"
    # Use at most this many corpus texts (seeded by data.split_seed); null: all.
    max_texts: Optional[int] = None
    # Fraction of the corpus held out for perplexity (before/after, early stopping).
    heldout_size: float = bounded(0.1, 0, 1, lo_open=True, hi_open=True)
    # Cap on held-out texts (perplexity is evaluated several times).
    max_heldout: int = 1000
    # Masking (BERT's recipe by default): select mlm_probability of the tokens; of those
    # mask_replace_prob -> [MASK], random_replace_prob -> a random token, the rest unchanged.
    mlm_probability: float = bounded(0.15, 0, 1, lo_open=True)
    mask_replace_prob: float = bounded(0.8, 0, 1)
    random_replace_prob: float = bounded(0.1, 0, 1)
    whole_word_mask: bool = False
    # Optimisation of the MLM stage (independent of optim.*, which is stage 2's).
    lr: float = 5e-5
    epochs: int = 3
    max_steps: int = -1
    batch_size: Optional[int] = None  # null: optim.batch_size
    warmup_ratio: float = 0.06
    # Early stopping on held-out MLM loss (= log perplexity); null/0: off.
    early_stopping_patience: Optional[int] = 2
    val_check_interval: float = 1.0
    # Head-only warm-up before adaptation, for encoders shipped without a trained MLM head
    # (the packaged MiniLM): only the head trains (the decoder is tied to the word embeddings,
    # which stay frozen). The perplexity after it is the honest starting point.
    head_warmup_steps: int = bounded(0, 0)
    head_warmup_lr: float = 1e-3
    # Forgetting: a data config name whose held-out (test-split) texts are scored by MLM
    # perplexity before and after adaptation (the original domain).
    eval_original: Optional[str] = None
    # Stop after stage 1 (save the encoder, record perplexities; no fine-tuning).
    skip_finetune: bool = False


@dataclass
class AugmentConfig:
    """Training-split augmentation (tunelab.augment); checked by :func:`check_augment`.

    ``name``: ``none`` (the training data are used as they are) or ``eda``. ``num_aug``: copies
    per training example (the EDA paper: 16 for ~500 examples, 8 for ~2,000, 4 beyond ~5,000).
    ``alpha_sr``/``alpha_ri``/``alpha_rs``: fraction of the words changed by synonym
    replacement, random insertion and random swap; ``p_rd``: per-word deletion probability; 0
    switches an operation off. ``seed_offset`` is added to the run seed so the augmentation
    draws can be varied (or held fixed) independently of the model's initialisation and data
    order. ``clean``: apply the EDA reference code's lowercase/``a-z`` cleaning to the copies.
    """

    name: str = choice("none", "none", "eda")
    num_aug: int = bounded(4, 0)
    alpha_sr: float = bounded(0.1, 0, 1)
    alpha_ri: float = bounded(0.1, 0, 1)
    alpha_rs: float = bounded(0.1, 0, 1)
    p_rd: float = bounded(0.1, 0, 1)
    seed_offset: int = 0
    clean: bool = False


def as_augment_config(node: Any) -> AugmentConfig:
    """The ``augment`` options as a plain :class:`AugmentConfig`, from an OmegaConf node, a
    mapping or an ``AugmentConfig``: interpolations resolved, missing keys at their defaults,
    unknown keys ignored. Nothing is checked here (that is :func:`check_augment`)."""
    if isinstance(node, AugmentConfig):
        return replace(node)  # a copy: later edits to the caller's object change nothing here
    if not isinstance(node, Mapping):
        raise ConfigError(f"augment must be a mapping of options, got {node!r}.")
    values = {f.name: node[f.name] for f in fields(AugmentConfig) if f.name in node}
    return AugmentConfig(**values)


def check_augment(node: Any) -> None:
    """Raise :class:`~tunelab.errors.ConfigError` (one sentence naming the key, the value and
    what is allowed) unless the ``augment`` options can run.

    ``node`` is the ``augment`` config node (OmegaConf), a mapping or an ``AugmentConfig``.
    Beyond each field's declared type, choices and range: ``eda`` needs ``num_aug >= 1`` and at
    least one operation switched on, else it would only copy sentences. This is the one place
    these rules live; EDA itself trusts its callers.
    """
    cfg = as_augment_config(node)
    check_types(cfg, "augment")
    check_node(cfg, "augment")
    if cfg.name != "eda":
        return
    if cfg.num_aug < 1:
        raise ConfigError(
            f"augment.num_aug={cfg.num_aug} must be >= 1 with augment.name=eda "
            "(use augment=none for no augmentation)."
        )
    if not any(v > 0 for v in (cfg.alpha_sr, cfg.alpha_ri, cfg.alpha_rs, cfg.p_rd)):
        raise ConfigError(
            "augment.alpha_sr, alpha_ri, alpha_rs and p_rd are all 0, so augment.name=eda would "
            "only copy sentences; set at least one > 0 or use augment=none."
        )


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool or isinstance(value, bool):  # a bool is an int to Python, not to a config
        return kind is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if kind is float else kind)


def check_types(obj: Any, prefix: str) -> None:
    """The plain types (bool/int/float/str) of a dataclass built in Python rather than composed
    by Hydra (which checks types itself): ``AugmentConfig(alpha_sr="0.1")`` fails here."""
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        value, kind = getattr(obj, f.name), hints.get(f.name)
        if kind in _TYPE_WORDS and not _has_type(value, kind):
            raise ConfigError(f"{prefix}.{f.name}={value!r} must be {_TYPE_WORDS[kind]}.")
