"""Schemas of the ``method`` group: how a model is obtained for the task.

Each ``conf/method/<name>.yaml`` extends one of these (``defaults: [<name>_schema, _self_]``)
and names in ``_target_`` the function that runs the job, ``(cfg, ctx) -> record``: the config
says which code runs, and no import order or registry decides it. A method's own options live
in its node (``method.features=count``), so a job's saved config holds only the chosen method's.

Methods whose options are swept on their own keep them in their own groups, present only when
the method is chosen: ``method=curriculum`` reads ``curriculum`` and ``strategy``;
``method=adapt`` reads ``adapt``. Which combinations of method, task, freeze, strategy, adapt
and augment run is decided in one place, ``tunelab.validation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from tunelab.errors import ConfigError
from tunelab.schemas.baselines import FeaturesConfig, SparseConfig, check_sparse
from tunelab.schemas.checks import bounded, choice


@dataclass
class MethodConfig:
    """A method whose options live elsewhere or nowhere: ``finetune`` (the encoder under the
    ``freeze`` policy), ``curriculum`` (options in ``curriculum``/``strategy``), ``adapt``
    (options in ``adapt``)."""

    _target_: str = MISSING
    name: str = MISSING


@dataclass
class SparseMethod(SparseConfig):
    """A scikit-learn vectoriser + logistic regression (no encoder)."""

    _target_: str = MISSING
    name: str = "sparse"


@dataclass
class FeaturesMethod(FeaturesConfig):
    """A classifier on frozen-encoder features (computed once, cached on disk)."""

    _target_: str = MISSING
    name: str = "features"


@dataclass
class ZeroShotMethod:
    """No training: label = the description most similar to the text."""

    _target_: str = MISSING
    name: str = "zeroshot"
    # A local folder / hub id of an NLI model: use the transformers zero-shot pipeline instead
    # of embedding similarity. None is packaged; offline a hub id fails with a clear message.
    nli_model: Optional[str] = None
    # Label descriptions: each template is filled with {label} (the description of the label,
    # or its name); with several templates their normalised embeddings are averaged.
    templates: List[str] = field(default_factory=lambda: ["This text is {label}."])
    # label name -> natural-language description, e.g. {positive: "happy and satisfied"}.
    descriptions: Dict[str, str] = field(default_factory=dict)
    pooling: str = choice("mean", "cls", "mean", "concat_last4", "pooler")
    batch_size: int = bounded(64, 1)
    # Also score the validation split (test is always scored).
    eval_val: bool = False


METHOD_SCHEMAS = {"finetune": MethodConfig, "sparse": SparseMethod, "features": FeaturesMethod,
                  "zeroshot": ZeroShotMethod, "curriculum": MethodConfig, "adapt": MethodConfig}


def check_zeroshot(node: Any) -> None:
    """Templates the label descriptions can be filled into (descriptions of labels the data do
    not have are refused by the method, once the labels are known)."""
    templates = list(node.templates or [])
    if not templates:
        raise ConfigError("method.templates is empty: give at least one, e.g. ['This text is {label}.'].")
    for t in templates:
        if "{label}" not in t:
            raise ConfigError(f"method.templates: {t!r} has no '{{label}}' placeholder.")


def check_method(node: Any) -> None:
    """The rules of the chosen method's options beyond each field's declared choices and ranges."""
    name = node.get("name")
    if name == "sparse":
        check_sparse(node)
    elif name == "zeroshot":
        check_zeroshot(node)
