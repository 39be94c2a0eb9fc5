"""The Hugging Face heads and loss, called on cached encoder outputs.

A cached run trains what the full model would train, so it must call the *same* modules: the
task model's own pooler, dropout and classifier (initialised by ``from_pretrained`` exactly as
in the full forward pass), and the loss the model computes (``model.loss_function``, the
transformers loss class for its task). Nothing here re-implements a head or a loss; it only
knows which of the model's modules a family's head is made of.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

# model_type -> which features the family's sequence-classification head reads.
HEAD_POOLING = {"bert": "pooler", "distilbert": "cls"}


def unsupported(model_type: Optional[str]) -> Optional[str]:
    """Why the feature cache cannot serve this family's head (None: it can)."""
    if model_type in HEAD_POOLING:
        return None
    return (f"the cached head is implemented for {', '.join(sorted(HEAD_POOLING))} models, "
            f"not {model_type!r}")


def base_of(model):
    return getattr(model, model.base_model_prefix)


def head_parts(model) -> tuple[str, Callable]:
    """``(pooling, head_fn)``: which features the HF head reads and how it maps them to logits.

    ``head_fn`` uses the model's own modules, so the parameters trained (and their init) are the
    full forward pass's.
    """
    mtype = getattr(model.config, "model_type", None)
    if mtype == "bert":
        # BertForSequenceClassification: logits = classifier(dropout(pooler_output))
        return "pooler", lambda x: model.classifier(model.dropout(x))
    if mtype == "distilbert":
        # DistilBertForSequenceClassification: classifier(dropout(relu(pre_classifier(h[:, 0]))))
        def fn(x):
            return model.classifier(model.dropout(torch.relu(model.pre_classifier(x))))
        return "cls", fn
    raise ValueError(f"no frozen-feature head for model_type={mtype!r}")


def pooled_head(model, hidden: torch.Tensor) -> torch.Tensor:
    """Logits of the family's head from the last layer's hidden states ``[B, T, H]``."""
    pooling, head = head_parts(model)
    if pooling == "pooler":
        return head(base_of(model).pooler(hidden))
    return head(hidden[:, 0])


def task_loss(model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss the model's own forward computes for these logits (transformers' loss class:
    ``problem_type`` rules, cross-entropy for single-label classification)."""
    return model.loss_function(labels=labels, pooled_logits=logits, config=model.config)
