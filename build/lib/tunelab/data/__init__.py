"""Data: sources (files, packages, hub) -> splits -> tokenised, length-grouped batches.

Import from the submodules (``tunelab.data.sources``, ``.splits``, ``.datamodule``,
``.sampler``); this package imports nothing itself, so reading a CSV does not load torch.
"""
