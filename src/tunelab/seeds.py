"""Decomposed seeds: ``init_seed`` and ``order_seed`` split the one ``seed`` into its two roles.

Why: one ``seed`` drives the model's random weights, the dropout masks and the batch order
together, so a study cannot say *which* source of randomness makes one policy vary more than
another. Dodge et al. 2020 ("Fine-Tuning Pretrained Language Models: Weight Initializations,
Data Orders, and Early Stopping") separated weight initialisation from data order and found
that each explains a comparable share of the variance; HF Trainer's ``data_seed`` is the same
idea. Sweeping both (``-m 'init_seed=range(5)' 'order_seed=range(5)'``) gives a crossed design,
and the report decomposes each arm's variance into init, order and residual shares
(``tunelab.report.variance``).

What each one seeds (a null key means ``seed``, so a run without them is bit-identical to one
made before they existed):

* ``init_seed``: the global RNG (``lightning.seed_everything`` at the start of the job), from
  which the model draws its randomly initialised weights (the classification head; every weight
  with ``model.random_init``) **and, afterwards, the dropout masks** during training. Dropout
  follows the initialisation because both come from torch's global generator, while the data
  loaders draw from their own generators: keeping dropout with init needs no reseeding between
  model building and training (which would change today's runs). So "init" in the
  decomposition means "initial weights + dropout masks"; read it that way when comparing with
  Dodge et al.
* ``order_seed``: the training batch order (``LengthGroupedBatchSampler``), the loaders' own
  generators, and the augmentation draws — everything ``TextDataModule`` does at random.

The test split never depends on any of them (``data.split_seed``). Only ``method=finetune``
splits its seed this way; other methods refuse the keys at start-up instead of ignoring them.
"""

from __future__ import annotations

from typing import Any

from tunelab.errors import ConfigError

KEYS = ("seed", "init_seed", "order_seed")


def _or_seed(cfg: Any, key: str) -> int:
    value = cfg.get(key)
    return int(cfg.seed) if value is None else int(value)


def init_seed(cfg: Any) -> int:
    """The seed of the initial random weights and the dropout masks (``init_seed``, else ``seed``)."""
    return _or_seed(cfg, "init_seed")


def order_seed(cfg: Any) -> int:
    """The seed of the training data order (``order_seed``, else ``seed``)."""
    return _or_seed(cfg, "order_seed")


def check(cfg: Any, method: str) -> None:
    """init_seed/order_seed only where they are implemented (fine-tuning), never silently ignored."""
    given = [k for k in KEYS[1:] if cfg.get(k) is not None]
    if given and method != "finetune":
        raise ConfigError(f"{' and '.join(given)} {'split' if len(given) > 1 else 'splits'} the seed of "
                          f"method=finetune only; method={method} uses seed alone: drop {' and '.join(given)} "
                          f"(or use seed=).")
