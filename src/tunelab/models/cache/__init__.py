"""Caches of what a frozen encoder computes, so that the seeds of a sweep pay for it once.

* ``features``: pooled frozen-encoder features on disk (``method=features``, zero-shot, the
  ``freeze=all`` probe and the cached head);
* ``frozen`` + ``heads``: the Hugging Face head (its own modules and loss) trained on cached
  encoder outputs (the plan's ``features`` route);
* ``prefix`` + ``prefix_store`` + ``prefix_module``: hidden states of a frozen bottom, memory-
  mapped, and the top layers trained on them (the plan's ``prefix`` route).

Whether a cache serves a job is the plan's decision (:func:`tunelab.models.plan.route_of`); a
cached route gives the numbers of the full forward pass (tested).
"""
