"""tunelab: evidence-first studies of fine-tuning BERT-family encoders.

The training entry point is the top-level ``train.py`` (Hydra); the library is split by idea:
``config`` (schemas), ``data`` (sources, splits, batching), ``freezing`` (what trains),
``modules`` (LightningModules per task), ``results`` (the result file), ``report`` (statistics).
"""

__version__ = "0.1.0"
