"""``hydra/launcher=slurm``: submitit's SLURM launcher, with its two refusals in one sentence.

Not on a cluster (no ``srun``), submitit raises a RuntimeError, and an ``sbatch`` that refuses
the array (a wrong partition, too much memory or time for the partition) a FailedJobError with
sbatch's stderr; Hydra printed either with a long traceback and exit code 1. This launcher says
which it was and which ``hydra.launcher`` key fixes it, and exits 2 (a user error) with nothing
submitted. Everything else is submitit's launcher unchanged (``conf/hydra/launcher/slurm.yaml``).
"""

from __future__ import annotations

import sys
from typing import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class TunelabSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        try:
            return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as e:
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]
            said = next((x for x in lines if "error" in x.lower()), lines[0] if lines else "no message")
            _refuse(f"sbatch refused the sweep's jobs ({said}): fix the hydra.launcher setting it names "
                    f"(partition, timeout_min, mem_gb, cpus_per_task, gpus_per_node) and run the command again; "
                    f"nothing was submitted.")
        except RuntimeError as e:
            if "srun" not in str(e):
                raise
            _refuse("hydra/launcher=slurm needs a SLURM cluster, but there is no srun command here: run the sweep "
                    "on the cluster's login node, or use hydra/launcher=local or parallel on this machine.")
