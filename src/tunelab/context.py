"""``RunContext``: where a job writes and what Hydra knows about it.

Its own module, below every method: a method needs the job's context (output dir, sweep,
overrides, the experiment logger), never the job module (``tunelab.run``) that creates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class RunContext:
    """Where a job writes and what Hydra knows about it."""

    out_dir: Path
    multirun: bool = False
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)
    sweep_dir: Optional[Path] = None
    job_num: Optional[int] = None
    # The experiment logger, kept so ``run`` can close it even when training fails.
    logger: Any = None
    # The job's identity (tunelab.ops.identity), set by ``run``: W&B run id, checkpoint check.
    identity: Optional[str] = None

    @classmethod
    def from_hydra(cls) -> "RunContext":
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return cls(
            out_dir=Path(hc.runtime.output_dir),
            multirun=multirun,
            overrides=list(hc.overrides.task),
            choices={k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
            sweep_dir=Path(hc.sweep.dir) if multirun else None,
            job_num=hc.job.num if multirun else None,
        )

    @property
    def group(self) -> str:
        """W&B group: one per sweep (or per single run)."""
        base = self.sweep_dir if self.multirun and self.sweep_dir else self.out_dir
        return "_".join(base.parts[-2:])

    @property
    def swept_tags(self) -> list[str]:
        """W&B tags: the job's values of the keys its sweep varies (tunelab.loggers.swept_tags)."""
        from tunelab.loggers import swept_tags, sweep_keys

        return swept_tags(self.overrides, sweep_keys(self.sweep_dir)) if self.multirun else []
