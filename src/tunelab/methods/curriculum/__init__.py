"""``method=curriculum``: fine-tune one encoder on several datasets in sequence, measure
forgetting, and the standard remedies (``strategy``: sequential, joint, replay, adapters, lora).

A curriculum (``curriculum=related|unrelated|custom``) is a list of stages, each naming a data
config (``conf/data/<name>.yaml``) plus overrides (``domain``...) and optional epochs/lr. Every
stage gets its own train/val/test split. The job trains the stages in order, carrying the
encoder; stages with the same label names share a head, others get their own (``head:`` in a
stage names one explicitly). After each stage every task's test split is evaluated with that
task's own head (and adapter) -> ``R[i][j]``. Each task is also trained alone from the original
encoder (``curriculum.baselines``) for forward transfer. ACC, BWT, FWT and forgetting go to
``results.json`` (``extra.curriculum``) and the headline numbers to ``metrics`` (``test/ACC``,
``test/BWT``, ``test/FWT``, ``params/...``).

One idea per module:

* ``stages``: stage specs, their data configs (composed by Hydra) and splits, head assignment;
* ``replay``: replay buffers and mixed (multi-stage, global-label) training frames;
* ``model``: the multi-head classifier; ``adapters``: per-task bottleneck/LoRA adapters,
  training only one, activation, save and reload;
* ``env``: building the model, one fit, one evaluation; ``evaluation``: ``trainer.test`` over
  a test split, scored by ``tunelab.metrics``; ``runner``: the whole run and its record;
* ``metrics`` (R -> ACC/BWT/FWT/forgetting), ``heatmap`` and ``summary`` (mean ± sd over seeds of
  a sweep): numpy/matplotlib only, so the sweep callback imports them without torch.
"""

from __future__ import annotations


def run(cfg, ctx) -> dict:
    """The method's entry point (``conf/method/curriculum.yaml``); see ``runner.run_curriculum``.

    The runner (torch, Lightning) is imported here, not at package import, so that importing
    ``summary``/``metrics``/``heatmap`` stays light."""
    from tunelab.methods.curriculum.runner import run_curriculum

    return run_curriculum(cfg, ctx)
