"""What tunelab's sweepers share on the Hydra side: the launcher, multirun.yaml, one-sentence errors.

A subclass builds its study from the sweeper's settings and the sweep's overrides (``_study``);
the study drives waves of jobs through whatever launcher is configured (basic, ``parallel``,
``local``, ``slurm``): ``launch(overrides, first job number)``. A ``TunelabError`` (a bad setting,
a sweep the study cannot run, another study in the sweep dir) ends the sweep with exit 2 and one
sentence. Abstract, so Hydra's plugin scan does not list it as a sweeper of its own.
"""

from __future__ import annotations

import abc
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class StudySweeper(Sweeper, abc.ABC):
    NAME = ""            # hydra/sweeper=<NAME>
    SETTINGS: Sequence[str] = ()

    def __init__(self, unknown: Sequence[str] = ()) -> None:
        super().__init__()
        self.unknown = sorted(unknown)
        self.hydra_context: Optional[HydraContext] = None
        self.config: Optional[DictConfig] = None
        self.launcher = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    @abc.abstractmethod
    def _study(self, arguments: List[str]) -> Any:
        """The study to run (an object with ``run(launch, validate=...)``)."""

    def check_keys(self) -> None:
        from tunelab.errors import ConfigError

        if self.unknown:
            raise ConfigError(f"hydra.sweeper has no key {', '.join(self.unknown)} (hydra/sweeper={self.NAME}); its "
                              f"keys are: {', '.join(self.SETTINGS)} (conf/hydra/sweeper/{self.NAME}.yaml).")

    def parse(self, params: dict, arguments: List[str], seed_key: str):
        """The sweep's arms x seeds: the sweeper's ``params`` first, then the command line."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from tunelab.sweeps.space import parse_space

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        given = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
        return parse_space(parser.parse_overrides(given), seed_key=str(seed_key))

    @property
    def sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir))

    def sweep(self, arguments: List[str]) -> Any:
        from tunelab.errors import TunelabError

        try:
            self.check_keys()
            study = self._study(arguments)
            self.sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, self.sweep_dir / "multirun.yaml")
            returns: list = []

            def launch(batch: list, first_num: int) -> Any:
                returns.append(self.launcher.launch(batch, initial_job_idx=first_num))
                return returns[-1]

            study.run(launch, validate=self.validate_batch_is_legal)
            return returns
        except TunelabError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
