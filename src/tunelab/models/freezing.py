"""A model as blocks, and the mechanics of freezing them (which blocks freeze: the plan).

The model is cut into *blocks*, bottom to top: ``embeddings``, ``layer.0`` … ``layer.{L-1}``,
``pooler`` (if any) and ``head`` (everything outside the base encoder: classifier, MLM head).
Which blocks a job freezes is decided once, by :mod:`tunelab.models.plan` from the freeze
policy (:mod:`tunelab.models.policy`); layer-wise lr decay gives block depth ``d`` the rate
``lr * layer_decay ** (top - d)``. Frozen really means frozen:
  * ``requires_grad=False`` (no gradient is computed or stored),
  * not in the optimizer (``param_groups`` skips them, so weight decay cannot move them),
  * kept in eval mode (``keep_frozen_in_eval`` is called after every ``.train()``), so dropout
    does not perturb the features a frozen block hands upwards.
Gradual unfreezing (ULMFiT) starts with only the head and adds one block from the top at each
stage of the run (or epoch, or every k steps), adding its parameters to the optimizer as they thaw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
from torch import nn

from tunelab.errors import ConfigError

NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "LayerNorm.bias", "norm.weight")
# IA3's learned vectors rescale activations from 1 (the pretrained model): weight decay, like a
# LayerNorm gain's, would pull them toward 0 — switching paths off — not toward the pretrained
# model. PEFT stores them as (d, 1) or (1, d) matrices, so ``ndim < 2`` does not catch them.
NO_DECAY_PARTS = (".ia3_l.",)


@dataclass
class Block:
    name: str
    depth: int                 # 0 = embeddings ... top = head
    modules: list[nn.Module]
    params: list[nn.Parameter]
    # How many encoder layers run this block's weights: 1, except for cross-layer sharing
    # (ALBERT runs one layer num_hidden_layers times), which no per-layer policy can split.
    uses: int = 1


def _find_layer_list(base: nn.Module, n_layers: Optional[int]) -> tuple[str, nn.ModuleList, int]:
    """The encoder's ModuleList of transformer layers and how many layers run each entry.

    Found by shape, so any BERT-family encoder works: the shallowest ModuleList of
    ``num_hidden_layers`` entries (BERT: ``encoder.layer``; DistilBERT: ``transformer.layer``;
    ModernBERT: ``layers``), else, for cross-layer sharing, the shallowest one whose length divides
    it (ALBERT: ``encoder.albert_layer_groups``, each group run ``num_hidden_layers / groups`` times).
    """
    lists = [(name, mod) for name, mod in base.named_modules() if isinstance(mod, nn.ModuleList) and len(mod) > 0]
    lists.sort(key=lambda nm: nm[0].count("."))
    for name, mod in lists:
        if n_layers is None or len(mod) == n_layers:
            return name, mod, 1
    for name, mod in lists:
        if n_layers % len(mod) == 0:
            return name, mod, n_layers // len(mod)
    raise ConfigError(
        f"cannot find the transformer layers of {type(base).__name__}: freezing by layer "
        f"supports BERT-family encoders (a ModuleList of num_hidden_layers layers)."
    )


def _hidden_state_users(base: nn.Module, params: list[nn.Parameter], n_states: int) -> Optional[list[Optional[int]]]:
    """For each parameter, the lowest ``i`` whose ``hidden_states[i]`` depends on it (None: none does).

    One forward of a 6-token dummy input with ``output_hidden_states`` and, per hidden state, one
    ``torch.autograd.grad`` with ``allow_unused``: a parameter outside the autograd graph of
    ``hidden_states[i]`` gets no gradient. ``hidden_states[0]`` is the embedding output, ``[i]``
    layer ``i-1``'s. None (for all) when the model does not return ``n_states`` hidden states.
    """
    cfg = getattr(base, "config", None)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0) or 100
    device = params[0].device
    ids = (torch.arange(6, device=device) % vocab + min(5, vocab - 1)) % vocab
    flags = [p.requires_grad for p in params]
    was_training = base.training
    users: list[Optional[int]] = [None] * len(params)
    try:
        base.eval()  # no dropout: the forward must not draw from the RNG
        with torch.inference_mode(False), torch.enable_grad():
            for p in params:
                p.requires_grad_(True)
            out = base(input_ids=ids[None], attention_mask=torch.ones_like(ids)[None], output_hidden_states=True)
            states = getattr(out, "hidden_states", None)
            if states is None or len(states) != n_states:
                return None
            todo = list(range(len(params)))
            for i, h in enumerate(states):
                if not todo:
                    break
                if not h.requires_grad:
                    continue
                grads = torch.autograd.grad(h.float().sum(), [params[j] for j in todo], allow_unused=True,
                                            retain_graph=True)
                for j, g in zip(list(todo), grads):
                    if g is not None:
                        users[j] = i
                        todo.remove(j)
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        base.train(was_training)
    return users


def _owner(base: nn.Module, param_name: str, claimed: set[int]) -> Optional[nn.Module]:
    """The largest module holding ``param_name`` that holds no module of another block
    (``encoder.conv`` for ``encoder.conv.conv.weight``, not ``encoder``, which holds the layers)."""
    parts = param_name.split(".")[:-1]
    for i in range(1, len(parts) + 1):
        mod = base.get_submodule(".".join(parts[:i]))
        if not any(id(m) in claimed for m in mod.modules()):
            return mod
    return None


def blocks_of(model: nn.Module) -> list[Block]:
    """Split a Hugging Face model into ordered blocks (see module doc).

    Base-model weights outside the embeddings, the layers and the pooler go to the lowest block
    that uses them, found from the architecture itself (:func:`_hidden_state_users`): weights
    shared by several layers (DeBERTa's relative-position embeddings and their LayerNorm, MPNet's
    relative-attention bias) belong to ``layer.0``; weights applied before the first layer
    (ELECTRA's ``embeddings_project``, ALBERT's ``embedding_hidden_mapping_in``) to the
    embeddings; weights no hidden state depends on (ModernBERT's ``final_norm``, applied after the
    last layer) to the top layer. So a frozen block's output never depends on a trained weight.
    """
    base = getattr(model, "base_model", model)
    cfg = getattr(model, "config", None)
    n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None)
    layer_name, layers, uses = _find_layer_list(base, n_layers)
    seen: set[int] = set()

    def take(mods: list[nn.Module]) -> list[nn.Parameter]:
        out = []
        for m in mods:
            for p in m.parameters():
                if id(p) not in seen:  # tied weights (MLM decoder = word embeddings) count once
                    seen.add(id(p))
                    out.append(p)
        return out

    blocks: list[Block] = []
    emb = getattr(base, "embeddings", None)
    blocks.append(Block("embeddings", 0, [emb] if emb is not None else [], take([emb] if emb is not None else [])))
    for i, layer in enumerate(layers):
        blocks.append(Block(f"layer.{i}", i + 1, [layer], take([layer]), uses=uses))
    top = len(layers) + 1
    pooler = getattr(base, "pooler", None)
    if isinstance(pooler, nn.Module):
        blocks.append(Block("pooler", top, [pooler], take([pooler])))
    rest = [(n, p) for n, p in base.named_parameters() if id(p) not in seen]
    if rest:
        users = _hidden_state_users(base, [p for _, p in rest], n_states=len(layers) * uses + 1)
        claimed = {id(m) for b in blocks for top_mod in b.modules for m in top_mod.modules()}
        for (name, p), i in zip(rest, users or [None] * len(rest)):
            if users is None:  # no hidden states to ask: the lowest layer, so they freeze with any layer
                k = 1
            elif i is None:  # used after the last layer only
                k = len(layers)
            else:  # hidden_states[i] is the output of layer i-1, i.e. of block (i-1) // uses + 1
                k = 0 if i == 0 else (i - 1) // uses + 1
            blocks[k].params.append(p)
            seen.add(id(p))
            # Its module joins the block too, so a frozen block keeps it in eval mode (DeBERTa-v2's
            # convolution has a dropout of its own).
            mod = _owner(base, name, claimed)
            if mod is not None and all(mod is not m for m in blocks[k].modules):
                blocks[k].modules.append(mod)
    head_params = [p for p in model.parameters() if id(p) not in seen]
    head_mods = [m for n, m in model.named_children() if m is not base]
    blocks.append(Block("head", top + 1, head_mods, head_params))
    return blocks


def check_shared_layers(blocks: list[Block], policy: Any, optim_cfg: Any) -> None:
    """Refuse per-layer policies (a :class:`tunelab.models.policy.Policy`) on layers that share
    their weights (ALBERT).

    Freezing "the last two layers" of ALBERT would freeze or train the one set of weights that
    every layer runs, and layer-wise lr decay has no per-layer weights to give rates to.
    """
    _refuse_split(max(b.uses for b in blocks), policy, optim_cfg)


def check_shared_layers_of(model: nn.Module, policy: Any, optim_cfg: Any) -> None:
    """:func:`check_shared_layers` from the module structure alone (a meta-device model will do:
    no forward, no weights), so a run can be refused at start-up."""
    base = getattr(model, "base_model", model)
    cfg = getattr(model, "config", None)
    n_layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layers", None)
    _refuse_split(_find_layer_list(base, n_layers)[2], policy, optim_cfg)


def _refuse_split(uses: int, policy: Any, optim_cfg: Any) -> None:
    if uses <= 1:
        return
    what = f"its encoder layers share their weights ({uses} layers run each set, as in ALBERT)"
    if policy.per_layer:
        raise ConfigError(f"freeze={policy.name} cannot freeze part of this encoder: {what}; use "
                          f"freeze=none, all, embeddings, bitfit or lpft.")
    if float(getattr(optim_cfg, "layer_decay", 1.0)) != 1.0:
        raise ConfigError(f"optim.layer_decay={optim_cfg.layer_decay} needs one set of weights per layer, but "
                          f"{what}; use optim.layer_decay=1.")


def keep_frozen_in_eval(blocks: list[Block]) -> None:
    """Put fully frozen blocks in eval mode (no dropout). Call after every ``.train()``."""
    for b in blocks:
        if b.params and not any(p.requires_grad for p in b.params):
            for m in b.modules:
                m.eval()


def block_lrs(blocks: list[Block], optim_cfg: Any) -> dict[str, float]:
    n_layers = sum(b.name.startswith("layer.") for b in blocks)
    lrs = {}
    for b in blocks:
        if b.name == "head":
            lrs[b.name] = optim_cfg.head_lr or optim_cfg.lr
        else:
            # The top layer (and the pooler on it) get lr; each layer below gets the rate of the
            # layer above times layer_decay; the embeddings sit below layer 0.
            lrs[b.name] = optim_cfg.lr * optim_cfg.layer_decay ** max(0, n_layers - b.depth)
    return lrs


def param_groups(blocks: list[Block], optim_cfg: Any, *, only: Optional[set[str]] = None,
                 named: Optional[dict[int, str]] = None) -> list[dict]:
    """AdamW groups: one per (block, decay / no-decay), trainable parameters only."""
    lrs = block_lrs(blocks, optim_cfg)
    named = named or {}
    groups = []
    for b in blocks:
        if only is not None and b.name not in only:
            continue
        decay, no_decay = [], []
        for p in b.params:
            if not p.requires_grad:
                continue
            name = named.get(id(p), "")
            exempt = p.ndim < 2 or name.endswith(NO_DECAY) or any(part in name for part in NO_DECAY_PARTS)
            (no_decay if exempt else decay).append(p)
        for params, wd in ((decay, optim_cfg.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"params": params, "lr": lrs[b.name], "weight_decay": wd, "block": b.name})
    return groups


def count(params: Iterable[nn.Parameter]) -> tuple[int, int]:
    params = list({id(p): p for p in params}.values())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


class GradualUnfreezer:
    """ULMFiT-style schedule: the plan's thaw order (top block first), one step at a time.

    ``step(optimizer, scheduler, epoch=..., global_step=..., total_steps=...)`` thaws the blocks
    due and adds their parameters to the optimizer (and the lr scheduler, which otherwise would
    not scale the new groups' rates with warmup/decay).

    When a block is due (``policy.unfreeze_every``): ``epoch``, one more at each epoch start
    (ULMFiT's schedule; with fewer epochs than blocks the lower blocks never train); ``steps``,
    one more every ``unfreeze_k_steps`` optimiser steps; ``stage``, the run's ``total_steps`` cut
    into ``len(order) + 1`` equal stages, one more block per stage, so the head trains alone for
    the first stage and everything trains for the last, at any run length.
    """

    def __init__(self, plan, optim_cfg: Any, named: dict[int, str]):
        policy = plan.route.policy
        self.blocks, self.optim_cfg, self.named = plan.blocks, optim_cfg, named
        self.every, self.k_steps = policy.unfreeze_every, policy.unfreeze_k_steps
        self.order = plan.thaw_order()
        self.thawed = 0

    @property
    def per_step(self) -> bool:
        """Whether blocks can fall due inside an epoch (checked at every batch, not only at epoch starts)."""
        return self.every in ("steps", "stage")

    def due(self, epoch: int, global_step: int, total_steps: Optional[float] = None) -> int:
        """How many thaw groups are due by this epoch / optimiser step."""
        n = len(self.order)
        if self.every == "epoch":
            return min(epoch, n)
        if self.every == "stage":
            if total_steps is None or not math.isfinite(total_steps) or total_steps < 1:
                raise ConfigError("freeze.unfreeze_every=stage needs the run's length in optimiser steps, "
                                  f"which is not known here ({total_steps}): use freeze.unfreeze_every=steps.")
            return min(int(global_step * (n + 1) // int(total_steps)), n)
        return min(global_step // max(1, self.k_steps), n)

    def step(self, optimizer, scheduler, *, epoch: int, global_step: int,
             total_steps: Optional[float] = None) -> list[str]:
        return self.thaw_to(self.due(epoch, global_step, total_steps), optimizer, scheduler)

    def thaw_to(self, target: int, optimizer, scheduler) -> list[str]:
        """Thaw groups in order until ``target`` are thawed; their blocks' names. Also how a resumed
        run rebuilds its optimizer: a checkpoint's optimizer holds one param group per block thawed
        so far, in thaw order, and loading it into the head-only optimizer of a fresh start fails."""
        newly = []
        while self.thawed < target:
            names = set(self.order[self.thawed])
            for b in self.blocks:
                if b.name in names:
                    for p in b.params:
                        p.requires_grad_(True)
                    for m in b.modules:
                        m.train()
            for g in param_groups(self.blocks, self.optim_cfg, only=names, named=self.named):
                optimizer.add_param_group(g)
                if scheduler is not None:
                    # LambdaLR keeps one base lr and one lambda per group.
                    scheduler.base_lrs.append(g["lr"])
                    if hasattr(scheduler, "lr_lambdas"):
                        scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
                    g["lr"] = g["lr"] * (scheduler.lr_lambdas[0](scheduler.last_epoch)
                                         if hasattr(scheduler, "lr_lambdas") else 1.0)
            newly.extend(sorted(names))
            self.thawed += 1
        return newly


def named_ids(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def assert_frozen_state(model: nn.Module, optimizer: Optional[torch.optim.Optimizer] = None) -> None:
    """Debug helper for tests: frozen params have no grad and are not optimised."""
    in_opt = set()
    if optimizer is not None:
        for g in optimizer.param_groups:
            in_opt.update(id(p) for p in g["params"])
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert p.grad is None, f"frozen parameter {n} has a gradient"
            assert id(p) not in in_opt, f"frozen parameter {n} is in the optimizer"
