"""One seed's outcome (``Run``) and one arm's runs (``Arm``): the data the rule looks at.

Whether two runs are *the same run* decides whether an arm is deterministic (module doc of
``tunelab.sequential.rule``): ``same_runs`` compares every metric to ``RTOL``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class Run:
    """One seed's outcome: the metric (None: the run failed), its CPU seconds, and ``key``, what
    makes two runs the same run (the sweeper: all the run's metrics; default: the value).

    Why a key: an arm is taken as deterministic when its runs are identical, and a metric alone
    can tie by chance (accuracy on a test set is a multiple of 1/n), while a random arm's seeds
    essentially never give the same loss, F1 and accuracy together."""

    value: Optional[float]
    cpu_s: Optional[float] = None
    key: object = None


@dataclass
class Arm:
    """The runs of one arm's seeds, in seed order."""

    name: str
    runs: list = field(default_factory=list)
    constant: bool = False
    abandoned: bool = False

    @property
    def values(self) -> np.ndarray:
        key = (id(self.runs), len(self.runs))  # runs are appended, or the list replaced
        if getattr(self, "_cache", (None,))[0] != key:
            self._cache = (key, np.array([r.value for r in self.runs if r.value is not None], dtype=float))
        return self._cache[1]

    @property
    def failures(self) -> int:
        return sum(r.value is None for r in self.runs)

    def identical(self) -> bool:
        """All ok runs are the same run (module doc: ``same_runs``)."""
        return same_runs([r for r in self.runs if r.value is not None])


# Runs of a deterministic arm agree to the solver's tolerance, not to the last bit: the frozen
# probe's test loss differs between seeds in the 10th digit (thread-order float sums may do worse).
# A random arm's seeds differ by orders of magnitude more (fine-tuned losses: 1e-2; accuracies by
# at least one test example).
RTOL = 1e-5


def close(x: float, y: float) -> bool:
    """Equal to ``RTOL`` (relative; absolute below 1)."""
    return abs(x - y) <= RTOL * max(1.0, abs(x), abs(y))


def _same_key(a, b) -> bool:
    """Keys that are metric fingerprints (tuples of (name, value)) compare with RTOL; others exactly."""
    def metrics(k):
        return (isinstance(k, tuple) and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[1], float)
                                             for x in k))
    if metrics(a) and metrics(b):
        return [n for n, _ in a] == [n for n, _ in b] and all(close(x, y) for (_, x), (_, y) in zip(a, b))
    return a == b


def same_runs(runs: Sequence[Run]) -> bool:
    """At least one run, and all are the same run: equal values and keys (to ``RTOL``)."""
    if not runs:
        return False
    first = runs[0]
    return all(close(r.value, first.value) and _same_key(r.key, first.key) for r in runs[1:])
