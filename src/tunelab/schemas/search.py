"""An arm's search space: its ``search`` block, parsed and checked (``hydra/sweeper=tune``).

The space is written in Hydra's sweep syntax, which ``hparams_search=optuna`` users already know:
``choice(a, b, ...)`` and ``range(start, stop[, step])`` (stop excluded, as in Python) are
categorical, ``interval(lo, hi)`` is uniform on [lo, hi] and ``tag(log, interval(lo, hi))``
log-uniform. An integer key (``optim.epochs``, a LoRA rank) takes ``choice`` or ``range`` only:
an interval would hand it a float. (hydra-optuna-sweeper turns ``range`` into an integer uniform
that includes ``stop``; here a range is exactly the values it lists.)

How a trial's values are drawn from the space: ``tunelab.sweeps.sampler``. This module is below
``tunelab.validation`` (which checks every config's space at start-up) and the report (which
shows the bounds), so it needs nothing but Hydra's override parser.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from tunelab.errors import ConfigError

_PLAIN = re.compile(r"^[A-Za-z0-9_./-]+$")
_UNSET = object()


@dataclass(frozen=True)
class Dimension:
    """One searched key: categorical ``choices``, or a float range ``low``..``high`` (``log``)."""

    key: str
    expr: str
    choices: Optional[tuple] = None
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False

    @property
    def bounds(self) -> str:
        """The space as a reader wants it: ``{2, 3, 4}`` or ``[1e-05, 0.0001] (log)``."""
        if self.choices is not None:
            return "{" + ", ".join(override_value(c) for c in self.choices) + "}"
        return f"[{self.low:g}, {self.high:g}]" + (" (log-uniform)" if self.log else " (uniform)")

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def tidy(self, value: Any) -> Any:
        """A drawn float rounded to 3 significant digits, inside the bounds; choices as drawn."""
        if self.choices is not None:
            return value
        return min(max(float(f"{float(value):.3g}"), self.low), self.high)


def parse_dimension(key: str, expr: str, where: str = "search") -> Dimension:
    """``key: expr`` of a search block; ConfigError naming it when it is not a sweep of values."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Transformer
    from hydra.errors import HydraException

    hint = ("use choice(a, b, ...), range(start, stop), interval(lo, hi) or tag(log, interval(lo, hi)), "
            "e.g. tag(log, interval(1e-5, 1e-4))")
    try:
        o = OverridesParser.create().parse_override(f"{key}={expr}")
    except HydraException as e:
        raise ConfigError(f"{where}.{key}: {expr!r} is not Hydra sweep syntax ({str(e).splitlines()[0]}): "
                          f"{hint}.") from None
    if not o.is_sweep_override():
        raise ConfigError(f"{where}.{key}: {expr!r} is one value, not a space to search: {hint}.")
    if o.is_discrete_sweep():
        values = tuple(dict.fromkeys(o.sweep_iterator(transformer=Transformer.encode)))
        bad = [v for v in values if not isinstance(v, (str, int, float, bool))]
        if bad or not values:
            raise ConfigError(f"{where}.{key}: {expr!r} must list plain values (numbers, words).")
        return Dimension(key, str(expr), choices=values)
    v = o.value()
    lo, hi = float(v.start), float(v.end)
    log = "log" in (v.tags or set())
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (log and lo <= 0):
        raise ConfigError(f"{where}.{key}: {expr!r} needs lo < hi" + (" and lo > 0 (log scale)." if log else "."))
    return Dimension(key, str(expr), low=lo, high=hi, log=log)


def parse_search(search: Mapping[str, Any], where: str = "search") -> list[Dimension]:
    return [parse_dimension(str(k), str(v), where) for k, v in (search or {}).items()]


def check_search(cfg: Any, search: Optional[Mapping[str, Any]] = None) -> list[Dimension]:
    """Every dimension of ``search`` (default ``cfg.search``) parses and names a key of the config,
    and an integer key is not given an interval. Run at every start-up (``tunelab.validation``)."""
    from omegaconf import OmegaConf

    dims = parse_search(cfg.get("search") or {} if search is None else search)
    for d in dims:
        if d.key.split(".")[0] in ("search", "study", "hydra"):
            raise ConfigError(f"search.{d.key}: the search space cannot search {d.key.split('.')[0]}.")
        value = OmegaConf.select(cfg, d.key, default=_UNSET)
        if value is _UNSET:
            raise ConfigError(f"search.{d.key} is not a key of the config (a typo?); search dotted keys such as "
                              f"optim.lr, optim.epochs or method.C.")
        if d.choices is None and isinstance(value, int) and not isinstance(value, bool):
            raise ConfigError(f"search.{d.key}: {d.key} is an integer ({value}), but {d.expr!r} is a float "
                              f"interval: give its values with choice(...) or range(start, stop).")
    return dims


def default_value(cfg: Any, key: str, choices: Optional[Mapping[str, Any]] = None) -> Any:
    """The value a key has in the composed config: a config group's option (``freeze`` -> ``last2``,
    from Hydra's runtime choices) or the plain value."""
    from omegaconf import OmegaConf

    if choices and key in choices:
        return choices[key]
    value = OmegaConf.select(cfg, key, default=None)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def override_value(value: Any) -> str:
    """A value as an override writes it: ``3.21e-05``, ``4``, ``null``, ``true``, a quoted odd string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if _PLAIN.match(text) else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
