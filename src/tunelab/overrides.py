"""A command-line override of a key under a node that is null: one sentence, exit 2.

``curriculum``, ``strategy``, ``adapt`` and ``augment`` are null unless chosen, and
``freeze.probe`` exists only under ``freeze=all``. Hydra cannot set a key inside a null node
(``python train.py curriculum.stages=[a]`` without ``curriculum=``, or ``freeze=last2
freeze.probe.fit=head``) and stops with an AssertionError traceback from OmegaConf. This check
runs before Hydra only when such a key is named: it composes the config without those
overrides and, if the node they write into is null there, says which group to choose.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

# Nodes that are null in some compositions (conf/config.yaml; conf/freeze/*.yaml).
NULLABLE = ("curriculum", "strategy", "adapt", "augment", "freeze.probe")
HOW = {"curriculum": "curriculum=related|unrelated|custom", "strategy": "curriculum=<name> (and strategy=<name>)",
       "adapt": "adapt=tapt|dapt", "augment": "augment=eda", "freeze.probe": "freeze=all"}


def _node_of(arg: str) -> Optional[str]:
    """The nullable node an override writes inside (``curriculum`` for ``curriculum.stages=...``)."""
    if "=" not in arg or arg.startswith(("+", "~", "-", "hydra.")):
        return None
    key = arg.split("=", 1)[0]
    return next((n for n in NULLABLE if key.startswith(n + ".")), None)


def _is_sweep(arg: str) -> bool:
    value = arg.split("=", 1)[1] if "=" in arg else ""
    return ("," in value and not value.startswith(("[", "{", "'", '"'))) or value.startswith(
        ("range(", "choice(", "interval(", "glob("))


def null_override_error(argv: Sequence[str]) -> Optional[str]:
    """The one-sentence error for ``argv`` (train.py's arguments), or None when there is none."""
    args = [a for a in argv if not a.startswith("-")]
    suspects = [(a, n) for a in args if (n := _node_of(a))]
    if not suspects or any(_is_sweep(a) for a in args):
        return None  # nothing to check, or a sweep: Hydra composes each job itself
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from tunelab.config import register_configs

    register_configs()
    rest = [a for a in args if not _node_of(a)]
    try:
        with initialize_config_module("tunelab.conf", version_base="1.3"):
            cfg = compose("config", overrides=rest)
    except Exception:  # noqa: BLE001 - another problem: Hydra reports it in its own words
        return None
    for arg, node in suspects:
        if OmegaConf.select(cfg, node) is None:
            key = arg.split("=", 1)[0]
            return (f"cannot set {key}: '{node}' is null in this configuration (nothing chose it); choose it first "
                    f"({HOW[node]}) or drop {key}.")
    return None


def check_or_exit(argv: Sequence[str]) -> None:
    msg = null_override_error(argv)
    if msg:
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
