"""The model a curriculum trains: one encoder, one classification head per label space (or per
task), and, for the parameter-efficient strategies, one adapter per task.

``MultiHeadClassifier`` looks enough like a Hugging Face classifier (``base_model``, ``config``,
``forward(**batch) -> loss, logits``) for ``tunelab.modules.SequenceClassifier`` and the freeze
machinery to drive it unchanged: the encoder is the base model, the heads are the ``head`` block.

Mixed training data (replay, joint) carries *global* labels: a head's classes occupy
``[offset, offset + n)``. While ``routes`` is set, training routes each example to its head by
that range; evaluation always uses ``active`` (one head, local labels).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from tunelab.errors import ConfigError


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

    # Looks like a Hugging Face model to tunelab.freezing and the modules.
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


# --------------------------------------------------------------------------- adapters


def init_bottleneck(encoder: nn.Module, where: str, model_name: str) -> nn.Module:
    """Give ``encoder`` adapter support (adapters library), or a ConfigError naming the stage."""
    try:
        import adapters

        adapters.init(encoder)
        if not hasattr(encoder, "add_adapter") or not hasattr(encoder, "train_adapter"):
            raise TypeError("the model has no adapter interface after adapters.init()")
    except ImportError as e:
        raise ConfigError(f"strategy=adapters needs the 'adapters' package (pip install adapters): {e}") from None
    except Exception as e:  # the library raises various types for unsupported architectures
        raise ConfigError(
            f"{where}: strategy=adapters cannot add a bottleneck adapter to model '{model_name}' "
            f"({type(encoder).__name__}): the adapters library does not support it "
            f"({type(e).__name__}: {e}). Use a BERT-family encoder, or strategy=lora or sequential."
        ) from None
    return encoder


def add_bottleneck(encoder: nn.Module, name: str, reduction_factor: int, where: str, model_name: str) -> None:
    from adapters import SeqBnConfig

    try:
        encoder.add_adapter(name, config=SeqBnConfig(reduction_factor=reduction_factor))
    except Exception as e:
        raise ConfigError(f"{where}: strategy=adapters could not add adapter '{name}' to model "
                          f"'{model_name}' ({type(e).__name__}: {e}).") from None


def lora_wrap(encoder: nn.Module, names: list[str], scfg: Any, where: str, model_name: str) -> nn.Module:
    """A PEFT model with one LoRA adapter per task (all created now: untrained LoRA is the identity)."""
    from peft import LoraConfig, get_peft_model

    def conf():
        return LoraConfig(r=int(scfg.lora_r), lora_alpha=int(scfg.lora_alpha), lora_dropout=float(scfg.lora_dropout),
                          target_modules=list(scfg.lora_target_modules), bias="none")

    try:
        pm = get_peft_model(encoder, conf(), adapter_name=names[0])
        for n in names[1:]:
            pm.add_adapter(n, conf())
    except Exception as e:
        raise ConfigError(f"{where}: strategy=lora cannot wrap model '{model_name}' with target modules "
                          f"{list(scfg.lora_target_modules)} ({type(e).__name__}: {e}).") from None
    return pm


# --------------------------------------------------------------------------- activation


def set_trainable(model: MultiHeadClassifier, strategy: str, heads: set[str], adapter: Optional[str]) -> None:
    """Before a stage: only what this strategy trains in it keeps ``requires_grad``."""
    enc = model.encoder
    if strategy == "adapters":
        enc.train_adapter(adapter)  # freezes the base and every other adapter, activates this one
    elif strategy == "lora":
        enc.set_adapter(adapter)
        for n, p in enc.named_parameters():
            p.requires_grad_("lora_" in n and f".{adapter}." in n)
    # full fine-tuning: the base stays as the freeze policy left it
    for key in model.head_keys:
        for p in model.head(key).parameters():
            p.requires_grad_(key in heads)


def activate(model: MultiHeadClassifier, strategy: str, head: str, adapter: Optional[str]) -> None:
    """For evaluation of one task: its head, and its adapter (None: the bare base encoder)."""
    model.active = head
    if strategy == "adapters":
        model.encoder.set_active_adapters(adapter)
    elif strategy == "lora":
        model.encoder.set_adapter(adapter)


def param_bytes(params) -> int:
    return int(sum(p.numel() * p.element_size() for p in params))


def adapter_params(model: MultiHeadClassifier, strategy: str, adapter: str) -> list[nn.Parameter]:
    enc = model.encoder
    if strategy == "adapters":
        return [p for n, p in enc.named_parameters() if f"adapters.{adapter}." in n]
    if strategy == "lora":
        return [p for n, p in enc.named_parameters() if "lora_" in n and f".{adapter}." in n]
    return []


# --------------------------------------------------------------------------- save / reload


def save_task(model: MultiHeadClassifier, strategy: str, adapter: str, head: str, labels: list[str],
              target: Path) -> int:
    """Write the task's adapter (library format) and its head; return the bytes on disk."""
    import json

    target.mkdir(parents=True, exist_ok=True)
    enc = model.encoder
    if strategy == "adapters":
        enc.save_adapter(str(target), adapter)
    else:
        enc.save_pretrained(str(target), selected_adapters=[adapter])
    torch.save({k: v.detach().cpu() for k, v in model.head(head).state_dict().items()}, target / "head.pt")
    (target / "head.json").write_text(json.dumps({"head": head, "adapter": adapter, "labels": labels}))
    return int(sum(f.stat().st_size for f in target.rglob("*") if f.is_file()))


def load_tasks(encoder: nn.Module, strategy: str, saved: list[tuple[str, Path]]) -> nn.Module:
    """Load the saved adapters ``[(name, dir)]`` into a fresh base encoder."""
    if strategy == "adapters":
        import adapters

        adapters.init(encoder)
        for name, d in saved:
            encoder.load_adapter(str(d), load_as=name, set_active=False)
        return encoder
    from peft import PeftModel

    pm = None
    for name, d in saved:
        sub = d / name if (d / name / "adapter_config.json").exists() else d
        if pm is None:
            pm = PeftModel.from_pretrained(encoder, str(sub), adapter_name=name)
        else:
            pm.load_adapter(str(sub), adapter_name=name)
    return pm


def load_head(model: MultiHeadClassifier, head: str, d: Path) -> None:
    model.head(head).load_state_dict(torch.load(d / "head.pt", map_location="cpu"))


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def predict_logits(model: nn.Module, dataset, tokenizer, batch_size: int, limit: Optional[int] = None):
    """Logits and labels over a tokenised split, every example on this process (no sharding)."""
    from transformers import DataCollatorWithPadding

    keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels") if c in dataset.column_names]
    ds = dataset.select_columns(keep)
    n = len(ds) if limit is None else min(limit, len(ds))
    coll = DataCollatorWithPadding(tokenizer)
    model.eval()
    dev = next(model.parameters()).device
    logits, labels = [], []
    for s in range(0, n, batch_size):
        chunk = ds[s:min(s + batch_size, n)]
        rows = [{k: chunk[k][i] for k in keep} for i in range(len(chunk[keep[0]]))]
        batch = coll(rows)
        y = batch.pop("labels")
        out = model(**{k: v.to(dev) for k, v in batch.items()})
        logits.append(out.logits.float().cpu())
        labels.append(y)
    return torch.cat(logits), torch.cat(labels)


def scores(logits: torch.Tensor, labels: torch.Tensor, n_labels: int) -> dict:
    from sklearn.metrics import f1_score

    preds = logits.argmax(-1)
    return {
        "acc": float((preds == labels).float().mean()),
        "f1_macro": float(f1_score(labels.numpy(), preds.numpy(), average="macro",
                                   labels=list(range(n_labels)), zero_division=0)),
        "pred_counts": torch.bincount(preds, minlength=n_labels).tolist(),
    }
