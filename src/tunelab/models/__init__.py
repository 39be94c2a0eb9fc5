"""Encoders and what is trained on them.

* ``loading``: Hugging Face models and tokenizers from a package (``pkg://``), a folder or the
  hub (offline: one clear error), with a load report of newly initialised weights.
* ``freezing``: the model as blocks (embeddings, layers, pooler, head), freeze policies,
  layer-wise learning-rate decay, gradual unfreezing, the trainable-parameter summary.
* ``modules``: the LightningModules, one per task (sequence/token classification, masked LM).
* ``features``: frozen-encoder features (pooling, disk cache) for the cached freeze=all head,
  ``method=features`` and zero-shot.
"""
