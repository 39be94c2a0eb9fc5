"""Schemas for masked-LM domain adaptation and training-text augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from tunelab.schemas.checks import choice


@dataclass
class AdaptConfig:
    """Stage 1 of a two-stage run: masked-LM training on unlabelled text (tunelab.adapt).

    ``tapt``: the task's own *training* texts (never its validation/test texts);
    ``dapt``: a separate domain corpus (``corpus``). Stage 2 fine-tunes the adapted encoder on
    the labelled task through the normal path.
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
    heldout_size: float = 0.1
    # Cap on held-out texts (perplexity is evaluated several times).
    max_heldout: int = 1000
    # Masking (BERT's recipe by default): select mlm_probability of the tokens; of those
    # mask_replace_prob -> [MASK], random_replace_prob -> a random token, the rest unchanged.
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
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
    head_warmup_steps: int = 0
    head_warmup_lr: float = 1e-3
    # Forgetting: a data config name whose held-out (test-split) texts are scored by MLM
    # perplexity before and after adaptation (the original domain).
    eval_original: Optional[str] = None
    # Stop after stage 1 (save the encoder, record perplexities; no fine-tuning).
    skip_finetune: bool = False


@dataclass
class AugmentConfig:
    """Training-split augmentation (tunelab.augment); fields mirror ``AugmentSettings``."""

    # none | eda
    name: str = "none"
    num_aug: int = 4
    alpha_sr: float = 0.1
    alpha_ri: float = 0.1
    alpha_rs: float = 0.1
    p_rd: float = 0.1
    seed_offset: int = 0
    clean: bool = False
