"""Schemas for curricula (several datasets in sequence) and continual-learning strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from tunelab.schemas.checks import bounded, choice


@dataclass
class CurriculumConfig:
    # related | unrelated | custom (any name: it labels the study)
    name: str = "custom"
    # Stages in order. Each is a data group option name ("drug_reviews") or a mapping:
    #   {data: tweets_sentiment, domain: airline, name: airline, epochs: 2, lr: 3e-5, head: sentiment}
    # ``data`` names a data option (conf/data/<data>.yaml, composed by Hydra); every key that is not one of
    # name/epochs/lr/head/overrides overrides that data config (``overrides:`` may hold them too).
    # ``head``: stages naming the same head share it (labels must match); default: stages with
    # the same label names share one.
    stages: List[Any] = field(default_factory=list)
    # Applied to every stage's data when set (subsampling for quick studies).
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    # Also train each task alone from the original encoder: the reference of FWT.
    baselines: bool = True
    # Run each stage's validation split during its training (R itself uses test splits).
    validate: bool = False
    # Annotated heatmap of R (R_heatmap.png) in the job dir.
    heatmap: bool = True


@dataclass
class StrategyConfig:
    name: str = choice("sequential", "sequential", "joint", "replay", "adapters", "lora")
    # Learning rate of every stage (unless a stage sets its own); None = optim.lr.
    lr: Optional[float] = None
    # Learning rate of the classification heads; None = optim.head_lr, else the stage lr. The
    # parameter-efficient strategies set it: their heads sit on a frozen encoder and, like a
    # linear probe, need a probe's rate (at the stage rate a head stayed at its class prior).
    head_lr: Optional[float] = bounded(None, 0, lo_open=True)
    # Epochs of every stage (unless a stage sets its own); None = optim.epochs.
    epochs: Optional[int] = bounded(None, 1)
    # replay: examples kept from each finished stage's training split and mixed into every
    # later stage: a count, or a fraction of that split (exactly one of the two).
    replay_size: Optional[int] = None
    replay_fraction: Optional[float] = None
    # adapters: bottleneck (Pfeiffer / SeqBn) adapter per task; hidden / reduction_factor units.
    reduction_factor: int = 16
    # lora: PEFT LoRA per task.
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    # Module names LoRA wraps; None: PEFT's default for the model's family (tunelab.models.peft).
    lora_target_modules: Optional[List[str]] = None
    # adapters/lora: save each task's adapter + head under <job>/task_adapters/ and check that
    # the reloaded copy predicts what the trained one did.
    save_adapters: bool = True
