"""``study`` and ``search``: what tunelab's tune sweeper (``hydra/sweeper=tune``) reads and writes.

Both are inert in a run of their own: no code that trains reads them, and neither is part of a
job's identity (``tunelab.ops.identity.BOOKKEEPING``), so adding a search space to an arm's YAML
changes no result and resumes every job it resumed before.

* ``search`` (in an arm's YAML, ``conf/arm/*.yaml``): the arm's hyper-parameter search space, one
  dotted config key per dimension, in Hydra's sweep syntax (as ``hparams_search=optuna`` takes
  it): ``optim.lr: tag(log, interval(1e-5, 1e-4))``, ``optim.epochs: choice(2, 3, 4)``,
  ``range(2, 5)``. The sweeper searches it; ``tunelab.validation`` checks it at every start-up
  (``tunelab.schemas.search.check_search``), so a typo fails before anything runs either way.
* ``study`` (set only by the sweeper, through an override on each job it launches): which phase of
  a tuning study the job is (``tune``: a trial's seed, scored on validation; ``test``: a fresh seed
  of a chosen configuration) and its trial. results.json keeps it in ``config.study``, so a reader
  of one job dir knows whether its test score may be reported (phase ``test``) or was part of the
  selection (``tune``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from tunelab.schemas.checks import bounded, choice


@dataclass
class StudyConfig:
    # tune | test (null: not a job of a tuning study)
    phase: Optional[str] = choice(None, "tune", "test")
    # the trial whose configuration this job ran (0: the arm's default recipe)
    trial: Optional[int] = bounded(None, 0)
