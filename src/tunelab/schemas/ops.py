"""Schemas for operations: resuming and fault handling."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ResumeConfig:
    # never | auto (continue from the job's last checkpoint; skip jobs already ok)
    mode: str = "never"
