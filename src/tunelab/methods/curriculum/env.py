"""What every step of a curriculum run needs: the encoder, the model, one training, one evaluation.

``Env`` holds the run's config, stages and heads and builds the pieces the runner combines:
the original encoder (identical on every call), the multi-head model with its adapters, one
Lightning fit on one or several stages' data (``fit``), and one task's test accuracy
(``evaluate``, through ``trainer.test``). Stages train for a fixed number of epochs and keep
their final weights: no early stopping or best-checkpoint restore, the next stage continues
from where this one ended.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import DictConfig

from tunelab.methods.curriculum.stages import Stage
from tunelab.context import RunContext

log = logging.getLogger("tunelab")

STRATEGIES = ("sequential", "joint", "replay", "adapters", "lora")
# One adapter and one head per task; the base encoder stays frozen.
PER_TASK_STRATEGIES = ("adapters", "lora")


def stage_cfg(cfg: DictConfig, *, epochs: int, lr: float, validate: bool) -> DictConfig:
    """The run's config for one training: its epochs and lr, no early stopping or checkpoints,
    and a DDP that tolerates parameters without gradients (other tasks' heads and adapters)."""
    from tunelab.ops.ddp import strategy_with_unused_parameters

    c = copy.deepcopy(cfg)
    c.optim.lr = lr
    c.optim.epochs = epochs
    if cfg.strategy.get("head_lr") is not None:
        c.optim.head_lr = float(cfg.strategy.head_lr)
    c.optim.early_stopping_patience = None
    c.trainer.enable_checkpointing = False
    c.trainer.strategy = strategy_with_unused_parameters(cfg.trainer)
    if not validate:
        c.trainer.limit_val_batches = 0
    return c


@dataclass
class Env:
    cfg: DictConfig
    ctx: RunContext
    tokenizer: Any
    stages: list[Stage]
    heads: dict[str, list[str]]
    strategy: str
    logger: Any = None
    base_snapshot: Optional[list] = None
    timings: dict = field(default_factory=dict)
    _eval_trainer: Any = None

    @property
    def head_seeds(self) -> dict[str, int]:
        return {k: int(self.cfg.seed) * 1000 + i + 1 for i, k in enumerate(self.heads)}

    def build_encoder(self):
        """The original encoder, identical on every call (seeded for random-init models)."""
        import torch

        from tunelab.models import dropout
        from tunelab.models.loading import load_model

        with torch.random.fork_rng():
            torch.manual_seed(int(self.cfg.seed))
            enc, _ = load_model(self.cfg.model, "encoder", fast_dropout=dropout.wanted(self.cfg.trainer))
        return enc

    def build_model(self, stages: list[Stage], *, snapshot: bool = False):
        import torch

        from tunelab.methods.curriculum.model import MultiHeadClassifier
        from tunelab.models.loading import model_label
        from tunelab.models.peft import add_bottleneck, init_bottleneck, lora_wrap

        enc = self.build_encoder()
        name = model_label(self.cfg.model)
        if snapshot:
            self.base_snapshot = [(p, p.detach().clone()) for p in enc.parameters()]
        if self.strategy == "adapters":
            init_bottleneck(enc, stages[0].where, name)
            for s in stages:
                with torch.random.fork_rng():
                    torch.manual_seed(int(self.cfg.seed) * 1000 + 500 + s.index)
                    add_bottleneck(enc, s.adapter, int(self.cfg.strategy.reduction_factor), s.where, name)
        elif self.strategy == "lora":
            with torch.random.fork_rng():
                torch.manual_seed(int(self.cfg.seed) * 1000 + 500)
                sc = self.cfg.strategy
                enc = lora_wrap(enc, [s.adapter for s in stages], r=sc.lora_r, alpha=sc.lora_alpha,
                                dropout=sc.lora_dropout, target_modules=sc.lora_target_modules,
                                where=stages[0].where, model_name=name)
        heads = {}
        for s in stages:
            heads.setdefault(s.head, len(self.heads[s.head]))
        return MultiHeadClassifier(enc, heads, head_seeds=self.head_seeds)

    def eval_dm(self, s: Stage):
        """The stage's test split, tokenised once (a datamodule with empty train/val)."""
        if s.eval_dm is None:
            from tunelab.data.splits import Splits
            from tunelab.methods.shared.data import build_datamodule

            sp = s.splits
            dm = build_datamodule(self.cfg, self.tokenizer, data_cfg=s.data_cfg, task_cfg=self.cfg.task,
                                  splits=Splits(train=sp.train.iloc[:0], val=sp.val.iloc[:0], test=sp.test,
                                                label_names=sp.label_names))
            dm.setup("test")
            s.eval_dm = dm
        return s.eval_dm

    def eval_trainer(self):
        """The Trainer every evaluation runs on: the job's hardware, no logger.

        Under strategies that spawn or fork their processes the logits would stay in those
        processes, so there the evaluation runs here on one device (the spawned training has
        already copied its weights back)."""
        if self._eval_trainer is None:
            from tunelab.ops.ddp import FORKING_STRATEGIES
            from tunelab.training import build_trainer

            c = stage_cfg(self.cfg, epochs=1, lr=float(self.cfg.optim.lr), validate=False)
            c.trainer.limit_test_batches = 1.0  # R is accuracy on the whole test split
            if str(self.cfg.trainer.strategy).startswith(FORKING_STRATEGIES):
                c.trainer.strategy, c.trainer.devices, c.trainer.num_nodes = "auto", 1, 1
            self._eval_trainer = build_trainer(c, self.ctx.out_dir, False, monitor=None, mode="max")
        return self._eval_trainer

    def predict(self, model, s: Stage):
        """(logits, labels) of ``model`` as it is now on the stage's test split."""
        from tunelab.methods.curriculum.evaluation import collect_logits

        return collect_logits(self.eval_trainer(), model, self.eval_dm(s).test_dataloader)

    def evaluate(self, model, s: Stage, trained: bool) -> dict:
        """Task ``s``'s test scores with its own head, and its adapter once it has been trained
        (a LoRA adapter before training is the identity, so lora always uses its own)."""
        from tunelab.methods.curriculum.adapters import activate
        from tunelab.methods.curriculum.evaluation import task_scores

        adapter = None
        if self.strategy in PER_TASK_STRATEGIES and (trained or self.strategy == "lora"):
            adapter = s.adapter
        activate(model, self.strategy, s.head, adapter)
        out = task_scores(*self.predict(model, s), s.labels)
        out["head"], out["adapter"] = s.head, adapter
        return out

    def fit(self, model, parts: list[tuple[Stage, Any]], *, epochs: int, lr: float, main: Stage,
            label: str) -> dict:
        """One training run on the (possibly mixed) data of ``parts``; ``main`` is whose val split
        and data settings the run uses."""
        from tunelab.data.splits import Splits
        from tunelab.methods.curriculum.adapters import prepare_stage, stage_parameters
        from tunelab.methods.curriculum.replay import mixed_frame
        from tunelab.methods.shared.data import build_datamodule, positive_index
        from tunelab.models.modules import SequenceClassifier
        from tunelab.models.plan import Route, make_plan
        from tunelab.models.policy import policy_of
        from tunelab.training import build_trainer

        t0 = time.time()
        train, routes = mixed_frame(parts)
        validate = bool(self.cfg.curriculum.validate) and len(parts) == 1
        c = stage_cfg(self.cfg, epochs=epochs, lr=lr, validate=validate)
        sp = main.splits
        dm = build_datamodule(c, self.tokenizer, data_cfg=main.data_cfg, task_cfg=self.cfg.task,
                              splits=Splits(train=train, val=sp.val if validate else sp.val.iloc[:0],
                                            test=sp.test, label_names=sp.label_names))
        dm.setup("fit")
        model.active = main.head
        model.routes = routes
        adapter = main.adapter if self.strategy in PER_TASK_STRATEGIES else None
        prepare_stage(model, self.strategy, adapter)
        # What this stage trains: the freeze policy over the encoder, narrowed to this strategy's
        # part of it (a per-task adapter) and to the heads this stage's data routes to.
        route = Route.direct(policy_of(self.cfg), "seq_cls", why="a curriculum trains its multi-head model directly")
        peft = {"strategy": self.strategy, "adapter": adapter} if adapter else None
        plan = make_plan(route, model, c.optim, restrict_to=stage_parameters(model, self.strategy,
                                                                            {h for h, _, _ in routes}, adapter), peft=peft)
        module = SequenceClassifier(model, plan=plan, num_labels=len(main.labels),
                                    positive_index=positive_index(main.labels, main.data_cfg),
                                    optim_cfg=c.optim, label_names=main.labels, log=log.info)
        trainable, total = plan.trainable_params, plan.total_params
        log.info(f"[tunelab] {label}: training {len(train):,} examples for {epochs} epoch(s) at lr {lr:g}; "
                 f"trainable params {trainable:,} of {total:,}")
        trainer = build_trainer(c, self.ctx.out_dir, self.logger, monitor=None, mode="max", max_epochs=epochs)
        try:
            trainer.fit(module, datamodule=dm)
        finally:
            model.routes = None
        return {"trainable_params": trainable, "total_params": total, "train_examples": len(train),
                "steps": int(trainer.global_step), "seconds": round(time.time() - t0, 2), "lr": lr,
                "epochs": epochs, "plan": plan.record()}
