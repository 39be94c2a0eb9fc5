"""A sweep's overrides as arms x seeds: what tunelab's own sweepers launch.

The basic sweeper runs the cartesian product of every swept key. tunelab's sweepers (adaptive
seeds, per-arm tuning) instead need the product *without* the seed key: those are the arms, the
configurations a study compares (``arm=bert_none,bert_last2`` or ``freeze=none,all lr=1e-5,3e-5``),
and the seeds are the replicates they decide how many of to run. Keys with one value (plain
``key=value``, or ``choice(value)``, see ``tunelab.overrides``) are fixed in every job.

A job's override list is built exactly as the basic sweeper builds it (same keys, same order,
same value strings), so an adaptive study's jobs record the same ``overrides`` as the jobs of the
fixed study it is a prefix of, and ``tunelab report`` groups both alike. Arm labels are the
report's group labels: ``key=value`` of the swept keys, sorted by key, joined by commas.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional, Sequence

from tunelab.errors import ConfigError


@dataclass(frozen=True)
class ArmSpec:
    label: str
    values: dict  # key -> value string of the swept keys


@dataclass
class SweepSpace:
    """Keys in override order, each with its value strings; ``arm_keys`` have more than one."""

    keys: list[str]
    values: dict[str, list[str]]
    seed_key: str
    arm_keys: list[str] = field(default_factory=list)
    arms: list[ArmSpec] = field(default_factory=list)

    @property
    def seeds(self) -> Optional[list[str]]:
        """The swept seed values in order, or None when the seed key was not given."""
        return self.values.get(self.seed_key)

    def job_overrides(self, arm: ArmSpec, seed: str, extra: Optional[dict] = None) -> list[str]:
        """The override list of one job: every key in order, the arm's values, this seed.
        ``extra``: key -> value set on top (a tuning trial's hyper-parameters): in its place when
        the sweep has the key, else appended."""
        extra = dict(extra or {})
        out = []
        for k in self.keys:
            v = seed if k == self.seed_key else arm.values[k] if k in arm.values else self.values[k][0]
            out.append(f"{k}={extra.pop(k, v)}")
        if self.seed_key not in self.keys:
            out.append(f"{self.seed_key}={seed}")
        return out + [f"{k}={v}" for k, v in extra.items()]

    def fixed(self) -> list[str]:
        return [f"{k}={self.values[k][0]}" for k in self.keys if k not in self.arm_keys and k != self.seed_key]


def _label_key(key: str) -> str:
    return key.lstrip("+")


def parse_space(overrides: Sequence, seed_key: str = "seed") -> SweepSpace:
    """``overrides``: Hydra ``Override`` objects (sweeper params first, then the command line; a
    later one of the same key replaces an earlier one in its place, as in the basic sweeper)."""
    values: "OrderedDict[str, list[str]]" = OrderedDict()
    for o in overrides:
        key = o.get_key_element()
        if o.is_sweep_override():
            if not o.is_discrete_sweep():
                raise ConfigError(f"{key}: a range sweep (interval) cannot be run seed by seed; give the values "
                                  f"(choice or a comma list), or use hparams_search=optuna.")
            vals = list(o.sweep_string_iterator())
        else:
            vals = [o.get_value_element_as_str()]
        values[key] = list(dict.fromkeys(vals))  # a value listed twice is one arm
    seed_in = [k for k in values if _label_key(k) == seed_key]
    if seed_in and seed_in[0] != seed_key:
        values[seed_key] = values.pop(seed_in[0])
    space = SweepSpace(list(values), dict(values), seed_key)
    space.arm_keys = [k for k in values if k != seed_key and len(values[k]) > 1]
    for combo in itertools.product(*(values[k] for k in space.arm_keys)):
        chosen = dict(zip(space.arm_keys, combo))
        label = ",".join(f"{_label_key(k)}={chosen[k]}" for k in sorted(chosen, key=_label_key))
        space.arms.append(ArmSpec(label, chosen))
    return space


def seed_list(space: SweepSpace, max_seeds: Optional[int], default: int = 10,
              name: str = "hydra.sweeper.max_seeds") -> list[str]:
    """The seed values a study may use, in order: the swept seeds (at most ``max_seeds`` of them),
    or ``0..max_seeds-1`` when the seed key was not given."""
    seeds, key = space.seeds, space.seed_key
    if seeds is None:
        return [str(i) for i in range(default if max_seeds is None else int(max_seeds))]
    if len(seeds) == 1:
        raise ConfigError(f"{key}={seeds[0]} is a single seed: this sweeper runs seeds in rounds; sweep them "
                          f"(e.g. '{key}=range(10)') or leave {key} out (seeds 0..{name.split('.')[-1]}-1).")
    if max_seeds is not None and int(max_seeds) > len(seeds):
        raise ConfigError(f"{name}={max_seeds} but {key} sweeps only {len(seeds)} seeds: sweep more "
                          f"(e.g. '{key}=range({max_seeds})') or lower {name}.")
    return list(seeds[: int(max_seeds)] if max_seeds is not None else seeds)
