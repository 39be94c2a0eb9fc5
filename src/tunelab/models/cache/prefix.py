"""A model cut in two at a frozen prefix: the bottom computed once, the top trained.

When a freeze policy freezes the embeddings and the first ``k`` transformer layers, those run
in eval mode without gradient (:mod:`tunelab.models.freezing`), so the hidden states they hand
layer ``k`` are a fixed function of the tokens. This module

  * takes that ``k`` from the plan (:meth:`tunelab.models.policy.Policy.prefix_layers`: the
    contiguous frozen run of layers above frozen embeddings, ``last_n`` or ``first_n``);
  * computes those hidden states once per example (:func:`prefix_states`), through the Hugging
    Face model's own forward (``output_hidden_states``: ``hidden_states[k]`` is the input of
    layer ``k``), so token types, position ids and the attention implementation are HF's;
  * runs the rest (:func:`top_logits`): layers ``k..L-1`` with the attention mask prepared as
    the HF base model prepares it, then the pooler and the head with the model's own modules.

Why the top part matches the full forward: each real token's hidden state depends only on the
real tokens (padding is masked out of attention with the dtype's minimum, whose softmax weight
is exactly 0); padded positions are filled with zeros here and never read by a real token or
by the [CLS]-based heads. Batches keep the width of the uncached batches, so dropout in the top
layers draws masks of the same shape from the same RNG stream: the same masks. What remains is
float rounding from the prefix having run on differently padded batches (~1e-6).

BERT and DistilBERT are covered (:data:`SUPPORTED_TYPES`); their layer classes differ (a
``BertLayer`` takes the 4-d extended mask; DistilBERT's ``TransformerBlock`` takes the 2-d mask
unless SDPA is used) and so do their heads (pooler + classifier vs. pre_classifier on [CLS]:
:mod:`.heads`). For another family the plan says so (:func:`unsupported`) and the run takes
the full forward pass.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

SUPPORTED_TYPES = ("bert", "distilbert")


def unsupported(model_type: Optional[str]) -> Optional[str]:
    """Why the prefix cache cannot serve this family (None: it can)."""
    if model_type in SUPPORTED_TYPES:
        return None
    return (f"the prefix cache is implemented for {', '.join(SUPPORTED_TYPES)} models (their layers "
            f"are called one by one here), not {model_type!r}")


def layers_of(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, model.base_model_prefix)
    if model.config.model_type == "distilbert":
        return base.transformer.layer
    return base.encoder.layer


def _layer_mask(model: nn.Module, attention_mask: torch.Tensor, dtype: torch.dtype):
    """The mask the HF base model hands its layers (same branch on the attention implementation)."""
    from transformers.modeling_attn_mask_utils import _prepare_4d_attention_mask_for_sdpa

    base = getattr(model, model.base_model_prefix)
    impl = model.config._attn_implementation
    width = attention_mask.shape[1]
    if model.config.model_type == "distilbert":
        if impl == "flash_attention_2":
            return attention_mask if 0 in attention_mask else None
        if impl == "sdpa":
            return _prepare_4d_attention_mask_for_sdpa(attention_mask, dtype, tgt_len=width)
        return attention_mask
    # BertModel.forward: SDPA masks for absolute positions, else the additive extended mask.
    if impl == "sdpa" and getattr(base, "position_embedding_type", "absolute") == "absolute":
        return _prepare_4d_attention_mask_for_sdpa(attention_mask, dtype, tgt_len=width)
    return base.get_extended_attention_mask(attention_mask, attention_mask.shape)


def top_logits(model: nn.Module, k: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` (a BERT/DistilBERT sequence classifier) from layer ``k``'s input."""
    from tunelab.models.cache.heads import pooled_head

    mask = _layer_mask(model, attention_mask, hidden.dtype)
    # BertLayer returns (out, attention weights or None); TransformerBlock (..., out).
    pick = -1 if model.config.model_type == "distilbert" else 0
    for layer in layers_of(model)[k:]:
        hidden = layer(hidden, mask)[pick]
    return pooled_head(model, hidden)


@torch.inference_mode()
def prefix_states(model: nn.Module, k: int, rows: dict, order: np.ndarray, *, batch_size: int,
                  pad_id: int, device: str = "cpu"):
    """Yield ``(example indices, [B, T, H] float32 states on the CPU, lengths)`` in ``order``.

    ``rows`` holds the tokenised split's columns (``input_ids``, ``attention_mask``, and
    ``token_type_ids`` when the tokenizer makes them), one list per example; batches are padded
    to their longest row as the training collator pads them.
    """
    base = getattr(model, model.base_model_prefix)
    was = base.training
    base.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            lengths = np.array([len(rows["input_ids"][i]) for i in idx])
            width = int(lengths.max())
            batch = {}
            for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
                if key in rows:
                    a = np.full((len(idx), width), fill, dtype=np.int64)
                    for r, i in enumerate(idx):
                        a[r, :lengths[r]] = rows[key][i]
                    batch[key] = torch.from_numpy(a).to(device)
            out = base(**batch, output_hidden_states=True)
            yield idx, out.hidden_states[k].float().cpu(), lengths
    finally:
        base.train(was)
