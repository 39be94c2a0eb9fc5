"""The model a curriculum trains: one encoder and one classification head per label space (or
per task); the per-task adapters of the parameter-efficient strategies live in the encoder
(:mod:`tunelab.methods.curriculum.adapters`).

``MultiHeadClassifier`` looks enough like a Hugging Face classifier (``base_model``, ``config``,
``forward(**batch) -> loss, logits``) for ``tunelab.models.modules.SequenceClassifier`` and the freeze
machinery to drive it unchanged: the encoder is the base model, the heads are the ``head`` block.

Mixed training data (replay, joint) carries *global* labels: a head's classes occupy
``[offset, offset + n)``. While ``routes`` is set, training routes each example to its head by
that range; evaluation always uses ``active`` (one head, local labels).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, heads: dict[str, int], *, head_seeds: dict[str, int],
                 dropout: Optional[float] = None):
        super().__init__()
        self.encoder = encoder
        cfg = encoder.config
        hidden = cfg.hidden_size
        p = dropout if dropout is not None else (getattr(cfg, "classifier_dropout", None)
                                                 or getattr(cfg, "hidden_dropout_prob", 0.1))
        init_range = getattr(cfg, "initializer_range", 0.02)
        self.head_keys = list(heads)
        self.heads = nn.ModuleDict()
        for k, (key, n) in enumerate(heads.items()):
            lin = nn.Linear(hidden, n)
            # Seeded per head: the same head starts from the same weights in the curriculum and
            # in the task-alone baselines, whatever else consumed the global RNG before.
            g = torch.Generator().manual_seed(int(head_seeds[key]))
            with torch.no_grad():
                lin.weight.normal_(0.0, init_range, generator=g)
                lin.bias.zero_()
            self.heads[f"h{k}"] = nn.Sequential(nn.Dropout(p), lin)
        self.active: str = self.head_keys[0]
        # (head key, label offset, number of labels) while training on mixed data.
        self.routes: Optional[list[tuple[str, int, int]]] = None

    # Looks like a Hugging Face model to tunelab.models.freezing and the modules.
    @property
    def base_model(self) -> nn.Module:
        return self.encoder

    @property
    def config(self):
        return self.encoder.config

    def head(self, key: str) -> nn.Module:
        return self.heads[f"h{self.head_keys.index(key)}"]

    def pooled(self, input_ids, attention_mask=None, token_type_ids=None):
        kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        out = self.encoder(**kw)
        pooled = getattr(out, "pooler_output", None)
        return pooled if pooled is not None else out.last_hidden_state[:, 0]

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None, **_):
        from transformers.modeling_outputs import SequenceClassifierOutput

        h = self.pooled(input_ids, attention_mask, token_type_ids)
        routes = self.routes if self.training else None
        if routes and labels is not None and (len(routes) > 1 or routes[0][1] != 0):
            total = h.new_zeros(())
            for key, off, n in routes:
                mask = (labels >= off) & (labels < off + n)
                if mask.any():
                    logits = self.head(key)(h[mask])
                    total = total + F.cross_entropy(logits, labels[mask] - off, reduction="sum")
            return SequenceClassifierOutput(loss=total / labels.numel(), logits=None)
        key = routes[0][0] if routes else self.active
        logits = self.head(key)(h)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


def param_bytes(params) -> int:
    """Bytes the parameters take in memory (what a task costs to store)."""
    return int(sum(p.numel() * p.element_size() for p in params))
