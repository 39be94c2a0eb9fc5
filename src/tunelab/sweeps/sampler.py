"""How a tuning trial's values are drawn from an arm's search space (``tunelab.schemas.search``).

Optuna 2.10's samplers on a fresh in-memory study per trial. The sampler's seed is derived from
(``sampler_seed``, the arm's label, the trial number) and the finished trials are replayed into
the study first (``sampler=tpe``; random search needs no history), so a trial's values are a
function of the disk state alone: the same after a kill and rerun as in one uninterrupted run.
Floats are rounded to 3 significant digits (a readable override, ``optim.lr=3.21e-05``; finer
steps of a learning rate mean nothing next to seed noise) and kept inside the bounds.

Why random search is the default: Dodge et al.'s expected best score over n trials (the report's
curve) assumes the trials are i.i.d. draws from the space, which only random search gives; with
budgets of ~8 trials TPE would draw at random anyway (Optuna's TPE starts with 10 random trials
by default); and in few dimensions random search is a strong baseline (Bergstra & Bengio 2012).
``sampler=tpe`` (after ``startup_trials`` random draws) is there for larger budgets.
"""

from __future__ import annotations

import warnings
import zlib
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from tunelab.errors import ConfigError
from tunelab.schemas.search import Dimension

SAMPLERS = ("random", "tpe")


def distribution(dim: Dimension):
    """The Optuna distribution of a dimension."""
    from optuna.distributions import CategoricalDistribution, LogUniformDistribution, UniformDistribution

    if dim.choices is not None:
        return CategoricalDistribution(dim.choices)
    return (LogUniformDistribution if dim.log else UniformDistribution)(dim.low, dim.high)


def trial_seed(sampler_seed: int, arm: str, trial: int) -> int:
    """The sampler's seed for one trial of one arm (stable across processes and Python versions)."""
    return int(np.random.SeedSequence([int(sampler_seed), zlib.crc32(arm.encode()), int(trial)]).generate_state(1)[0])


@dataclass
class Finished:
    """A finished trial as the sampler's history: its values, and its objective (None: failed)."""

    params: dict
    value: Optional[float]
    pruned_at: Optional[int] = None  # seeds it ran before it was pruned (its value is their mean)


def propose(dims: Sequence[Dimension], *, seed: int, sampler: str = "random", direction: str = "maximize",
            history: Sequence[Finished] = (), startup_trials: int = 4) -> dict:
    """One trial's values (key -> value) from a fresh study seeded with ``seed``."""
    import optuna
    from optuna.trial import TrialState, create_trial

    if sampler not in SAMPLERS:
        raise ConfigError(f"hydra.sweeper.sampler={sampler!r} is not one of {', '.join(SAMPLERS)}.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # add_trial in 2.10
    dists = {d.key: distribution(d) for d in dims}
    smp = (optuna.samplers.RandomSampler(seed=seed) if sampler == "random"
           else optuna.samplers.TPESampler(seed=seed, n_startup_trials=int(startup_trials)))
    study = optuna.create_study(direction=direction, sampler=smp)
    if sampler == "tpe":
        for f in history:
            if f.value is None or not all(d.contains(f.params.get(d.key)) for d in dims):
                continue  # failed, or outside the space (a default recipe beyond the bounds)
            params = {d.key: f.params[d.key] for d in dims}
            if f.pruned_at is None:
                study.add_trial(create_trial(params=params, distributions=dists, value=f.value))
            else:
                study.add_trial(create_trial(params=params, distributions=dists, state=TrialState.PRUNED,
                                             intermediate_values={int(f.pruned_at): f.value}))
    trial = study.ask(dists)
    return {d.key: d.tidy(trial.params[d.key]) for d in dims}
