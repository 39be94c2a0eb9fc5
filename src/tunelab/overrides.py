"""A command-line override of a key under a node that is null: one sentence, exit 2.

``curriculum``, ``strategy``, ``adapt`` and ``augment`` are null unless chosen, and
``freeze.probe`` exists only under ``freeze=all``. Hydra cannot set a key inside a null node
(``python train.py curriculum.stages=[a]`` without ``curriculum=``, or ``freeze=last2
freeze.probe.fit=head``) and stops with an AssertionError traceback from OmegaConf. This check
runs before Hydra only when such a key is named: it composes the config without those
overrides and, if the node they write into is null there, says which group to choose.

A multirun (``-m``) is different: Hydra composes its *primary* config without the sweep
overrides (``curriculum=related,unrelated`` is left to the sweeper, which applies it per job),
so ``-m curriculum=related,unrelated curriculum.max_train_samples=600`` would hit the null node
in the primary config although every job chooses a curriculum. Hydra applies *sweep* overrides
per job, after that job's group choices, so :func:`multirun_argv` turns such a plain override
into a one-value sweep, ``key=choice(value)`` (same value, same job overrides), after checking
by composing every job's group choices that each job does give the node a value.
"""

from __future__ import annotations

import itertools
import sys
from typing import List, Optional, Sequence

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
        return None  # nothing to check, or a sweep (a multirun: see multirun_argv)
    from omegaconf import OmegaConf

    rest = [a for a in args if not _node_of(a)]
    try:
        cfg = _compose(rest)
    except Exception:  # noqa: BLE001 - another problem: Hydra reports it in its own words
        return None
    for arg, node in suspects:
        if OmegaConf.select(cfg, node) is None:
            key = arg.split("=", 1)[0]
            return (f"cannot set {key}: '{node}' is null in this configuration (nothing chose it); choose it first "
                    f"({HOW[node]}) or drop {key}.")
    return None


def _compose(overrides: Sequence[str]):
    from hydra import compose, initialize_config_module

    from tunelab.config import register_configs

    register_configs()
    with initialize_config_module("tunelab.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _group_names() -> set:
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_module("tunelab.conf", version_base="1.3"):
        return set(GlobalHydra.instance().config_loader().list_groups(""))


def as_one_value_sweep(arg: str) -> str:
    """``key=value`` -> ``key=choice(value)``: the same single value, applied per job by the sweeper.
    Kept as is when Hydra cannot parse the result (``choice(null)`` is not legal)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    key, value = arg.split("=", 1)
    swept = f"{key}=choice({value or repr('')})"
    try:
        OverridesParser.create().parse_override(swept)
    except Exception:  # noqa: BLE001 - leave it to Hydra, which reports it in its own words
        return arg
    return swept


def multirun_argv(argv: Sequence[str]) -> tuple:
    """(argv to hand to Hydra, error sentence or None) for a multirun's arguments.

    Only plain overrides into a nullable node are touched, and only when the primary config (the
    plain overrides alone, as Hydra composes it) leaves the node null: a group sweep is what
    chooses it. Each job (each combination of the swept group choices) is composed first; a job
    where the node is still null would fail inside Hydra, so it is named here instead."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    args = [a for a in argv if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except Exception:  # noqa: BLE001 - a malformed override: Hydra says so itself
        return list(argv), None
    sweeps = [(a, o) for a, o in zip(args, parsed) if o.is_sweep_override()]
    suspects = [(a, n) for a, o in zip(args, parsed) if not o.is_sweep_override() and (n := _node_of(a))]
    if not suspects:
        return list(argv), None
    plain = [a for a, o in zip(args, parsed) if not o.is_sweep_override() and not _node_of(a)]
    try:
        groups = _group_names()
        # One list of "group=choice" per swept group; value sweeps (seed=range(3)) choose no node.
        choices = [[f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
                   for _, o in sweeps if o.key_or_group in groups]
        primary = _compose(plain)
        jobs = [(job, _compose(plain + list(job))) for job in itertools.product(*choices)]
    except Exception:  # noqa: BLE001 - another problem (unknown option...): Hydra reports it
        return list(argv), None
    needed = set()
    for arg, node in suspects:
        if OmegaConf.select(primary, node) is not None:
            continue  # the primary config has the node; Hydra can apply the override as it is
        key = arg.split("=", 1)[0]
        for job, cfg in jobs:
            if OmegaConf.select(cfg, node) is None:
                which = f"the job with {' '.join(job)}" if job else "every job (nothing swept chooses it)"
                return list(argv), (f"cannot set {key}: '{node}' is null in {which}; choose it in every job "
                                    f"({HOW[node]}) or drop {key}.")
        needed.add(arg)
    return [as_one_value_sweep(a) if a in needed else a for a in argv], None


def is_multirun(argv: Sequence[str]) -> bool:
    return any(a in ("-m", "--multirun") for a in argv)


def schema_option_error(argv: Sequence[str]) -> Optional[str]:
    """``method=finetune_schema``: Hydra lists the schemas a method config extends (tunelab.config)
    as options of ``method``, and choosing one ended in OmegaConf's MissingMandatoryValue."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key.lstrip("+") != "method":
            continue
        for v in value.removeprefix("choice(").rstrip(")").split(","):
            if v.strip().endswith("_schema"):
                from tunelab.schemas.methods import METHOD_SCHEMAS

                v, methods = v.strip(), ", ".join(sorted(METHOD_SCHEMAS))
                return (f"method={v} is the schema the method configs are checked against, not a method: "
                        f"choose method={v.removesuffix('_schema')} (the methods: {methods}).")
    return None


def arm_error(argv: Sequence[str]) -> Optional[str]:
    """``arm=<name>`` picks a study arm that an experiment places (``conf/experiment/*.yaml``:
    ``- /arm: ...``); alone it has nothing to override, and Hydra says only "Could not override"."""
    arms = [a for a in argv if a.split("=", 1)[0] == "arm"]
    if arms and not any(a.split("=", 1)[0] in ("experiment", "+experiment") for a in argv):
        value = arms[0].split("=", 1)[1]
        return (f"arm={value} is a study arm, placed by an experiment: add experiment=freeze_study (or "
                f"experiment=hart2020), or run the arm alone as +arm={value}.")
    return None


def empty_sweep_error(argv: Sequence[str]) -> Optional[str]:
    """``'seed=range(-2)'`` (or ``range(0)``, ``range(5, 2)``) sweeps no value: the sweep launched
    0 jobs, logged the report's traceback and exited 0 as if it had succeeded."""
    if not any("range(" in a for a in argv):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    parser = OverridesParser.create()
    for arg in argv:
        if "range(" not in arg:
            continue
        try:
            o = parser.parse_override(arg)
            empty = o.value_type == ValueType.RANGE_SWEEP and not list(o.sweep_string_iterator())
        except Exception:  # noqa: BLE001 - a malformed override: Hydra says so itself
            continue
        if empty:
            key = o.get_key_element()
            return (f"{arg} gives no value (a range counts up from its start to before its stop), so the sweep "
                    f"would run no job: give a range with values, e.g. '{key}=range(3)' for 0, 1, 2.")
    return None


def optuna_count_error(argv: Sequence[str]) -> Optional[str]:
    """``hydra.sweeper.n_trials=0`` (or ``n_jobs=0``) under hparams_search=optuna: Hydra's Optuna
    sweeper ran no trial and stopped on Optuna's "ValueError: No trials are completed yet" (exit 1)."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in ("hydra.sweeper.n_trials", "hydra.sweeper.n_jobs"):
            try:
                bad = int(value) < 1
            except ValueError:
                continue  # not a number: Hydra's type check says so
            if bad:
                return f"{arg}: the search needs at least 1 (e.g. {key}=20)."
    return None


def multirun_flag_first(argv: Sequence[str]) -> List[str]:
    """``python train.py freeze=all -m 'seed=range(3)'``: Hydra's argparse takes the overrides as one
    run of positional arguments, so a -m between them ended in "unrecognized arguments: seed=...".
    The flag takes no value and means the same anywhere: it is moved to the front."""
    argv = list(argv)
    flags = [a for a in argv if a in ("-m", "--multirun")]
    first_override = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
    if not flags or all(argv.index(f) < first_override for f in flags):
        return argv
    return flags[:1] + [a for a in argv if a not in ("-m", "--multirun")]


def check_or_exit(argv: Sequence[str]) -> List[str]:
    """The arguments to give Hydra (rewritten for a multirun, see :func:`multirun_argv`), or exit 2
    with one sentence when a key is set inside a node that is null or a schema is chosen as a method."""
    argv = multirun_flag_first(argv)
    args = [a for a in argv if not a.startswith("-")]
    msg = schema_option_error(args) or arm_error(args) or empty_sweep_error(args) or optuna_count_error(args)
    if msg:
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    if is_multirun(argv) and any(_is_sweep(a) for a in args):
        argv, msg = multirun_argv(argv)
    else:
        msg = null_override_error(argv)
    if msg:
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
    return list(argv)
