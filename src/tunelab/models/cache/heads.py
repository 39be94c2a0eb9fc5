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


def _pooler_head(model):
    # BertForSequenceClassification, AlbertForSequenceClassification: classifier(dropout(pooler_output))
    return "pooler", lambda x: model.classifier(model.dropout(x))


def _distilbert_head(model):
    # DistilBertForSequenceClassification: classifier(dropout(relu(pre_classifier(h[:, 0]))))
    return "cls", lambda x: model.classifier(model.dropout(torch.relu(model.pre_classifier(x))))


def _cls_head(model):
    # RoBERTa, XLM-R, ELECTRA, MPNet: a classification head that reads features[:, 0] itself
    return "cls", lambda x: model.classifier(x[:, None])


def _deberta_head(model):
    # DebertaV2ForSequenceClassification: classifier(dropout(pooler(h))), its ContextPooler on h[:, 0]
    return "cls", lambda x: model.classifier(model.dropout(model.pooler(x[:, None])))


def _modernbert_head(model):
    # ModernBertForSequenceClassification: classifier(drop(head(h[:, 0] or the masked mean of h)))
    return str(model.config.classifier_pooling), lambda x: model.classifier(model.drop(model.head(x)))


# model_type -> (the pooling the family's sequence-classification head reads, that head).
HEADS = {"bert": _pooler_head, "albert": _pooler_head, "distilbert": _distilbert_head,
         "roberta": _cls_head, "xlm-roberta": _cls_head, "electra": _cls_head, "mpnet": _cls_head,
         "deberta-v2": _deberta_head, "modernbert": _modernbert_head}


def unsupported(model_type: Optional[str]) -> Optional[str]:
    """Why the feature cache cannot serve this family's head (None: it can)."""
    if model_type in HEADS:
        return None
    return (f"the cached head is implemented for {', '.join(sorted(HEADS))} models, "
            f"not {model_type!r}")


def base_of(model):
    return getattr(model, model.base_model_prefix)


def head_parts(model) -> tuple[str, Callable]:
    """``(pooling, head_fn)``: which features the HF head reads and how it maps them to logits.

    ``head_fn`` uses the model's own modules, so the parameters trained (and their init) are the
    full forward pass's.
    """
    mtype = getattr(model.config, "model_type", None)
    if mtype not in HEADS:
        raise ValueError(f"no frozen-feature head for model_type={mtype!r}")
    return HEADS[mtype](model)


def pooled_head(model, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits of the family's head from the last layer's hidden states ``[B, T, H]`` (as the base
    model returns them: after a final norm, if the family has one)."""
    pooling, head = head_parts(model)
    if pooling == "pooler":  # tanh(dense(h[:, 0])): BERT's pooler module; ALBERT's dense + activation
        base = base_of(model)
        act = getattr(base, "pooler_activation", None)
        return head(act(base.pooler(hidden[:, 0])) if act is not None else base.pooler(hidden))
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return head((hidden * m).sum(1) / m.sum(1))
    return head(hidden[:, 0])


def task_loss(model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The loss the model's own forward computes for these logits (transformers' loss class:
    ``problem_type`` rules, cross-entropy for single-label classification)."""
    return model.loss_function(labels=labels, pooled_logits=logits, config=model.config)
