"""Continual learning over a curriculum: metrics of the accuracy matrix R (``metrics``) and the
multi-head / adapter model the strategies train (``model``). The runner is ``tunelab.curriculum``."""
