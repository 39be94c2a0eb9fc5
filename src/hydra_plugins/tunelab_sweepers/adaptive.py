"""``hydra/sweeper=adaptive``: seeds in rounds until every planned contrast is decided.

The Hydra side only: read the sweeper's settings and the sweep's overrides, and hand
``tunelab.sweeps.adaptive.AdaptiveSweep`` a way to launch a wave through whatever launcher is
configured (``base.StudySweeper``). The study, its state on disk and the rule are there and in
``tunelab.sequential``; settings: ``conf/hydra/sweeper/adaptive.yaml``.

A setting or sweep the study cannot run stops before any job with exit 2 and one sentence.
Hydra instantiates sweepers only from the ``hydra_plugins`` package, and imports every module
in it at start-up, so this module imports nothing heavy at its top.
"""

from __future__ import annotations

from typing import Any, List, Optional

from hydra_plugins.tunelab_sweepers.base import StudySweeper


class AdaptiveSweeper(StudySweeper):
    NAME = "adaptive"
    SETTINGS = ("metric", "alpha", "contrasts", "reference", "margin", "min_seeds", "seeds_per_round", "max_seeds",
                "spending", "max_failures", "seed_key", "params")

    def __init__(self, metric: str = "test/acc", alpha: float = 0.05, contrasts: str = "all_pairs",
                 reference: Optional[str] = None, margin: float = 0.0, min_seeds: int = 3, seeds_per_round: int = 1,
                 max_seeds: Optional[int] = None, spending: str = "pocock", max_failures: int = 2,
                 seed_key: str = "seed", params: Optional[dict] = None, **unknown: Any) -> None:
        super().__init__(unknown)
        self.settings = dict(metric=metric, alpha=alpha, contrasts=contrasts, reference=reference, margin=margin,
                             min_seeds=min_seeds, seeds_per_round=seeds_per_round, max_seeds=max_seeds,
                             spending=spending, max_failures=max_failures, seed_key=seed_key)
        self.params = dict(params or {})

    def _study(self, arguments: List[str]):
        from tunelab.sequential.rule import Design
        from tunelab.sweeps.adaptive import AdaptiveSweep
        from tunelab.sweeps.space import seed_list

        self.check_keys()
        s = self.settings
        space = self.parse(self.params, arguments, s["seed_key"])
        seeds = seed_list(space, s["max_seeds"])
        design = Design(alpha=float(s["alpha"]), contrasts=str(s["contrasts"]),
                        reference=None if s["reference"] is None else str(s["reference"]), margin=float(s["margin"]),
                        min_seeds=int(s["min_seeds"]), seeds_per_round=int(s["seeds_per_round"]),
                        max_seeds=len(seeds), spending=str(s["spending"]), max_failures=int(s["max_failures"]))
        return AdaptiveSweep(self.sweep_dir, space, design, str(s["metric"]), seeds)
