"""Parameter-efficient modules on a frozen encoder: LoRA (PEFT) and bottleneck adapters (``adapters``).

Shared by every method that trains them (the curriculum's ``strategy=lora|adapters`` today, the
single-task PEFT arms next), so that which modules are wrapped, and what is refused, is decided
in one place:

* **LoRA's target modules** default to PEFT's own choice for the model's family
  (``TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``: ``query``/``value`` for BERT, RoBERTa,
  XLM-R, ELECTRA; ``query_proj``/``value_proj`` for DeBERTa-v2/v3). A family PEFT has no default
  for (DistilBERT, ALBERT, ModernBERT, MPNet in peft 0.21) is refused with the setting to give
  and the names of the model's linear layers to choose from.
* **Bottleneck adapters** must leave the base encoder as it was: the ``adapters`` library 1.3.0
  adds a randomly initialised bias to ModernBERT's bias-free ``Wqkv`` projection when it
  initialises adapter support, which changes the frozen base's outputs (by ~0.02 on the tiny test
  model) before any adapter is active. :func:`init_bottleneck` compares the encoder's output on a
  fixed input before and after (beyond float rounding) and the parameters it has, and refuses when
  either changed, naming the parameters that appeared.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from tunelab.errors import ConfigError


def _model_type(model: nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", "") or type(model).__name__)


def linear_names(model: nn.Module) -> list[str]:
    """The distinct last names of the model's ``nn.Linear`` modules (what LoRA can target)."""
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and n})


def lora_targets(model: nn.Module, configured: Optional[Sequence[str]], *, setting: str, where: str) -> list[str]:
    """``configured`` when given, else PEFT's default target modules for the model's family."""
    if configured:
        return list(configured)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    mtype = _model_type(model)
    if mtype in DEFAULTS:
        return list(DEFAULTS[mtype])
    raise ConfigError(
        f"{where}: PEFT has no default LoRA target modules for model_type '{mtype}'; set {setting} to the "
        f"attention projections to adapt (this model's linear layers: {', '.join(linear_names(model))}).")


def lora_wrap(encoder: nn.Module, names: list[str], *, r: int, alpha: int, dropout: float,
              target_modules: Optional[Sequence[str]], where: str, model_name: str,
              setting: str = "strategy.lora_target_modules") -> nn.Module:
    """A PEFT model with one LoRA adapter per name (all created now: untrained LoRA is the identity)."""
    from peft import LoraConfig, get_peft_model

    targets = lora_targets(encoder, target_modules, setting=setting, where=where)

    def conf():
        return LoraConfig(r=int(r), lora_alpha=int(alpha), lora_dropout=float(dropout),
                          target_modules=list(targets), bias="none")

    try:
        pm = get_peft_model(encoder, conf(), adapter_name=names[0])
        for n in names[1:]:
            pm.add_adapter(n, conf())
    except Exception as e:
        raise ConfigError(f"{where}: LoRA cannot wrap model '{model_name}' with target modules {targets} "
                          f"({type(e).__name__}: {e}); set {setting} to names of its linear layers "
                          f"({', '.join(linear_names(encoder))}).") from None
    return pm


@torch.no_grad()
def _fixed_output(encoder: nn.Module) -> torch.Tensor:
    """The encoder's last hidden state in eval mode on a fixed 6-token input."""
    vocab = int(getattr(encoder.config, "vocab_size", 0) or 0) or 100
    ids = (torch.arange(6) % vocab + min(5, vocab - 1)) % vocab
    device = next(encoder.parameters()).device
    was = encoder.training
    encoder.eval()
    try:
        out = encoder(input_ids=ids[None].to(device), attention_mask=torch.ones(1, 6, dtype=torch.long, device=device))
    finally:
        encoder.train(was)
    return out.last_hidden_state.detach().clone()


def init_bottleneck(encoder: nn.Module, where: str, model_name: str) -> nn.Module:
    """Give ``encoder`` adapter support (adapters library) that leaves its base unchanged, or a
    ConfigError naming the stage and the reason."""
    try:
        import adapters
    except ImportError as e:
        raise ConfigError(f"strategy=adapters needs the 'adapters' package (pip install adapters): {e}") from None
    before_names = {n for n, _ in encoder.named_parameters()}
    before = _fixed_output(encoder)
    try:
        adapters.init(encoder)
        if not hasattr(encoder, "add_adapter") or not hasattr(encoder, "train_adapter"):
            raise TypeError("the model has no adapter interface after adapters.init()")
    except Exception as e:  # the library raises various types for unsupported architectures
        raise ConfigError(
            f"{where}: strategy=adapters cannot add a bottleneck adapter to model '{model_name}' "
            f"({type(encoder).__name__}): the adapters library does not support it "
            f"({type(e).__name__}: {e}). Use a BERT-family encoder, or strategy=lora or sequential."
        ) from None
    added = sorted({n for n, _ in encoder.named_parameters()} - before_names)
    # The library re-implements some layers (ELECTRA's: outputs differ by ~1e-8, float rounding).
    if added or not torch.allclose(before, _fixed_output(encoder), rtol=1e-4, atol=1e-5):
        raise ConfigError(
            f"{where}: strategy=adapters would change the frozen base encoder of model '{model_name}' "
            f"({type(encoder).__name__}): the adapters library's support for it alters the base "
            + (f"(it adds {', '.join(added[:3])}{' ...' if len(added) > 3 else ''})" if added else "(its outputs differ)")
            + ", so the base would not be the original encoder; use strategy=lora or sequential.")
    return encoder


def add_bottleneck(encoder: nn.Module, name: str, reduction_factor: int, where: str, model_name: str) -> None:
    from adapters import SeqBnConfig

    try:
        encoder.add_adapter(name, config=SeqBnConfig(reduction_factor=reduction_factor))
    except Exception as e:
        raise ConfigError(f"{where}: strategy=adapters could not add adapter '{name}' to model "
                          f"'{model_name}' ({type(e).__name__}: {e}).") from None


# --------------------------------------------------------------------------- one task (peft=...)


def _ia3_defaults(model: nn.Module, spec, where: str) -> tuple[list[str], list[str]]:
    from peft.utils.constants import (TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FF,
                                      TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS)

    mtype = _model_type(model)
    targets = list(spec.target_modules) if spec.target_modules else TARGETS.get(mtype)
    ff = list(spec.feedforward_modules) if spec.feedforward_modules is not None else FF.get(mtype)
    if not targets or ff is None:
        raise ConfigError(
            f"{where}: PEFT has no default IA3 modules for model_type '{mtype}'; set peft.target_modules and "
            f"peft.feedforward_modules (this model's linear layers: {', '.join(linear_names(model))}).")
    return targets, ff


def add_to_task_model(model: nn.Module, spec, *, model_name: str) -> tuple[list[nn.Parameter], dict]:
    """Add ``spec``'s modules (``tunelab.models.policy.Peft``) inside ``model``'s base encoder, in
    place, and return ``(their parameters, a description for the plan)``.

    The modules go into the base model (``model.base_model``), so the task model keeps its own
    head, forward and loss, and the plan's blocks see them inside the layers they adapt. Untrained
    LoRA is the identity and IA3 starts at 1, so before training the model is the pretrained one;
    a bottleneck adapter starts near the identity (the library's initialisation).
    """
    base = model.base_model
    where = f"peft={spec.name}"
    if spec.name in ("lora", "ia3"):
        from peft import IA3Config, LoraConfig, inject_adapter_in_model

        if spec.name == "lora":
            targets = lora_targets(base, spec.target_modules, setting="peft.target_modules", where=where)
            conf, extra = LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                                     target_modules=targets, bias="none"), {"r": spec.r, "alpha": spec.alpha}
        else:
            targets, ff = _ia3_defaults(base, spec, where)
            conf, extra = IA3Config(target_modules=targets, feedforward_modules=ff), {"feedforward_modules": ff}
        before = {id(p) for p in base.parameters()}
        try:
            inject_adapter_in_model(conf, base)
        except Exception as e:
            raise ConfigError(f"{where} cannot adapt model '{model_name}' with target modules {targets} "
                              f"({type(e).__name__}: {e}); set peft.target_modules to names of its linear "
                              f"layers ({', '.join(linear_names(base))}).") from None
        added = [p for p in base.parameters() if id(p) not in before]
        info = {"method": spec.name, "target_modules": list(targets), **extra}
    else:  # adapters
        init_bottleneck(base, where, model_name)
        add_bottleneck(base, "task", spec.reduction_factor, where, model_name)
        base.train_adapter("task")  # activates it (the plan sets what trains)
        added = [p for n, p in base.named_parameters() if "adapters.task." in n]
        info = {"method": "adapters", "reduction_factor": spec.reduction_factor}
    info["params"] = int(sum(p.numel() for p in added))
    return added, info
