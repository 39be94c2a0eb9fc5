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
  Sequence classification only: a tagger predicts at every token, so there ``freeze=all`` trains
  the model's own token head as ``fit: head`` does, and its plan records ``fit: head``.
* ``fit: head``: the Hugging Face model's own head (dropout + classifier) trained by Lightning on
  the cached features with its own learning rate and epochs (``lr``, ``epochs``); batches,
  dropout and checkpoints as in fine-tuning, seconds per run from the cache.
* ``fit: paper``: the fine-tuning recipe unchanged (pooler output, ``optim.lr``, ``optim.epochs``),
  as in Hart 2020's frozen arm; kept to show its failure on purpose, never the default.

Pooling: ``mean`` by default. Sentence-embedding encoders such as the packaged all-MiniLM-L6-v2
are trained so that the mean of the last layer over real tokens is the text's vector; for plain
BERT checkpoints mean pooling is also the stronger frozen feature (the pooler was trained for
next-sentence prediction, not for the task). ``paper`` always reads the pooler, as the HF head does;
``pooling: head`` (fit=head) reads what the model's own head reads, as ``freeze=lpft``'s probe must
(the fine-tuning continues from that head).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from tunelab.schemas.checks import bounded, choice


@dataclass
class ProbeConfig:
    # logreg | head | paper (module docstring)
    fit: str = choice("logreg", "logreg", "head", "paper")
    # cls | mean | concat_last4 | pooler (tunelab.models.cache.features.POOLINGS)
    # head: what the model's own head reads (BERT: the pooler; DistilBERT: [CLS]); LP-FT's probe.
    pooling: str = choice("mean", "cls", "mean", "concat_last4", "pooler", "head")
    # logreg: inverse L2 strength; null = chosen from Cs by cv-fold CV (log loss) on train.
    C: Optional[float] = bounded(None, 0, lo_open=True)
    Cs: List[float] = field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0])
    cv: int = bounded(5, 2)
    max_iter: int = bounded(2000, 1)
    # head: AdamW step and epochs of the head alone (warm-up and decay as optim.* say).
    lr: float = bounded(1e-3, 0, lo_open=True)
    epochs: int = bounded(20, 1)
