"""The masked-LM stage: data, head warm-up, adaptation, and held-out perplexity.

Everything runs through the Lightning Trainer (:func:`tunelab.training.build_trainer`) and the
task module :class:`tunelab.models.modules.MaskedLM` that ``task=mlm`` fine-tuning uses too, so the MLM
loss is computed and averaged one way everywhere: the mean loss over masked tokens, weighted by
their number. The stage trains the whole model with its own optimiser settings (``adapt.lr``,
``adapt.epochs``, ...); ``freeze`` and ``optim`` belong to stage 2.

*Held-out perplexity* is exp(that mean) on the held-out texts, measured with the *same* masks
every time: the evaluation collator is seeded and its loader restarts the mask generator at each
pass (:class:`tunelab.data.datamodule.EvalDataLoader`), so "before" and "after" differ only by
the weights.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Optional

import lightning as L
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from tunelab.errors import DataError
from tunelab.models.modules import MaskedLM, perplexity
from tunelab.training import build_trainer

log = logging.getLogger("tunelab")

# The options of adapt.* that define the masking, recorded with the results.
MASKING_KEYS = ("mlm_probability", "mask_replace_prob", "random_replace_prob", "whole_word_mask")


def mlm_task_cfg(a: DictConfig) -> DictConfig:
    """A ``task=mlm`` node with the masking recipe of ``adapt`` (ranges checked by the schema)."""
    return OmegaConf.create({"name": "mlm", "label_all_tokens": False, **{k: a[k] for k in MASKING_KEYS},
                             "monitor": "val/loss", "monitor_mode": "min"})


def mlm_datamodule(cfg: DictConfig, tokenizer, train: list[str], heldout: list[str]):
    """A datamodule whose train split is ``train`` and whose val split (seeded masks) is
    ``heldout``; tokenised and ready."""
    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits

    def frame(texts):
        return pd.DataFrame({"text": list(texts), "label": [None] * len(texts)})

    # Only train and val are tokenised (an empty test split is skipped).
    splits = Splits(train=frame(train), val=frame(heldout), test=frame([]), label_names=None)
    dm = TextDataModule(cfg.data, mlm_task_cfg(cfg.adapt), tokenizer, max_length=cfg.model.max_length,
                        batch_size=int(cfg.adapt.batch_size or cfg.optim.batch_size),
                        eval_batch_size=cfg.optim.eval_batch_size, seed=cfg.seed, cache_dir=cfg.cache_dir,
                        splits=splits)
    dm.setup("fit")
    return dm


def _stage_cfg(cfg: DictConfig, optim: dict, trainer: Optional[dict] = None) -> DictConfig:
    """A copy of ``cfg`` with some ``optim``/``trainer`` keys replaced (one stage's settings)."""
    c = cfg.copy()
    with open_dict(c):
        for k, v in optim.items():
            c.optim[k] = v
        for k, v in (trainer or {}).items():
            c.trainer[k] = v
    return c


def _module(model, c: DictConfig, mode: str) -> "MaskedLM":
    """The MLM module of one stage, under the plan of its own policy (``none``: the whole model
    trains or evaluates; ``all``: only the MLM head trains, the head warm-up): the adaptation
    stage's freezing is fixed by what the stage is, not by ``freeze``, which is stage 2's."""
    from tunelab.models.plan import Route, make_plan
    from tunelab.models.policy import Policy

    route = Route.direct(Policy(name=mode, mode=mode), "mlm", why="masked-LM adaptation stage")
    return MaskedLM(model, plan=make_plan(route, model, c.optim), optim_cfg=c.optim, log=log.info)


def heldout_perplexity(cfg: DictConfig, model, loader, out_dir: Path) -> float:
    """MLM perplexity of ``model`` on ``loader`` (a held-out loader with fixed masks):
    ``trainer.validate`` of :class:`MaskedLM`, in eval mode, without gradients.

    Full precision and every batch, whatever ``trainer.precision``/``limit_val_batches`` say:
    these numbers are compared across the stages and across runs (a bf16 forward pass moves
    them by more than adaptation on a small corpus does).
    """
    c = _stage_cfg(cfg, {"early_stopping_patience": None},
                   {"enable_checkpointing": False, "precision": "32-true", "limit_val_batches": 1.0,
                    "enable_progress_bar": False})
    # freeze=none: the module only evaluates, nothing is frozen or trained here.
    module = _module(model, c, "none")
    trainer = build_trainer(c, out_dir, False, monitor=None, mode="min")
    trainer.validate(module, dataloaders=loader, verbose=False)
    loss = float(trainer.callback_metrics.get("val/loss", math.nan))
    if not math.isfinite(loss) and not any(bool((b["labels"] != -100).any()) for b in loader):
        raise DataError("the held-out MLM texts gave no masked tokens; add texts or raise adapt.heldout_size.")
    return perplexity(loss)


def head_warmup(cfg: DictConfig, model, dm, out_dir: Path) -> int:
    """Train only the MLM head for ``adapt.head_warmup_steps`` steps; returns steps run."""
    a = cfg.adapt
    steps = int(a.head_warmup_steps)
    c = _stage_cfg(cfg, {"lr": float(a.head_warmup_lr), "head_lr": None, "max_steps": steps,
                         "epochs": 10 ** 6, "early_stopping_patience": None, "warmup_ratio": 0.1,
                         "layer_decay": 1.0, "weight_decay": 0.0, "val_check_interval": 1.0},
                   {"enable_checkpointing": False, "limit_val_batches": 0})
    module = _module(model, c, "all")
    trainer = build_trainer(c, out_dir, False, monitor=None, mode="min", max_epochs=10 ** 6)
    # from_pretrained returns eval mode and Lightning keeps submodule modes: switch dropout on
    # (EncoderModule.train keeps the frozen blocks in eval).
    module.train()
    trainer.fit(module, datamodule=dm)
    return int(trainer.global_step)


class KeepBest(L.Callback):
    """Keeps the weights of the epoch with the lowest held-out MLM loss in memory (a copy on
    CPU): no multi-hundred-MB checkpoint is written just to restore them."""

    def __init__(self):
        self.best, self.state, self.epoch = math.inf, None, None

    def on_validation_end(self, trainer, pl_module):
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and float(loss) < self.best:
            self.best, self.epoch = float(loss), trainer.current_epoch
            self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}


def adapt_mlm(cfg: DictConfig, model, dm, out_dir: Path) -> dict:
    """Full-model MLM training with early stopping on held-out loss; keeps the best weights."""
    a = cfg.adapt
    c = _stage_cfg(cfg, {"lr": float(a.lr), "head_lr": None, "epochs": int(a.epochs),
                         "max_steps": int(a.max_steps), "warmup_ratio": float(a.warmup_ratio),
                         "early_stopping_patience": a.early_stopping_patience or None,
                         "val_check_interval": float(a.val_check_interval)},
                   {"enable_checkpointing": False})
    module = _module(model, c, "none")
    keep = KeepBest()
    trainer = build_trainer(c, out_dir, False, monitor="val/loss", mode="min", extra_callbacks=[keep])
    module.train()
    trainer.fit(module, datamodule=dm)
    if keep.state is not None:
        module.model.load_state_dict(keep.state)
    module.cpu()
    es = trainer.early_stopping_callback
    return {"steps": int(trainer.global_step), "epochs_run": int(trainer.current_epoch),
            "best_val_loss": keep.best if keep.state is not None else None, "best_epoch": keep.epoch,
            "early_stopped": bool(es is not None and es.stopped_epoch)}
