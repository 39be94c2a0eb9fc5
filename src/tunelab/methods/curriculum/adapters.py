"""One adapter per task (``strategy=adapters|lora``): create, train only one, activate, save, reload.

The base encoder stays frozen; each task trains its own bottleneck adapter (the ``adapters``
library, SeqBn) or LoRA adapter (PEFT) and its own head. The adapters are created by
:mod:`tunelab.models.peft` (shared with the single-task PEFT arms: LoRA's per-family target
modules, and what is refused). Untrained adapters are the identity (LoRA) or left inactive
(bottleneck), so a task evaluated before its stage sees the bare base. Saved adapters and heads
reload into a fresh base encoder (checked by the runner).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

from tunelab.methods.curriculum.model import MultiHeadClassifier


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
