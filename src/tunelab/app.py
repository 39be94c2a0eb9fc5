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
    import os

    from tunelab.hydra_errors import OWN_FLAG
    from tunelab.run import hydra_main

    # A job reports its own errors (run.py); Hydra's usual reporting is back for anything after.
    if os.environ.pop(OWN_FLAG, None):
        os.environ.pop("HYDRA_FULL_ERROR", None)

    return hydra_main(cfg)


def main():
    """``train.py`` / ``tunelab-train``: a key set inside a null group fails in one sentence
    (tunelab.overrides) instead of OmegaConf's traceback; then Hydra takes over."""
    import os
    import sys

    from tunelab.hydra_errors import OWN_FLAG, sentence
    from tunelab.overrides import check_or_exit

    # In a multirun, a plain key=value inside a node a swept group chooses becomes
    # key=choice(value) (tunelab.overrides.multirun_argv); Hydra reads sys.argv itself.
    sys.argv[1:] = check_or_exit(sys.argv[1:])
    # Hydra raises (instead of printing several lines and exiting 1) while it composes, so that a
    # bad override ends like every bad input: one sentence, exit 2 (tunelab.hydra_errors).
    user_full_error = "HYDRA_FULL_ERROR" in os.environ
    if not user_full_error:
        os.environ["HYDRA_FULL_ERROR"] = os.environ[OWN_FLAG] = "1"
    try:
        return _hydra_app()
    except Exception as exc:  # noqa: BLE001 - Hydra's own reporting, as one line
        if user_full_error:
            raise
        msg = sentence(exc)
        if msg is not None:
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(2)
        print(f"error: {type(exc).__name__}: {exc} (HYDRA_FULL_ERROR=1 shows the stack trace)", file=sys.stderr)
        sys.exit(1)
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
