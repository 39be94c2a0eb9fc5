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

Every family whose layers can be called one by one is covered (:data:`SUPPORTED_TYPES`: BERT,
RoBERTa, XLM-R, ELECTRA, DistilBERT, DeBERTa-v2/v3, MPNet, ModernBERT); :func:`top_hidden` hands
each family's layers what its base model would (BERT's 4-d mask, DistilBERT's 2-d one, DeBERTa's
relative positions and shared relative embeddings, MPNet's position bias, ModernBERT's global and
sliding-window masks, rotary positions and final norm), and :mod:`.heads` applies its head. For
another family (or ALBERT, whose shared layer leaves no frozen bottom) the plan says why
(:func:`unsupported`) and the run takes the full forward pass.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

# Families whose layers are called one by one here, each with what its base model hands them.
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra")
SUPPORTED_TYPES = BERT_LIKE + ("distilbert", "deberta-v2", "mpnet", "modernbert")
NOT_SUPPORTED = {
    "albert": "its layers share one set of weights, so no frozen bottom exists (per-layer policies are refused)",
}


def unsupported(model_type: Optional[str], attn_implementation: Optional[str] = None) -> Optional[str]:
    """Why the prefix cache cannot serve this family (None: it can)."""
    if model_type == "modernbert" and attn_implementation == "flash_attention_2":
        return ("ModernBERT's flash-attention path unpads each batch inside its forward; the prefix "
                "cache runs its layers on padded batches (use attn_implementation sdpa or eager)")
    if model_type in SUPPORTED_TYPES:
        return None
    if model_type in NOT_SUPPORTED:
        return NOT_SUPPORTED[model_type]
    return (f"the prefix cache calls each family's layers one by one and knows {', '.join(SUPPORTED_TYPES)}, "
            f"not {model_type!r}")


def layers_of(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, model.base_model_prefix)
    mtype = model.config.model_type
    if mtype == "distilbert":
        return base.transformer.layer
    if mtype == "modernbert":
        return base.layers
    return base.encoder.layer


def _bert_mask(model: nn.Module, attention_mask: torch.Tensor, dtype: torch.dtype):
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
    # BertModel/RobertaModel.forward: SDPA masks for absolute positions, else the additive
    # extended mask (ElectraModel always uses the latter).
    sdpa_masks = model.config.model_type != "electra"
    if sdpa_masks and impl == "sdpa" and getattr(base, "position_embedding_type", "absolute") == "absolute":
        return _prepare_4d_attention_mask_for_sdpa(attention_mask, dtype, tgt_len=width)
    return base.get_extended_attention_mask(attention_mask, attention_mask.shape)


def top_hidden(model: nn.Module, k: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The base model's last hidden state from layer ``k``'s input: layers ``k..L-1`` called with
    what the family's base model hands them (masks, relative positions, rotary positions)."""
    base = getattr(model, model.base_model_prefix)
    mtype = model.config.model_type
    layers = layers_of(model)[k:]
    if mtype == "deberta-v2":  # DebertaV2Encoder.forward (its convolution runs after layer 0: k >= 1)
        enc = base.encoder
        mask, rel_pos, rel = enc.get_attention_mask(attention_mask), enc.get_rel_pos(hidden), enc.get_rel_embedding()
        for layer in layers:
            hidden = layer(hidden, mask, query_states=None, relative_pos=rel_pos, rel_embeddings=rel)[0]
        return hidden
    if mtype == "mpnet":  # MPNetModel + MPNetEncoder.forward: one relative-position bias for all layers
        mask = base.get_extended_attention_mask(attention_mask, attention_mask.shape)
        bias = base.encoder.compute_position_bias(hidden)
        for layer in layers:
            hidden = layer(hidden, mask, None, bias)[0]
        return hidden
    if mtype == "modernbert":  # ModernBertModel.forward (padded path): global and sliding-window masks
        mask, window = base._update_attention_mask(attention_mask, output_attentions=False)
        positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
        for layer in layers:
            hidden = layer(hidden, attention_mask=mask, sliding_window_mask=window, position_ids=positions)[0]
        return base.final_norm(hidden)
    mask = _bert_mask(model, attention_mask, hidden.dtype)
    # BertLayer returns (out, attention weights or None); TransformerBlock (..., out).
    pick = -1 if mtype == "distilbert" else 0
    for layer in layers:
        hidden = layer(hidden, mask)[pick]
    return hidden


def top_logits(model: nn.Module, k: int, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` (a sequence classifier of a supported family) from layer ``k``'s input."""
    from tunelab.models.cache.heads import pooled_head

    return pooled_head(model, top_hidden(model, k, hidden, attention_mask), attention_mask)


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
