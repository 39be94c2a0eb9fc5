"""``freeze.probe``: how ``freeze=all`` fits the classifier on a frozen encoder (a linear probe).

With every encoder weight frozen, the only thing left to learn is a linear map from a fixed
vector per text to the classes: a small convex problem. Treating it like fine-tuning (the head
trained at the encoder's lr of 5e-5 for 3 epochs) leaves it at the class prior: on the packaged
tweets every seed predicted the majority class. So the head is fitted the way frozen features
are used in practice (SentEval, linear probes of representation papers):

* ``fit: logreg`` (default): L2 logistic regression on standardised features, its ``C`` chosen by
  stratified k-fold CV on the training split (``C: null``; a number fixes it). Convex, so seeds
  change only the CV folds. The very code of ``method=features`` with the same pooling and C:
  ``freeze=all`` and ``method=features method.pooling=mean`` give the same numbers (tested).
* ``fit: head``: the Hugging Face model's own head (dropout + classifier) trained by Lightning on
  the cached features with its own learning rate and epochs (``lr``, ``epochs``); batches,
  dropout and checkpoints as in fine-tuning, seconds per run from the cache.
* ``fit: paper``: the fine-tuning recipe unchanged (pooler output, ``optim.lr``, ``optim.epochs``),
  as in Hart 2020's frozen arm; kept to show its failure on purpose, never the default.

Pooling: ``mean`` by default. Sentence-embedding encoders such as the packaged all-MiniLM-L6-v2
are trained so that the mean of the last layer over real tokens is the text's vector; for plain
BERT checkpoints mean pooling is also the stronger frozen feature (the pooler was trained for
next-sentence prediction, not for the task). ``paper`` always reads the pooler, as the HF head does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from tunelab.errors import ConfigError
from tunelab.schemas.checks import bounded, choice


@dataclass
class ProbeConfig:
    # logreg | head | paper (module docstring)
    fit: str = choice("logreg", "logreg", "head", "paper")
    # cls | mean | concat_last4 | pooler (tunelab.models.features.POOLINGS)
    pooling: str = choice("mean", "cls", "mean", "concat_last4", "pooler")
    # logreg: inverse L2 strength; null = chosen from Cs by cv-fold CV (log loss) on train.
    C: Optional[float] = bounded(None, 0, lo_open=True)
    Cs: List[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])
    cv: int = bounded(5, 2)
    max_iter: int = bounded(2000, 1)
    # head: AdamW step and epochs of the head alone (warm-up and decay as optim.* say).
    lr: float = bounded(1e-3, 0, lo_open=True)
    epochs: int = bounded(20, 1)


def check_probe(freeze: Any, task: str, method: str, augment: str = "none") -> None:
    """The ``freeze.probe`` rules across fields (choices and ranges are on the fields)."""
    probe = freeze.get("probe")
    if probe is None:
        return
    if freeze.mode != "all":
        raise ConfigError(f"freeze.probe fits a classifier on a fully frozen encoder, but freeze={freeze.name} "
                          f"trains encoder layers: drop freeze.probe or use freeze=all.")
    if probe.fit == "head" and probe.pooling == "concat_last4":
        raise ConfigError("freeze.probe.fit=head trains the model's own classifier, which reads one hidden-size "
                          "vector: use freeze.probe.pooling=cls|mean|pooler, or fit=logreg for concat_last4.")
    if method == "curriculum" and probe.fit != "paper":
        raise ConfigError(f"a curriculum trains each stage's head with optim.* (freeze.probe.fit={probe.fit} is "
                          f"for one task): add freeze.probe.fit=paper to freeze=all, or use strategy=adapters|lora.")
    if augment != "none" and probe.fit == "logreg" and task == "seq_cls":
        raise ConfigError(f"augment={augment} adds training texts, but freeze.probe.fit=logreg fits on the encoder "
                          f"features of the data as loaded: use freeze.probe.fit=head (or paper), or drop augment=.")
