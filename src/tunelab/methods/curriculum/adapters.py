"""One adapter per task (``strategy=adapters|lora``): create, train only one, activate, save, reload.

The base encoder stays frozen; each task trains its own bottleneck adapter (the ``adapters``
library, SeqBn) or LoRA adapter (PEFT) and its own head. Untrained adapters are the identity
(LoRA) or left inactive (bottleneck), so a task evaluated before its stage sees the bare base.
Saved adapters and heads reload into a fresh base encoder (checked by the runner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from tunelab.errors import ConfigError
from tunelab.methods.curriculum.model import MultiHeadClassifier


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


def prepare_stage(model: MultiHeadClassifier, strategy: str, adapter: Optional[str]) -> None:
    """Before a stage: make this stage's adapter the one that runs and trains (adapters/LoRA)."""
    enc = model.encoder
    if strategy == "adapters":
        enc.train_adapter(adapter)  # activates this adapter (and freezes the rest: the plan agrees)
    elif strategy == "lora":
        enc.set_adapter(adapter)


def stage_parameters(model: MultiHeadClassifier, strategy: str, heads: set[str],
                     adapter: Optional[str]) -> list[nn.Parameter]:
    """What a stage may train (the plan's ``restrict_to``): the per-task strategies' adapter, or
    the whole encoder as the freeze policy allows it; and the heads this stage routes to."""
    if strategy in ("adapters", "lora"):
        part = adapter_params(model, strategy, adapter)
    else:
        part = list(model.encoder.parameters())
    return part + [p for key in model.head_keys if key in heads for p in model.head(key).parameters()]


def activate(model: MultiHeadClassifier, strategy: str, head: str, adapter: Optional[str]) -> None:
    """For evaluation of one task: its head, and its adapter (None: the bare base encoder)."""
    model.active = head
    if strategy == "adapters":
        model.encoder.set_active_adapters(adapter)
    elif strategy == "lora":
        model.encoder.set_adapter(adapter)


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
