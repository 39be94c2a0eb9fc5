"""LightningModules: one base owning optimisation and freezing, one subclass per task.

Lightning owns the loop; these classes only say what a step computes and which metric comes
out. Metrics are torchmetrics objects (reduced across DDP ranks by torchmetrics itself), except
entity F1, which seqeval computes on the gathered tag sequences.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import lightning as L
import torch
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from tunelab import freezing
from tunelab.errors import TunelabError


class EncoderModule(L.LightningModule):
    """Base: AdamW with linear warmup/decay, layer-wise lr decay, freeze policies."""

    kind = "encoder"

    def __init__(self, model, *, optim_cfg: Any, freeze_cfg: Any, label_names: Optional[list[str]] = None,
                 log=print):
        super().__init__()
        self.model = model
        self.optim_cfg, self.freeze_cfg = optim_cfg, freeze_cfg
        self.label_names = label_names
        self._log_fn = log
        self.blocks = freezing.blocks_of(model)
        freezing.apply_freeze(self.blocks, freezing.frozen_block_names(self.blocks, freeze_cfg))
        self.unfreezer = None
        if freeze_cfg.mode == "gradual":
            self.unfreezer = freezing.GradualUnfreezer(self.blocks, optim_cfg, freeze_cfg,
                                                       freezing.named_ids(model))
        self.test_outputs: dict[str, Any] = {}
        # from_pretrained returns a model in eval mode, and Lightning >= 2.5 keeps the mode it
        # finds at fit start: without this the whole model would train with dropout off.
        # (Our train() override then puts the frozen blocks back into eval mode.)
        self.train()

    # -- freezing -----------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if mode and hasattr(self, "blocks"):
            freezing.keep_frozen_in_eval(self.blocks)
        return self

    def param_summary(self) -> list[str]:
        return freezing.summary_lines(self.model, self.blocks, self.optim_cfg)

    def param_counts(self) -> dict[str, int]:
        tr, tot = freezing.count(self.model.parameters())
        return {"trainable": tr, "total": tot}

    def _thaw(self) -> None:
        if self.unfreezer is None or self.trainer is None:
            return
        opt = self.optimizers(use_pl_optimizer=False)
        sched = self.lr_schedulers()
        newly = self.unfreezer.step(opt, sched, epoch=self.current_epoch, global_step=self.global_step)
        if newly:
            self._log_fn(f"[tunelab] gradual unfreezing: now training {', '.join(newly)} "
                         f"(epoch {self.current_epoch}, step {self.global_step})")

    def on_train_start(self) -> None:
        # Lightning 2.x never calls .train() and from_pretrained returns an eval() model: without
        # this the head's dropout is off (pretrained) or frozen blocks run dropout (random init).
        self.train()

    def on_train_epoch_start(self) -> None:
        self._thaw()

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self.unfreezer is not None and self.freeze_cfg.unfreeze_every == "steps":
            self._thaw()

    # -- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        groups = freezing.param_groups(self.blocks, self.optim_cfg, named=freezing.named_ids(self.model))
        if not groups:
            raise TunelabError("nothing to train: the freeze policy froze every parameter.")
        opt = torch.optim.AdamW(groups, lr=self.optim_cfg.lr, eps=self.optim_cfg.adam_eps)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.optim_cfg.warmup_ratio * total)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- steps ----------------------------------------------------------------------------
    def forward(self, **batch):
        return self.model(**batch)

    def _check_loss(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step}: lower "
                f"optim.lr (now {self.optim_cfg.lr}) or check the data; the run was stopped."
            )

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self._check_loss(out.loss)
        bs = batch["input_ids"].shape[0]
        self.log("train/loss", out.loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        return out.loss

    # Evaluation: each task implements _eval_step(batch, split) and _eval_epoch_end(split).
    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")


class SequenceClassifier(EncoderModule):
    """Binary or multi-class classification; F1 is the positive class's for binary tasks."""

    kind = "seq_cls"

    def __init__(self, model, *, num_labels: int, positive_index: int = 1, **kw):
        super().__init__(model, **kw)
        self.num_labels, self.positive_index = num_labels, positive_index
        for split in ("val", "test"):
            setattr(self, f"{split}_acc", MulticlassAccuracy(num_labels, average="micro"))
            setattr(self, f"{split}_f1_macro", MulticlassF1Score(num_labels, average="macro"))
            # Per-class F1; for binary tasks the positive class's entry is "f1".
            setattr(self, f"{split}_f1_each", MulticlassF1Score(num_labels, average="none"))
            setattr(self, f"{split}_loss", MeanMetric())
        self.register_buffer("test_pred_counts", torch.zeros(num_labels, dtype=torch.long), persistent=False)

    def _eval_forward(self, batch):
        """Model outputs for an evaluation batch (the cached-feature path runs only the head)."""
        return self.model(**batch)

    def _eval_step(self, batch, split: str):
        out = self._eval_forward(batch)
        preds = out.logits.argmax(-1)
        labels = batch["labels"]
        getattr(self, f"{split}_acc").update(preds, labels)
        getattr(self, f"{split}_f1_macro").update(preds, labels)
        getattr(self, f"{split}_f1_each").update(preds, labels)
        getattr(self, f"{split}_loss").update(out.loss, weight=labels.numel())
        if split == "test":
            self.test_pred_counts += torch.bincount(preds, minlength=self.num_labels)
        return preds

    def _eval_epoch_end(self, split: str):
        each = getattr(self, f"{split}_f1_each").compute()
        f1 = each[self.positive_index] if self.num_labels == 2 else getattr(self, f"{split}_f1_macro").compute()
        self.log_dict({
            f"{split}/acc": getattr(self, f"{split}_acc").compute(),
            f"{split}/f1": f1,
            f"{split}/f1_macro": getattr(self, f"{split}_f1_macro").compute(),
            f"{split}/loss": getattr(self, f"{split}_loss").compute(),
        }, prog_bar=(split == "val"), sync_dist=False)  # torchmetrics already reduced across ranks
        for m in ("acc", "f1_macro", "f1_each", "loss"):
            getattr(self, f"{split}_{m}").reset()

    def on_test_epoch_start(self):
        self.test_pred_counts.zero_()

    def on_test_epoch_end(self):
        counts = self.test_pred_counts.clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(counts)
        names = self.label_names or [str(i) for i in range(self.num_labels)]
        self.test_outputs["pred_class_counts"] = {names[i]: int(c) for i, c in enumerate(counts.tolist())}
        self._eval_epoch_end("test")


class TokenClassifier(EncoderModule):
    """NER: loss over labelled sub-tokens; entity-level precision/recall/F1 from seqeval."""

    kind = "token_cls"

    def __init__(self, model, *, num_labels: int, **kw):
        super().__init__(model, **kw)
        self.num_labels = num_labels
        self._seqs: dict[str, tuple[list, list]] = {}
        for split in ("val", "test"):
            setattr(self, f"{split}_loss", MeanMetric())

    def _eval_step(self, batch, split: str):
        out = self.model(**batch)
        labels = batch["labels"]
        getattr(self, f"{split}_loss").update(out.loss, weight=(labels != -100).sum())
        preds = out.logits.argmax(-1)
        y_true, y_pred = self._seqs.setdefault(split, ([], []))
        names = self.label_names
        for p_row, l_row in zip(preds.tolist(), labels.tolist()):
            keep = [(names[p], names[t]) for p, t in zip(p_row, l_row) if t != -100]
            y_pred.append([p for p, _ in keep])
            y_true.append([t for _, t in keep])

    def _eval_epoch_end(self, split: str):
        from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

        y_true, y_pred = self._seqs.pop(split, ([], []))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (y_true, y_pred))
            y_true = [s for t, _ in gathered for s in t]
            y_pred = [s for _, p in gathered for s in p]
        kw = dict(zero_division=0)
        self.log_dict({
            f"{split}/f1": float(f1_score(y_true, y_pred, **kw)),
            f"{split}/precision": float(precision_score(y_true, y_pred, **kw)),
            f"{split}/recall": float(recall_score(y_true, y_pred, **kw)),
            f"{split}/f1_macro": float(f1_score(y_true, y_pred, average="macro", **kw)),
            f"{split}/acc": float(accuracy_score(y_true, y_pred)),
            f"{split}/loss": getattr(self, f"{split}_loss").compute(),
        }, prog_bar=(split == "val"))
        getattr(self, f"{split}_loss").reset()


class MaskedLM(EncoderModule):
    """Masked-LM: loss averaged over masked tokens; perplexity = exp(that average)."""

    kind = "mlm"

    def __init__(self, model, **kw):
        super().__init__(model, **kw)
        for split in ("val", "test"):
            setattr(self, f"{split}_loss", MeanMetric())

    def _batch(self, batch):
        batch = dict(batch)
        batch.pop("special_tokens_mask", None)
        return batch

    def training_step(self, batch, batch_idx):
        return super().training_step(self._batch(batch), batch_idx)

    def _eval_step(self, batch, split: str):
        batch = self._batch(batch)
        n = (batch["labels"] != -100).sum()
        if n == 0:
            return
        out = self.model(**batch)
        getattr(self, f"{split}_loss").update(out.loss, weight=n)

    def _eval_epoch_end(self, split: str):
        loss = getattr(self, f"{split}_loss").compute()
        self.log_dict({f"{split}/loss": loss, f"{split}/perplexity": torch.exp(loss.clamp(max=50))},
                      prog_bar=(split == "val"))
        getattr(self, f"{split}_loss").reset()


TASK_MODULES = {"seq_cls": SequenceClassifier, "token_cls": TokenClassifier, "mlm": MaskedLM}
TASK_MONITOR = {"seq_cls": ("val/f1_macro", "max"), "token_cls": ("val/f1", "max"), "mlm": ("val/loss", "min")}


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
