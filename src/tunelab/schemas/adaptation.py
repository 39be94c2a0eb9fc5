"""Schemas for masked-LM domain adaptation, augmentation and zero-shot classification."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AdaptConfig:
    # none | tapt (MLM on the task's own training texts) | dapt (MLM on a domain corpus)
    name: str = "none"


@dataclass
class AugmentConfig:
    # none | eda
    name: str = "none"


@dataclass
class ZeroShotConfig:
    nli_model: str | None = None
