"""``hydra/sweeper=tune``: per arm, a hyper-parameter search on validation, then fresh test seeds.

The Hydra side only: read the settings (``conf/hydra/sweeper/tune.yaml``) and the sweep's
overrides, compose each arm's job config once to read its search space (``search``, in the arm's
YAML; ``hydra.sweeper.search`` on top) and default values — Hydra composes, so no YAML is read by
path — and hand ``tunelab.sweeps.tune.TuneSweep`` the launcher (``base.StudySweeper``).
"""

from __future__ import annotations

from typing import Any, List, Optional

from hydra_plugins.tunelab_sweepers.base import StudySweeper


class TuneSweeper(StudySweeper):
    NAME = "tune"
    SETTINGS = ("metric", "direction", "trials", "seeds_per_trial", "test_seeds", "tune_seed_from", "prune_after",
                "prune_z", "sampler", "sampler_seed", "startup_trials", "trials_per_wave", "test_default", "arm_order",
                "search", "seed_key", "params")

    def __init__(self, metric: str = "val/f1_macro", direction: str = "maximize", trials: int = 8,
                 seeds_per_trial: int = 2, test_seeds: int = 5, tune_seed_from: int = 1000, prune_after: int = 1,
                 prune_z: Optional[float] = 2.0, sampler: str = "random", sampler_seed: int = 0,
                 startup_trials: int = 4, trials_per_wave: int = 1, test_default: bool = True,
                 arm_order: str = "together", search: Optional[dict] = None, seed_key: str = "seed",
                 params: Optional[dict] = None, **unknown: Any) -> None:
        super().__init__(unknown)
        self.settings = dict(metric=metric, direction=direction, trials=trials, seeds_per_trial=seeds_per_trial,
                             tune_seed_from=tune_seed_from, prune_after=prune_after, prune_z=prune_z,
                             sampler=sampler, sampler_seed=sampler_seed, startup_trials=startup_trials,
                             trials_per_wave=trials_per_wave, test_default=test_default, arm_order=arm_order)
        self.test_seeds, self.seed_key = test_seeds, seed_key
        self.search = dict(search or {})
        self.params = dict(params or {})

    def _study(self, arguments: List[str]):
        from tunelab.sweeps.tune import TuneSettings, TuneSweep

        self.check_keys()
        space = self.parse(self.params, arguments, self.seed_key)
        settings = TuneSettings(**self.settings, test_seeds=_test_seeds(space, self.test_seeds))
        settings.check()
        arms = {a.label: self._arm(space, a, settings) for a in map(_named, space.arms, [space] * len(space.arms))}
        return TuneSweep(self.sweep_dir, space, arms, settings)

    def _arm(self, space, arm, settings):
        """The arm's search space and default values, from its composed job config."""
        from hydra.errors import HydraException
        from omegaconf import OmegaConf, open_dict

        from tunelab.errors import ConfigError
        from tunelab.schemas.search import check_search, default_value
        from tunelab.sweeps.tune import ArmSearch

        overrides = space.job_overrides(arm, settings.test_seeds[0])
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        except HydraException as e:
            raise ConfigError(f"{arm.label or 'the sweep'}: its config does not compose ({str(e).splitlines()[0]}).") from None
        choices = dict(cfg.hydra.runtime.choices)
        with open_dict(cfg):
            del cfg["hydra"]
        search = {**OmegaConf.to_container(cfg.get("search") or OmegaConf.create({})), **self.search}
        dims = check_search(cfg, {k: v for k, v in search.items() if v is not None})
        swept = [d.key for d in dims if d.key.lstrip("+") in {k.lstrip("+") for k in space.arm_keys + [space.seed_key]}]
        if swept:
            raise ConfigError(f"{', '.join(swept)} is both searched (search) and swept on the command line (an arm "
                              f"or the seed): drop one.")
        metric = settings.metric
        if metric.startswith("val/") and not cfg.data.get("val_path") and not float(cfg.data.get("val_size") or 0) > 0:
            raise ConfigError(f"{arm.label or 'the run'} has no validation split (data.val_size=0, no data.val_path), "
                              f"but the tune sweeper selects on {metric}: set data.val_size (e.g. 0.1).")
        return ArmSearch(arm, dims, {d.key: default_value(cfg, d.key, choices) for d in dims})


def _named(arm, space):
    """Nothing swept (hparams_search=tune): the one arm is "the config" (in the state, the log
    and the report's tables)."""
    from tunelab.sweeps.space import ArmSpec

    return arm if arm.label else ArmSpec("the config", {})


def _test_seeds(space, n: Any) -> list[str]:
    """The first ``n`` swept seeds, or 0 .. n-1 when the seed is not swept."""
    from tunelab.errors import ConfigError

    if space.seeds is None:
        return [str(i) for i in range(int(n))]
    if int(n) > len(space.seeds):
        raise ConfigError(f"hydra.sweeper.test_seeds={n} but {space.seed_key} gives only {len(space.seeds)} seed(s): "
                          f"sweep more (e.g. '{space.seed_key}=range({n})') or lower hydra.sweeper.test_seeds.")
    return list(space.seeds[: int(n)])
