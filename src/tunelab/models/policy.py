"""The freeze policy (and the PEFT modules), read from the config in one place and nowhere else.

``freeze=<option>`` (``conf/freeze/*.yaml``) and ``peft=<option>`` (``conf/peft/*.yaml``) are
the user's answer to "which parameters train?".
Every module that needs that answer asks a :class:`Policy` (through :mod:`tunelab.models.plan`
once a model is loaded), never ``cfg.freeze``: the rules below are the only interpretation of
the group. This module imports nothing heavy, so the start-up checks (``tunelab.validation``)
can ask it before torch or transformers are imported.

A policy names *blocks* (``embeddings``, ``layer.0`` … ``layer.{L-1}``, ``pooler``, ``head``;
:mod:`tunelab.models.freezing` cuts a model into them):

* ``none``: everything trains; ``all``: only a classifier on the frozen encoder (a linear
  probe: ``freeze.probe`` says how it is fitted, :mod:`tunelab.schemas.probe`);
* ``last_n``: the top ``n`` layers, the pooler and the head train; ``first_n``: the embeddings
  and the first ``n`` layers are frozen; ``embeddings``: only the embeddings are frozen;
* ``gradual``: starts as ``all`` and thaws one block from the top at a time (ULMFiT);
* ``bitfit``: only the bias terms of the encoder and the head train (Ben Zaken et al. 2022);
* ``lpft``: ``all`` with its probe fitted first (the head alone, ``freeze.probe``), then ``none``
  from that head (Kumar et al. 2022): two plans in one job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from tunelab.errors import ConfigError

MODES = ("none", "all", "last_n", "first_n", "embeddings", "gradual", "bitfit", "lpft")
# Policies whose frozen set is fixed for the whole run (a frozen prefix can be cached).
STATIC_LAYER_MODES = ("last_n", "first_n")
# Methods that train an encoder under ``freeze`` (the others never run one, or keep it frozen).
FREEZING_METHODS = ("finetune", "curriculum", "adapt")
# Curriculum strategies that train only their own parameters (adapters/LoRA + heads).
OWN_PARAMETERS = ("adapters", "lora")


@dataclass(frozen=True)
class Probe:
    """``freeze.probe``: how ``freeze=all`` fits its classifier (schema: tunelab.schemas.probe)."""

    fit: str                  # logreg | head | paper
    pooling: str
    lr: float
    epochs: int
    C: Optional[float]
    Cs: tuple
    cv: int
    max_iter: int


@dataclass(frozen=True)
class Peft:
    """``peft``: the parameter-efficient modules added to the frozen encoder (schema: tunelab.schemas.peft)."""

    name: str                 # lora | adapters | ia3
    r: int = 8
    alpha: int = 16
    dropout: float = 0.1
    target_modules: Optional[tuple] = None
    feedforward_modules: Optional[tuple] = None
    reduction_factor: int = 16


@dataclass(frozen=True)
class Policy:
    """What the ``freeze`` group says, as plain values (no config node escapes this module)."""

    name: str
    mode: str
    n: int = 0
    unfreeze_every: str = "epoch"
    unfreeze_k_steps: int = 100
    probe: Optional[Probe] = None
    # The PEFT modules added (None: none); with them only those and the head train.
    peft: Optional[Peft] = None

    @property
    def fit(self) -> str:
        """How the classifier of ``freeze=all`` is fitted; ``paper`` (Lightning, optim.*) otherwise."""
        return self.probe.fit if self.probe is not None else "paper"

    @property
    def freezes_anything(self) -> bool:
        return self.mode != "none"

    @property
    def per_layer(self) -> bool:
        """Does the policy freeze some encoder layers and not others (at some point of the run)?"""
        return self.mode in ("last_n", "first_n", "gradual")

    def frozen_blocks(self, block_names: list[str], n_layers: int) -> set[str]:
        """Names of the blocks frozen at the start (for ``gradual``: all of the base model; for
        ``bitfit`` none: its weights are frozen inside every block, :meth:`trains_parameter`;
        ``lpft`` is fine-tuned whole, its probe phase is ``all``)."""
        base = [b for b in block_names if b != "head"]
        if self.mode in ("none", "bitfit", "lpft"):
            return set()
        if self.mode in ("all", "gradual"):
            return set(base)
        if self.mode == "embeddings":
            return {"embeddings"}
        self.check_depth(n_layers)
        if self.mode == "last_n":
            return {"embeddings"} | {f"layer.{i}" for i in range(n_layers - self.n)}
        return {"embeddings"} | {f"layer.{i}" for i in range(self.n)}  # first_n

    def trains_parameter(self, name: str, block: str) -> bool:
        """Within a block that is not frozen, does this parameter train? (BitFit: biases only,
        outside the head; every other policy: all of them.)"""
        if self.mode == "bitfit" and block != "head":
            return name.endswith("bias")
        return True

    def check_depth(self, n_layers: int) -> None:
        """``last_n``/``first_n`` may not name more layers than the model has."""
        if self.mode in STATIC_LAYER_MODES and self.n > n_layers:
            raise ConfigError(
                f"freeze={self.name}: freeze.n={self.n} but the model has only {n_layers} encoder layers; "
                f"use freeze.n<={n_layers} (freeze=none trains everything).")

    def prefix_layers(self, n_layers: int) -> Optional[int]:
        """``k``: the layers that run frozen on frozen embeddings for the whole run (None: no fixed
        prefix; 0: only the embeddings). Gradual unfreezing thaws blocks, so it has none."""
        if self.mode not in ("embeddings",) + STATIC_LAYER_MODES:
            return None
        frozen = self.frozen_blocks(["embeddings"] + [f"layer.{i}" for i in range(n_layers)], n_layers)
        k = 0
        while k < n_layers and f"layer.{k}" in frozen:
            k += 1
        return k


def _get(node: Any, key: str, default=None):
    if node is None:
        return default
    try:
        return node.get(key, default)
    except AttributeError:
        return getattr(node, key, default)


def _tuple(x) -> Optional[tuple]:
    return None if x is None else tuple(str(v) for v in x)


def peft_of(cfg: Any) -> Optional[Peft]:
    """The one reading of ``cfg.peft`` (None for ``peft=none`` or a config without the group)."""
    p = _get(cfg, "peft")
    if p is None or str(_get(p, "name", "none")) == "none":
        return None
    return Peft(name=str(p.name), r=int(p.r), alpha=int(p.alpha), dropout=float(p.dropout),
                target_modules=_tuple(p.target_modules), feedforward_modules=_tuple(p.feedforward_modules),
                reduction_factor=int(p.reduction_factor))


def policy_of(cfg: Any) -> Policy:
    """The one reading of ``cfg.freeze`` (a composed config, or a plain mapping with ``freeze``)."""
    f = _get(cfg, "freeze")
    peft = peft_of(cfg)
    if f is None:
        return Policy(name="none", mode="none", peft=peft)
    p = _get(f, "probe")
    probe = None if p is None else Probe(
        fit=str(p.fit), pooling=str(p.pooling), lr=float(p.lr), epochs=int(p.epochs),
        C=None if p.C is None else float(p.C), Cs=tuple(float(c) for c in p.Cs), cv=int(p.cv),
        max_iter=int(p.max_iter))
    return Policy(name=str(_get(f, "name", "none")), mode=str(_get(f, "mode", "none")),
                  n=int(_get(f, "n", 0) or 0), unfreeze_every=str(_get(f, "unfreeze_every", "epoch")),
                  unfreeze_k_steps=int(_get(f, "unfreeze_k_steps", 100)), probe=probe, peft=peft)


_PRESET = re.compile(r"^(last|first)(\d+)$")


def check_policy(policy: Policy, *, method: str, task: str, strategy: Optional[str], augment: str) -> None:
    """The combinations a policy cannot honour, each refused in one sentence with the fix.

    Called by ``tunelab.validation`` before anything loads; the checks that need the model's
    depth run when the plan is made (:func:`tunelab.models.plan.make_plan`).
    """
    if policy.peft is not None:
        peft = policy.peft.name
        if method != "finetune" and method != "adapt":
            what = ("a curriculum gives every task its own with strategy=lora|adapters" if method == "curriculum"
                    else f"method={method} trains no encoder")
            raise ConfigError(f"peft={peft} trains modules inside a fine-tuned encoder ({what}): drop peft=.")
        if task not in ("seq_cls", "token_cls"):
            raise ConfigError(f"peft={peft} trains its modules with a task head, which task={task} has not: use "
                              f"task=seq_cls or token_cls, or drop peft=.")
        if policy.mode != "none":
            raise ConfigError(f"peft={peft} trains only its own modules and the head (the encoder stays frozen), "
                              f"so freeze={policy.name} would be ignored: drop freeze=.")
    m = _PRESET.match(policy.name)
    if m and policy.mode == f"{m.group(1)}_n" and int(m.group(2)) != policy.n:
        raise ConfigError(
            f"freeze={policy.name} fixes freeze.n={m.group(2)}, but freeze.n={policy.n} was given: use "
            f"freeze={m.group(1)}_n freeze.n={policy.n} (its name follows n), or drop freeze.n.")
    if policy.freezes_anything and method not in FREEZING_METHODS:
        raise ConfigError(f"freeze={policy.name} has no effect with method={method} (it trains no "
                          f"encoder layers): drop freeze= (for a frozen encoder + classifier use "
                          f"method=features or freeze=all).")
    if policy.freezes_anything and strategy in OWN_PARAMETERS:
        raise ConfigError(f"strategy={strategy} trains only its own {strategy} and the heads (the encoder "
                          f"stays frozen), so freeze={policy.name} would be ignored: drop freeze=.")
    probe = policy.probe
    if policy.mode == "lpft":
        if task not in ("seq_cls", "token_cls"):
            raise ConfigError(f"freeze=lpft fits a classifier head first, which task={task} has not: use "
                              f"task=seq_cls or token_cls.")
        if probe is None or probe.fit != "head" or probe.pooling != "head":
            raise ConfigError("freeze=lpft's probe is the head the fine-tuning continues from, trained on what "
                              "that head reads: keep freeze.probe.fit=head and freeze.probe.pooling=head.")
        if method == "curriculum":
            raise ConfigError("freeze=lpft is a recipe for one task (probe, then fine-tune); a curriculum trains "
                              "its stages' heads with optim.*: use freeze=none or a strategy.")
        return
    if probe is None:
        return
    if policy.mode != "all":
        raise ConfigError(f"freeze.probe fits a classifier on a fully frozen encoder, but freeze={policy.name} "
                          f"trains encoder layers: drop freeze.probe or use freeze=all.")
    if probe.pooling == "head" and probe.fit != "head":
        raise ConfigError(f"freeze.probe.pooling=head means what the model's own head reads, which only "
                          f"freeze.probe.fit=head trains (fit={probe.fit}): use pooling=cls|mean|pooler|concat_last4.")
    if probe.fit == "head" and probe.pooling == "concat_last4":
        raise ConfigError("freeze.probe.fit=head trains the model's own classifier, which reads one hidden-size "
                          "vector: use freeze.probe.pooling=cls|mean|pooler, or fit=logreg for concat_last4.")
    if method == "curriculum" and probe.fit != "paper":
        raise ConfigError(f"a curriculum trains each stage's head with optim.* (freeze.probe.fit={probe.fit} is "
                          f"for one task): add freeze.probe.fit=paper to freeze=all, or use strategy=adapters|lora.")
    if augment != "none" and probe.fit == "logreg" and task == "seq_cls":
        raise ConfigError(f"augment={augment} adds training texts, but freeze.probe.fit=logreg fits on the encoder "
                          f"features of the data as loaded: use freeze.probe.fit=head (or paper), or drop augment=.")
