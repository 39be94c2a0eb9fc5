"""Schemas for operations: resuming and fault handling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tunelab.schemas.checks import bounded, choice


@dataclass
class ResumeConfig:
    # never | auto: continue a job from its own ``checkpoints/last.ckpt`` (model, optimiser,
    # scheduler, sampler position, RNG states) and skip a job whose results.json says "ok".
    # ``resume=auto`` (conf/resume/auto.yaml) also sets stable output dirs from ``name``.
    mode: str = choice("never", "never", "auto")
    # Stable run name for resume=auto: outputs/resume/<name> (single run) or
    # multirun_outputs/resume/<name>/<job num> (sweep). The same command finds the same dir.
    name: Optional[str] = None
    # With resume=auto, also save last.ckpt every this many optimiser steps (0: only at the
    # end of each epoch). Smaller loses less work to a kill; each save costs a checkpoint write.
    every_n_steps: int = bounded(50, 0)
