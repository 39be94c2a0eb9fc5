"""What trains: one plan per job, made once from the config and the model, and recorded.

"Which parameters should I train?" is the question tunelab exists for, so the answer is one
object, made in one place, that every method reads and results.json keeps (``plan``):

1. :func:`route_of` — before any weights load, from the freeze policy
   (:mod:`tunelab.models.policy`, the one reading of ``cfg.freeze``), the task and one read of
   the model's config: *how* the job trains. ``runner`` is one of

   * ``encoder``  — the Hugging Face model's full forward pass, frozen blocks in eval mode;
   * ``features`` — the head alone on cached outputs of the frozen encoder (``freeze=all``,
     ``freeze.probe.fit=head|paper``; :mod:`tunelab.models.cache.frozen`);
   * ``prefix``   — the top layers on cached outputs of a frozen bottom (``freeze=last_n``,
     ``first_n``; :mod:`tunelab.models.cache.prefix_module`);
   * ``logreg``   — logistic regression on pooled features of the frozen encoder
     (``freeze=all`` with its default probe; no Lightning);
   * ``lpft``     — the ``features`` (or ``encoder``) route's probe first, then the whole model
     fine-tuned from that head (``freeze=lpft``; :attr:`Route.lp` is the probe phase's route),

   with ``cache`` (``none`` / ``features`` / ``prefix``) and ``why`` (one sentence: why this
   cache, or why none). A cached route and the ``encoder`` route give the same numbers (tested),
   so the cache is bookkeeping, never part of a result's meaning.
2. :func:`make_plan` — with the loaded model: the blocks (:func:`tunelab.models.freezing.blocks_of`),
   which of them train and at which learning rate, the PEFT modules added (where a strategy adds
   them), and the trainable / total parameter counts. It is printed as the per-block table,
   applied to the model (``requires_grad``), and is the only source of the optimiser's groups
   and of gradual unfreezing's schedule.

A combination the plan cannot honour (``freeze.n`` deeper than the model) is refused here, in
one sentence, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional

from tunelab import caching
from tunelab.errors import ConfigError
from tunelab.models.policy import Policy, policy_of
# The version of these rules: part of every job's identity (a resumed or skipped job never
# mixes two rule sets). Bump it there when the rules here change what a config trains.
from tunelab.ops.identity import PLAN_RULES



@dataclass(frozen=True)
class Route:
    """How a job trains (see the module doc); made before any weights are read."""

    policy: Policy
    task: str
    runner: str = "encoder"
    cache: str = "none"
    why: str = ""
    model_type: Optional[str] = None
    n_layers: Optional[int] = None
    prefix_layers: Optional[int] = None
    # The probe's pooling for runner=features|logreg; None: what the Hugging Face head reads.
    pooling: Optional[str] = None
    # optim.* keys the route sets (the probe trains its head at its own lr and epochs).
    optim: dict = field(default_factory=dict)
    # lpft: the probe phase's own route (the head alone on the frozen encoder).
    lp: Optional["Route"] = None

    @classmethod
    def direct(cls, policy: Policy, task: str, why: str = "") -> "Route":
        """The full-forward route of a model a method built itself (curriculum, MLM stages)."""
        return cls(policy=policy, task=task, runner="encoder", cache="none", why=why)


def _model_shape(cfg: Any) -> tuple[Optional[str], Optional[int]]:
    """(model_type, encoder layers) from one read of the model's config (no weights)."""
    from tunelab.models.loading import load_config

    mc = load_config(cfg.model)
    n = getattr(mc, "num_hidden_layers", None) or getattr(mc, "n_layers", None)
    return getattr(mc, "model_type", None), (int(n) if n else None)


def check_depth(cfg: Any) -> None:
    """``freeze.n`` against the model's depth, from one read of its config (no weights), and a
    per-layer policy against layers that share their weights (ALBERT; from the model built on the
    meta device): for the methods that build their model themselves (a curriculum, adaptation
    before fine-tuning), so they fail before hours of work rather than at their first use."""
    policy = policy_of(cfg)
    if policy.mode in ("last_n", "first_n"):
        _, n_layers = _model_shape(cfg)
        if n_layers is not None:
            policy.check_depth(n_layers)
    if policy.per_layer or float(cfg.optim.layer_decay) != 1.0:
        import torch
        from transformers import AutoModel

        from tunelab.models import freezing
        from tunelab.models.loading import load_config

        with torch.device("meta"):
            model = AutoModel.from_config(load_config(cfg.model), trust_remote_code=cfg.model.trust_remote_code)
        freezing.check_shared_layers_of(model, policy, cfg.optim)


def _cache_blocker(cfg: Any, task: str) -> Optional[str]:
    """Why no cache can serve this run at all (None: a cache may, if the model type allows)."""
    if task != "seq_cls":
        return f"task={task}: the caches serve sequence classification only"
    if not bool(cfg.trainer.feature_cache):
        return "trainer.feature_cache=false"
    aug = cfg.get("augment")
    if aug is not None and str(aug.get("name", "none")) != "none":
        return "augmented texts change every run, so there is nothing to reuse"
    if cfg.get("ckpt_path"):
        return "resuming from ckpt_path needs the full model's checkpoint"
    return None


def route_of_probe(base: Route, blocker: Optional[str], mtype: Optional[str]) -> Route:
    """The head alone on the frozen encoder, trained by Lightning (``freeze=all`` with probe
    fit=head|paper; the probe phase of ``lpft``): on cached encoder outputs where it can."""
    from tunelab.models.cache import heads

    probe = base.policy.probe
    optim = {}
    if base.policy.fit != "paper":
        optim = {"lr": probe.lr, "head_lr": probe.lr, "epochs": probe.epochs}
    # pooling None: what the model's own head reads (fit=paper, or fit=head with pooling=head).
    pooling = probe.pooling if base.policy.fit == "head" and probe.pooling != "head" else None
    why = blocker or heads.unsupported(mtype)
    if why is not None and pooling is not None:
        # The full forward pass feeds the head what the HF model hands it (BERT: the pooler), so
        # another pooling would be recorded but not trained on (trainer.feature_cache is no part of
        # a job's identity: the two routes must compute the same thing).
        raise ConfigError(f"freeze.probe.pooling={pooling} trains the head on {pooling}-pooled encoder outputs, "
                          f"which only the feature cache computes, and none serves this run ({why}): use "
                          f"freeze.probe.pooling=head (what the model's own head reads).")
    frozen = replace(base, policy=replace(base.policy, mode="all"))
    if why is None:
        return replace(frozen, runner="features", cache="features", pooling=pooling, optim=optim,
                       why="the encoder is fixed: its outputs are computed once and cached, only the head trains")
    return replace(frozen, optim=optim, pooling=pooling, why=f"no feature cache: {why}")


def route_of(cfg: Any) -> Route:
    """The route of a ``method=finetune`` job (and of ``method=adapt``'s fine-tuning stage)."""
    from tunelab.models.cache import heads, prefix

    policy = policy_of(cfg)
    task = str(cfg.task.name)
    mtype, n_layers = _model_shape(cfg)
    if n_layers is not None:
        policy.check_depth(n_layers)
    base = Route(policy=policy, task=task, model_type=mtype, n_layers=n_layers)
    blocker = _cache_blocker(cfg, task)
    if policy.peft is not None:
        return replace(base, why=f"no cache: peft={policy.peft.name} adds trained modules inside every layer, "
                                 f"so no layer's output stays fixed")
    if policy.mode == "lpft":
        probe = route_of_probe(base, blocker, mtype)
        return replace(base, runner="lpft", cache=probe.cache, lp=probe,
                       why=f"a linear probe first ({probe.runner}: {probe.why}), then everything fine-tunes")
    if policy.mode == "all":
        probe = policy.probe
        if policy.fit == "logreg" and task == "seq_cls":
            cached = bool(cfg.trainer.feature_cache) and bool(cfg.cache_dir)
            return replace(base, runner="logreg", cache="features" if cached else "none", pooling=probe.pooling,
                           why=f"freeze.probe.fit=logreg: logistic regression on {probe.pooling}-pooled features "
                               + ("read from the feature cache" if cached else "(trainer.feature_cache=false)"))
        if policy.fit == "logreg":
            # Logistic regression fits one vector per text; a tagger (or the MLM head) predicts at
            # every token, so what trains is the model's own head at the probe's lr and epochs.
            # The plan says so (fit=head), not the fit asked for, and the degenerate-run advice
            # then names the knobs that were used.
            head = replace(policy, probe=replace(probe, fit="head", pooling="head"))
            route = route_of_probe(replace(base, policy=head), blocker, mtype)
            return replace(route, why=f"freeze.probe.fit=logreg fits one vector per text and task={task} predicts "
                                      f"at every token, so the model's own head trains instead (fit=head); {route.why}")
        return route_of_probe(base, blocker, mtype)
    k = policy.prefix_layers(n_layers) if n_layers else None
    if k is None:
        why = {"gradual": "gradual unfreezing thaws blocks during training, so no prefix stays fixed",
               "bitfit": "the biases of every layer train, so no layer's output stays fixed"}.get(
            policy.mode, "nothing is frozen, so there is nothing to cache")
        return replace(base, why=f"no prefix cache: {why}")
    if k == 0:
        return replace(base, why="no prefix cache: only the embeddings are frozen; caching their output "
                                 "would save almost nothing")
    why = blocker or prefix.unsupported(mtype, (cfg.model.get("config_overrides") or {}).get("attn_implementation"))
    if why is not None:
        return replace(base, why=f"no prefix cache: {why}")
    return replace(base, runner="prefix", cache="prefix", prefix_layers=k,
                   why=f"embeddings + {k} frozen layers run once per example; the layers above train on their cached output")


# --------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What trains in a loaded model (see the module doc). ``apply()`` makes it so."""

    route: Route
    blocks: list            # tunelab.models.freezing.Block, bottom to top
    frozen: frozenset       # names of the blocks frozen at the start
    lrs: dict               # block name -> learning rate
    trainable: frozenset    # id() of every parameter that trains at the start
    trainable_params: int
    total_params: int
    peft: Optional[dict] = None

    def apply(self) -> "Plan":
        """Set ``requires_grad`` exactly as planned (frozen blocks are put in eval mode by the module)."""
        for b in self.blocks:
            for p in b.params:
                p.requires_grad_(id(p) in self.trainable)
        return self

    @property
    def trainable_bytes(self) -> int:
        """What one task costs to store beyond the shared pretrained encoder: its trained parameters."""
        return int(sum(p.numel() * p.element_size() for b in self.blocks for p in _unique(b.params)
                       if id(p) in self.trainable))

    @property
    def gradual(self) -> bool:
        return self.route.policy.mode == "gradual"

    def thaw_order(self) -> list[tuple[str, ...]]:
        """Gradual unfreezing's order: top block first; the pooler thaws with the top layer."""
        order = [b.name for b in reversed(self.blocks) if b.name != "head"]
        if order and order[0] == "pooler" and len(order) > 1:
            return [("pooler", order[1])] + [(n,) for n in order[2:]]
        return [(n,) for n in order]

    @property
    def digest(self) -> str:
        """A short hash of what trains (checked when a checkpoint is resumed): the record without
        ``cache_why``, a sentence for the reader, so rewording it never blocks a resume."""
        return caching.digest({k: v for k, v in self.record().items() if k != "cache_why"})[:16]

    @property
    def legacy_digest(self) -> str:
        """The digest checkpoints carried before ``cache_why`` was left out (the whole record): a
        job checkpointed by an older tunelab still resumes while its sentence reads the same."""
        return caching.digest(self.record())[:16]

    def record(self) -> dict:
        """``results.json``'s ``plan``."""
        r, p = self.route, self.route.policy
        blocks = []
        for b in self.blocks:
            tot = sum(q.numel() for q in _unique(b.params))
            tr = sum(q.numel() for q in _unique(b.params) if id(q) in self.trainable)
            blocks.append({"block": b.name, "trainable": tr, "total": tot,
                           "lr": self.lrs.get(b.name) if tr else None})
        return {"rules": PLAN_RULES, "freeze": p.name, "mode": p.mode, "fit": p.fit, "runner": r.runner,
                "cache": r.cache, "cache_why": r.why, "prefix_layers": r.prefix_layers, "pooling": r.pooling,
                "optim": dict(r.optim), "peft": self.peft, "trainable_params": self.trainable_params,
                "total_params": self.total_params, "trainable_bytes": self.trainable_bytes, "blocks": blocks}

    def summary_lines(self) -> list[str]:
        """The per-block table and PEFT's one-line trainable-parameter summary."""
        lines = [f"{'block':<12} {'trainable':>12} {'total':>12}  lr"]
        for row in self.record()["blocks"]:
            lr = f"{row['lr']:.2e}" if row["trainable"] else "frozen"
            lines.append(f"{row['block']:<12} {row['trainable']:>12,} {row['total']:>12,}  {lr}")
        tr, tot = self.trainable_params, self.total_params
        lines.append(f"trainable params: {tr:,} || all params: {tot:,} || trainable%: {100 * tr / max(tot, 1):.4f}")
        return lines


def plan_for(cfg: Any, model, *, task: Optional[str] = None) -> Plan:
    """The full-forward plan of ``model`` under ``cfg``'s freeze policy and optimiser (applied): for
    a notebook, a benchmark or a test that holds a model and wants what a job would train."""
    route = Route.direct(policy_of(cfg), task or str(cfg.task.name))
    return make_plan(route, model, cfg.optim)


def fixed_record(*, runner: str, cache: str, why: str, encoder_params: int, classifier_params: int,
                 pooling: Optional[str] = None, policy: Optional[Policy] = None) -> dict:
    """``plan`` of a job whose encoder (if any) stays fixed and only a classifier is fitted:
    ``freeze=all``'s logistic-regression probe, ``method=features|sparse|zeroshot``."""
    p = policy or Policy(name="none", mode="none")
    blocks = [{"block": "classifier", "trainable": int(classifier_params), "total": int(classifier_params),
               "lr": None}]
    if encoder_params:
        blocks.insert(0, {"block": "encoder", "trainable": 0, "total": int(encoder_params), "lr": None})
    return {"rules": PLAN_RULES, "freeze": p.name, "mode": p.mode, "fit": runner, "runner": runner,
            "cache": cache, "cache_why": why, "prefix_layers": None, "pooling": pooling, "optim": {},
            "peft": None, "trainable_params": int(classifier_params),
            "total_params": int(encoder_params + classifier_params),
            # what one task keeps beside the shared encoder: its classifier, as float32
            "trainable_bytes": 4 * int(classifier_params), "blocks": blocks}


def _unique(params: Iterable) -> list:
    return list({id(p): p for p in params}.values())


def make_plan(route: Route, model, optim_cfg: Any, *, restrict_to: Optional[Iterable] = None,
              peft: Optional[dict] = None) -> Plan:
    """The plan of ``model`` under ``route`` (applied: ``requires_grad`` set as planned).

    With ``peft=...`` in the policy the PEFT modules are added to the model here
    (:func:`tunelab.models.peft.add_to_task_model`), and only they and the head train.
    ``restrict_to`` (parameters) narrows what may train further, for a method that trains only
    some of a model's parts at a time (a curriculum stage: its adapter and its heads); ``peft``
    describes the modules such a method added itself.
    """
    from tunelab.models import freezing

    policy = route.policy
    added = None
    if policy.peft is not None and peft is None:
        # The PEFT modules go in first (inside the base encoder's layers), so the blocks hold them;
        # then only they and the head may train.
        from tunelab.models import peft as peft_modules

        added, peft = peft_modules.add_to_task_model(model, policy.peft,
                                                     model_name=str(getattr(model.config, "name_or_path", "")))
    blocks = freezing.blocks_of(model)
    if added is not None:
        restrict_to = list(added) + list(blocks[-1].params)
    n_layers = sum(b.name.startswith("layer.") for b in blocks)
    freezing.check_shared_layers(blocks, policy, optim_cfg)
    frozen = policy.frozen_blocks([b.name for b in blocks], n_layers)
    allowed = None if restrict_to is None else {id(p) for p in restrict_to}
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for b in blocks if b.name not in frozen for p in b.params
                 if (allowed is None or id(p) in allowed) and policy.trains_parameter(names.get(id(p), ""), b.name)}
    if not trainable:
        raise ConfigError(f"nothing to train: freeze={policy.name} leaves no trainable parameter in "
                          f"{type(model).__name__}.")
    head = {id(p) for b in blocks if b.name == "head" for p in b.params}
    if policy.mode == "bitfit" and not trainable - head:
        raise ConfigError(f"freeze=bitfit trains the encoder's bias terms, but {type(model.base_model).__name__} "
                          f"has none (its layers are bias-free), so only the head would train: use freeze=all "
                          f"for that, or another policy.")
    everything = _unique(p for b in blocks for p in b.params)
    plan = Plan(route=route, blocks=blocks, frozen=frozenset(frozen), lrs=freezing.block_lrs(blocks, optim_cfg),
                trainable=frozenset(trainable), trainable_params=sum(p.numel() for p in everything if id(p) in trainable),
                total_params=sum(p.numel() for p in everything), peft=peft)
    return plan.apply()
