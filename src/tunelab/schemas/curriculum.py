"""Schemas for curricula (several datasets in sequence) and continual-learning strategies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List


@dataclass
class CurriculumConfig:
    # single (one dataset: the plain run) | related | unrelated | custom
    name: str = "single"
    stages: List[Any] = field(default_factory=list)


@dataclass
class StrategyConfig:
    # sequential | joint | replay | adapters | lora
    name: str = "sequential"
