"""``hydra/sweeper=adaptive``: seeds in rounds until every planned contrast is decided.

The Hydra side only: read the sweeper's settings and the sweep's overrides, and hand
``tunelab.sweeps.adaptive.AdaptiveSweep`` a way to launch a wave through whatever launcher is
configured (basic, ``parallel``, ``local``, ``slurm``). The study, its state on disk and the rule
are there and in ``tunelab.sequential``; settings: ``conf/hydra/sweeper/adaptive.yaml``.

A setting or sweep the study cannot run stops before any job with exit 2 and one sentence.
Hydra instantiates sweepers only from the ``hydra_plugins`` package, and imports every module
in it at start-up, so this module imports nothing heavy at its top.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

SETTINGS = ("metric", "alpha", "contrasts", "reference", "margin", "min_seeds", "seeds_per_round", "max_seeds",
            "spending", "max_failures", "seed_key", "params")


class AdaptiveSweeper(Sweeper):
    def __init__(self, metric: str = "test/acc", alpha: float = 0.05, contrasts: str = "all_pairs",
                 reference: Optional[str] = None, margin: float = 0.0, min_seeds: int = 3, seeds_per_round: int = 1,
                 max_seeds: Optional[int] = None, spending: str = "pocock", max_failures: int = 2,
                 seed_key: str = "seed", params: Optional[dict] = None, **unknown: Any) -> None:
        super().__init__()
        self.settings = dict(metric=metric, alpha=alpha, contrasts=contrasts, reference=reference, margin=margin,
                             min_seeds=min_seeds, seeds_per_round=seeds_per_round, max_seeds=max_seeds,
                             spending=spending, max_failures=max_failures, seed_key=seed_key)
        self.params = dict(params or {})
        self.unknown = sorted(unknown)
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        from tunelab.errors import TunelabError

        try:
            study, sweep_dir = self._study(arguments)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
            returns: list = []

            def launch(batch: list, first_num: int) -> Any:
                returns.append(self.launcher.launch(batch, initial_job_idx=first_num))
                return returns[-1]

            study.run(launch, validate=self.validate_batch_is_legal)
            return returns
        except TunelabError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    def _study(self, arguments: List[str]):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from tunelab.errors import ConfigError
        from tunelab.sequential.rule import Design
        from tunelab.sweeps.adaptive import AdaptiveSweep
        from tunelab.sweeps.space import parse_space, seed_list

        if self.unknown:
            raise ConfigError(f"hydra.sweeper has no key {', '.join(self.unknown)} (hydra/sweeper=adaptive); its keys "
                              f"are: {', '.join(SETTINGS)} (conf/hydra/sweeper/adaptive.yaml).")
        s = self.settings
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        given = [f"{k}={v}" for k, v in self.params.items()] + list(arguments)
        space = parse_space(parser.parse_overrides(given), seed_key=str(s["seed_key"]))
        seeds = seed_list(space, s["max_seeds"])
        design = Design(alpha=float(s["alpha"]), contrasts=str(s["contrasts"]),
                        reference=None if s["reference"] is None else str(s["reference"]), margin=float(s["margin"]),
                        min_seeds=int(s["min_seeds"]), seeds_per_round=int(s["seeds_per_round"]),
                        max_seeds=len(seeds), spending=str(s["spending"]), max_failures=int(s["max_failures"]))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        return AdaptiveSweep(sweep_dir, space, design, str(s["metric"]), seeds), sweep_dir
