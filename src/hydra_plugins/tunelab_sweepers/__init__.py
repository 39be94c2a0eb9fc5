"""tunelab's Hydra sweepers (``hydra/sweeper=adaptive``); Hydra loads sweepers only from ``hydra_plugins``."""
