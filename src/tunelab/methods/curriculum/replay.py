"""Training on the data of several stages at once: replay buffers and mixed frames.

``strategy=replay`` keeps a seeded sample of each finished stage's training data and mixes it
into every later stage; ``strategy=joint`` mixes all stages. Stages may have different heads,
so a mixed frame carries *global* labels: each head's classes occupy ``[offset, offset + n)``
and ``MultiHeadClassifier`` routes each example to its head by that range (``routes``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from tunelab.errors import ConfigError
from tunelab.methods.curriculum.stages import Stage


def replay_sample(df, *, size: Optional[int], fraction: Optional[float], seed: int, stage_index: int):
    """A seeded sample of a finished stage's training data: ``size`` rows or ``fraction`` of them."""
    if (size is None) == (fraction is None):
        raise ConfigError("strategy=replay needs exactly one of strategy.replay_size (examples per stage) "
                          "and strategy.replay_fraction (of each stage's training split).")
    if size is not None and size < 1:
        raise ConfigError(f"strategy.replay_size={size} must be >= 1.")
    if fraction is not None and not 0 < fraction <= 1:
        raise ConfigError(f"strategy.replay_fraction={fraction} must be in (0, 1].")
    n = int(size) if size is not None else max(1, int(round(float(fraction) * len(df))))
    n = min(n, len(df))
    rng = np.random.default_rng([int(seed), int(stage_index), 20240])
    idx = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[idx].reset_index(drop=True)


def mixed_frame(parts: list[tuple[Stage, Any]]):
    """Concatenate (stage, train df) parts with global labels; return (df, routes).

    ``routes`` lists ``(head, label offset, number of labels)`` in order of first appearance."""
    import pandas as pd

    offsets: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for s, _ in parts:
        if s.head not in offsets:
            offsets[s.head] = sum(sizes.values())
            sizes[s.head] = len(s.labels)
    frames = []
    for s, df in parts:
        d = df[["text", "label"]].copy()
        d["label"] = d["label"].astype(int) + offsets[s.head]
        frames.append(d)
    routes = [(h, offsets[h], sizes[h]) for h in offsets]
    return pd.concat(frames, ignore_index=True), routes
