"""What an adaptive study is asked to do: the rule's settings (``hydra.sweeper.*``, replay's flags).

Kept apart from the rule so the sweeper, ``tunelab replay`` and the report read one definition;
the defaults are conf/hydra/sweeper/adaptive.yaml's (a test holds them equal).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Callable, Optional, Sequence

from tunelab.errors import ConfigError
from tunelab.sequential.spending import SPENDING

CONTRASTS = ("all_pairs", "reference")


@dataclass(frozen=True)
class Design:
    """What the rule needs to know; the defaults are conf/hydra/sweeper/adaptive.yaml's."""

    alpha: float = 0.05           # family-wise error over all planned contrasts
    contrasts: str = "all_pairs"  # or "reference": each arm against ``reference``
    reference: Optional[str] = None
    margin: float = 0.0           # smallest effect of interest (0: no equivalence decisions)
    min_seeds: int = 3            # seeds per arm in the first round; ok runs an arm needs to be tested
    seeds_per_round: int = 1      # new seeds per active arm in each later round
    max_seeds: int = 10           # at most this many seeds per arm
    spending: str = "pocock"      # alpha-spending function: pocock | obf
    max_failures: int = 2         # failed runs an arm may have; one more and it is abandoned

    def check(self, arms: Sequence[str], name: Callable[[str], str] = lambda k: f"hydra.sweeper.{k}") -> None:
        """One sentence naming the setting and the fix (``ConfigError``) for a design that cannot run."""
        if not 0 < self.alpha < 1:
            raise ConfigError(f"{name('alpha')}={self.alpha}: the family-wise error must be in (0, 1), e.g. 0.05.")
        if self.spending not in SPENDING:
            raise ConfigError(f"{name('spending')}={self.spending}: choose one of {', '.join(SPENDING)}.")
        if self.contrasts not in CONTRASTS:
            raise ConfigError(f"{name('contrasts')}={self.contrasts}: choose one of {', '.join(CONTRASTS)}.")
        if self.margin < 0 or not math.isfinite(self.margin):
            raise ConfigError(f"{name('margin')}={self.margin}: the smallest effect of interest is >= 0 "
                              f"(0: no equivalence decisions).")
        if self.min_seeds < 2:
            raise ConfigError(f"{name('min_seeds')}={self.min_seeds}: a seed variance needs at least 2 seeds per arm.")
        if self.seeds_per_round < 1:
            raise ConfigError(f"{name('seeds_per_round')}={self.seeds_per_round}: add at least 1 seed per round.")
        if self.max_seeds < self.min_seeds:
            raise ConfigError(f"{name('max_seeds')}={self.max_seeds} is below {name('min_seeds')}={self.min_seeds}: "
                              f"sweep more seeds or lower min_seeds.")
        if self.max_failures < 0:
            raise ConfigError(f"{name('max_failures')}={self.max_failures}: must be >= 0.")
        if len(arms) < 2:
            raise ConfigError(f"an adaptive study needs at least 2 arms, got {len(arms)} ({', '.join(arms) or 'none'}): "
                              f"sweep a non-seed key, e.g. freeze=none,all,last2.")
        if self.contrasts == "reference" and self.reference not in arms:
            raise ConfigError(f"{name('reference')}={self.reference} is not an arm of this study; the arms are: "
                              f"{', '.join(arms)}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Design":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})
