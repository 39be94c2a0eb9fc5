"""Hydra's own refusals (a bad override value, an unknown key, a missing group option) as one
sentence and exit 2, like every other bad input.

Hydra prints such errors over several lines (the override, OmegaConf's ``full_key`` /
``reference_type`` block, "Set the environment variable HYDRA_FULL_ERROR=1") and exits 1, the
code of a crash. :func:`tunelab.app.main` asks Hydra to raise instead (``HYDRA_FULL_ERROR=1`` for
the composing process only: the job itself gets Hydra's usual reporting back) and hands the
exception here. A key that is not in a schema gets the closest field names as the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Optional

# set by tunelab.app.main when it, not the user, set HYDRA_FULL_ERROR
OWN_FLAG = "TUNELAB_OWN_HYDRA_FULL_ERROR"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0].strip().rstrip(".") if text.strip() else ""


def _close_fields(cause) -> str:
    """`` (did you mean optim.lr?)`` for a key missing from a dataclass schema, else ``""``."""
    key = str(getattr(cause, "key", "") or "")
    typ = getattr(cause, "object_type", None)
    if not key or not dataclasses.is_dataclass(typ):
        return ""
    names = [f.name for f in dataclasses.fields(typ)]
    if key in names:  # the key exists: its value is what is wrong
        return ""
    close = difflib.get_close_matches(key, names, n=2, cutoff=0.6)
    full = str(getattr(cause, "full_key", "") or key)
    parent = full[: -len(key)] if full.endswith(key) else ""
    return f" (did you mean {' or '.join(parent + c for c in close)}?)" if close else ""


def sentence(exc: BaseException) -> Optional[str]:
    """One sentence for a composition error of Hydra or OmegaConf; None for anything else."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(exc, ValueError) and str(exc).startswith("Only one of --run, --multirun"):
        # Hydra's own check of its flags (--cfg job -m ...): a user's command, not a crash
        return (f"{_first_line(str(exc))}: run the sweep with -m alone, or show one job's config with --cfg job "
                "and no -m.")
    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return None
    head = _first_line(str(exc))
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else None
    if cause is None and isinstance(exc, OmegaConfBaseException):
        cause, head = exc, ""
    why = _first_line(str(cause)) if cause is not None else ""
    if cause is None and exc.__cause__ is not None and head.endswith(":"):
        # "Error in call to target 'X':" (a launcher or sweeper refusing its settings): the reason is the cause's
        head, why = head.rstrip(":"), _first_line(str(exc.__cause__))
    text = "; ".join(p for p in (head, why) if p)
    hint = _close_fields(cause) if cause is not None else ""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    at = next((i for i, ln in enumerate(lines) if ln.startswith("Available options")), None)
    if at is not None:  # a group option that does not exist
        options = []
        for ln in lines[at + 1:]:
            if not ln or ln.startswith("Config search path"):
                break
            options.append(ln)
        hint = f" (the options: {', '.join(options)})"
    from hydra.errors import OverrideParseException

    if isinstance(exc, OverrideParseException):
        text = f"an override could not be parsed ({text})"
        key, sep, value = str(getattr(exc, "override", "") or "").partition("=")
        if sep and value and value[0] not in "[{'\"" and "(" not in value:
            # data.delimiter=; : the grammar reserves such characters outside quotes
            hint = f" (quote a value with such characters: '{key}=\"{value}\"')"
    return (f"{text}{hint}: fix the value on the command line or in the config "
            "(python train.py --cfg job shows the composed config; --help lists the groups).")
