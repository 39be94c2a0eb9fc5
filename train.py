"""Train one job, or a sweep with -m. Everything is configured in conf/ (see README)."""

import hydra
from omegaconf import DictConfig

from tunelab.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from tunelab.run import hydra_main

    return hydra_main(cfg)


if __name__ == "__main__":
    main()
