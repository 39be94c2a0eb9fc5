"""The Hydra application: ``python train.py ...`` and ``tunelab-train ...`` both run :func:`main`.

The configs are the package ``tunelab.conf`` (the repository's ``conf/``), so an installed
tunelab runs from any directory. ``main`` only hands the composed config to ``tunelab.run``.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from tunelab.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="pkg://tunelab.conf", config_name="config")
def _hydra_app(cfg: DictConfig):
    from tunelab.run import hydra_main

    return hydra_main(cfg)


def main():
    """``train.py`` / ``tunelab-train``: a key set inside a null group fails in one sentence
    (tunelab.overrides) instead of OmegaConf's traceback; then Hydra takes over."""
    import sys

    from tunelab.overrides import check_or_exit

    # In a multirun, a plain key=value inside a node a swept group chooses becomes
    # key=choice(value) (tunelab.overrides.multirun_argv); Hydra reads sys.argv itself.
    sys.argv[1:] = check_or_exit(sys.argv[1:])
    try:
        return _hydra_app()
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM outside a job (between a sweep's jobs): no job to record, just the
        # exit code a shell expects (tunelab.ops.interrupt; inside a job run.py handles it).
        from tunelab.ops.interrupt import describe, exit_code, received

        if received() is None:
            raise
        print(f"interrupted by {describe(received())}", file=sys.stderr)
        sys.exit(exit_code())


if __name__ == "__main__":
    main()
