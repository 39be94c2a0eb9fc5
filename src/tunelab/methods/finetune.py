"""``method=finetune``: fine-tune an encoder on one task (seq_cls, token_cls, mlm) under a freeze policy.

The core of every study. What trains is the job's plan (:mod:`tunelab.models.plan`): its route
says whether the Hugging Face model's full forward pass runs, or the frozen part is computed once
and cached (``freeze=all`` with ``freeze.probe.fit=head|paper``: the head on cached encoder
outputs; ``freeze=last_n|first_n``: the top layers on cached prefix states), or ``freeze=all``'s
default probe fits a logistic regression on frozen features. The runners live below every
method (:mod:`tunelab.methods.shared.routes`), so ``method=adapt`` fine-tunes the same way.
"""

from __future__ import annotations

from omegaconf import DictConfig

from tunelab.methods.shared.routes import run_route


def run(cfg: DictConfig, ctx) -> dict:
    """Fine-tune, test, and return the record's fields (``tunelab.run`` writes results.json)."""
    return run_route(cfg, ctx)
