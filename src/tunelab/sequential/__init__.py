"""Sequential decisions over seeds: alpha spending (``spending``) and the adaptive rule (``rule``).

numpy/scipy only (no torch, no Hydra), so the sweeper, ``tunelab replay`` and the report share
one implementation and each can run on a machine that has only the result files.
"""

from tunelab.sequential.design import Design
from tunelab.sequential.rule import Study, fixed_decisions
from tunelab.sequential.runs import Run
from tunelab.sequential.spending import boundaries, spent

__all__ = ["Design", "Run", "Study", "fixed_decisions", "boundaries", "spent"]
