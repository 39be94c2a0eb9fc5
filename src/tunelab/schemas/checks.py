"""Closed choices and ranges declared on the schema fields, and the one walk that checks them.

Hydra already rejects unknown keys and wrong types when it composes a config against the
dataclass schemas. Three things it cannot say, which this module adds:

* a string option limited to a few values (``freeze.mode``): declared with :func:`choice`;
* a number limited to a range (``optim.warmup_ratio`` in [0, 1)): declared with :func:`bounded`;
* a key added with ``+`` (``+optim.lrr=1e-3`` — Hydra's own hint for the typo ``optim.lrr``):
  ``+`` bypasses the schema, so the key would be carried along and silently ignored.

The declarations live on the dataclass fields (``metadata``), next to the field they restrict,
so a reader of the schema sees the allowed values; :func:`check_config` walks a composed config
once, before any data or model is loaded, and raises :class:`~tunelab.errors.ConfigError` with
one sentence naming the key, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any, Optional

from tunelab.errors import ConfigError


def choice(default: Any, *options: str) -> Any:
    """A string field that may only take one of ``options`` (None is allowed if it is the default)."""
    return field(default=default, metadata={"choices": tuple(options)})


def bounded(default: Any, lo: Optional[float] = None, hi: Optional[float] = None, *,
            lo_open: bool = False, hi_open: bool = False, hint: str = "") -> Any:
    """A number field limited to [lo, hi] (open on a side when ``lo_open``/``hi_open``)."""
    return field(default=default, metadata={"range": (lo, hi, lo_open, hi_open, hint)})


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _interval(lo, hi, lo_open, hi_open) -> str:
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    if lo is None:
        return f"<{'' if hi_open else '='} {_num(hi)}"
    if hi is None:
        return f">{'' if lo_open else '='} {_num(lo)}"
    return f"in {left}{_num(lo)}, {_num(hi)}{right}"


def check_field(path: str, value: Any, meta: Any) -> None:
    """Check one value against its field's declared choices/range."""
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{path}={value!r} is not one of {sorted(choices)}.")
    rng = meta.get("range")
    if rng is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, lo_open, hi_open, hint = rng
        if not math.isfinite(value):  # NaN is in no range, and no setting means infinity
            raise ConfigError(f"{path}={value} must be a finite number {_interval(lo, hi, lo_open, hi_open)}{hint}.")
        bad = False
        if lo is not None:
            bad = bad or (value <= lo if lo_open else value < lo)
        if hi is not None:
            bad = bad or (value >= hi if hi_open else value > hi)
        if bad:
            raise ConfigError(f"{path}={value} must be {_interval(lo, hi, lo_open, hi_open)}{hint}.")


def _schema_of(node: Any) -> Optional[type]:
    from omegaconf import DictConfig, OmegaConf

    if isinstance(node, DictConfig):
        t = OmegaConf.get_type(node)
        return t if dataclasses.is_dataclass(t) else None
    return type(node) if dataclasses.is_dataclass(node) else None


def check_node(node: Any, path: str) -> None:
    """Unknown keys, choices and ranges of one schema-typed node and its typed children."""
    schema = _schema_of(node)
    if schema is None:
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    keys = list(node.keys()) if hasattr(node, "keys") else list(fields)
    for key in keys:
        if key not in fields:
            known = ", ".join(sorted(k for k in fields if not k.startswith("_")))
            raise ConfigError(f"{path}.{key} is not a key of {path} (a typo, or added with '+'?); "
                              f"known keys: {known}.")
    for name, f in fields.items():
        value = node.get(name) if hasattr(node, "get") else getattr(node, name)
        check_field(f"{path}.{name}", value, f.metadata)
        if _schema_of(value) is not None:
            check_node(value, f"{path}.{name}")


def check_config(cfg: Any) -> None:
    """Walk every schema-typed section of a composed config (the root is ``RunConfig``)."""
    schema = _schema_of(cfg)
    if schema is None:
        return
    names = {f.name for f in dataclasses.fields(schema)}
    for key in cfg.keys():
        if key not in names:
            raise ConfigError(f"'{key}' is not a top-level key of the config (a typo, or added with '+'?); "
                              f"see `python train.py --cfg job` for the keys.")
    for f in dataclasses.fields(schema):
        value = cfg.get(f.name)
        check_field(f.name, value, f.metadata)
        if _schema_of(value) is not None:
            check_node(value, f.name)
