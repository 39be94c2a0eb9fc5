"""tunelab's Hydra launcher (``hydra/launcher=parallel``); Hydra loads launchers only from ``hydra_plugins``."""
