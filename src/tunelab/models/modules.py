"""LightningModules: one base owning optimisation and freezing, one subclass per task.

Lightning owns the loop; these classes only say what a step computes and which metric comes
out. Each evaluation pass collects the predictions (gathered across DDP ranks) and scores them
once with :mod:`tunelab.metrics`, the scorer every other method uses too; losses are averaged
with torchmetrics' ``MeanMetric`` (reduced across ranks by torchmetrics itself).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import lightning as L
import torch
from torchmetrics import MeanMetric

from tunelab import metrics, predictions
from tunelab.models import freezing
from tunelab.models.kept_val import KeptValidation
from tunelab.errors import TunelabError


class EncoderModule(L.LightningModule):
    """Base: AdamW with linear warmup/decay, layer-wise lr decay, freeze policies."""

    kind = "encoder"
    # The split a test pass scores and logs under: "test", or "test_ood" while tunelab.training
    # runs the out-of-domain pass on the same weights (tunelab.data.ood).
    test_split = "test"

    def __init__(self, model, *, plan, optim_cfg: Any, label_names: Optional[list[str]] = None, log=print):
        """``plan`` (tunelab.models.plan.make_plan) says what trains and at which rate; it has
        been applied to ``model`` already, and this module only follows it."""
        super().__init__()
        self.model = model
        self.plan, self.optim_cfg = plan, optim_cfg
        self.label_names = label_names
        self._log_fn = log
        self.blocks = plan.blocks
        self.unfreezer = None
        self._total_steps: Optional[float] = None
        self._thawed_at_checkpoint = 0  # gradual unfreezing: groups thawed when the resumed checkpoint was saved
        if plan.gradual:
            self.unfreezer = freezing.GradualUnfreezer(plan, optim_cfg, freezing.named_ids(model))
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
        return self.plan.summary_lines()

    def param_counts(self) -> dict[str, int]:
        """Parameters that train now (after a run: including the blocks gradual unfreezing thawed)."""
        tr, tot = freezing.count(self.model.parameters())
        return {"trainable": tr, "total": tot}

    def _thaw(self) -> None:
        if self.unfreezer is None or self.trainer is None:
            return
        opt = self.optimizers(use_pl_optimizer=False)
        sched = self.lr_schedulers()
        newly = self.unfreezer.step(opt, sched, epoch=self.current_epoch, global_step=self.global_step,
                                    total_steps=self._total_steps)
        if newly:
            self._log_fn(f"[tunelab] gradual unfreezing: now training {', '.join(newly)} "
                         f"(epoch {self.current_epoch}, step {self.global_step})")

    def on_train_start(self) -> None:
        # Lightning 2.x never calls .train() and from_pretrained returns an eval() model: without
        # this the head's dropout is off (pretrained) or frozen blocks run dropout (random init).
        self.train()
        # The run's length in optimiser steps, for freeze.unfreeze_every=stage (Lightning works it
        # out from the epochs, max_steps, the loader and gradient accumulation; once, not per batch).
        self._total_steps = self.trainer.estimated_stepping_batches if self.unfreezer is not None else None

    def on_train_epoch_start(self) -> None:
        self._thaw()

    def on_save_checkpoint(self, checkpoint) -> None:
        if self.unfreezer is not None:
            checkpoint["tunelab_thawed"] = self.unfreezer.thawed

    def on_load_checkpoint(self, checkpoint) -> None:
        # Lightning loads this before configure_optimizers, which then rebuilds the thawed groups.
        self._thawed_at_checkpoint = int(checkpoint.get("tunelab_thawed", 0))

    def on_train_batch_start(self, batch, batch_idx) -> None:
        if self.unfreezer is not None and self.unfreezer.per_step:
            self._thaw()

    # -- optimisation -------------------------------------------------------------------
    def configure_optimizers(self):
        from transformers import get_linear_schedule_with_warmup

        groups = freezing.param_groups(self.blocks, self.optim_cfg, named=freezing.named_ids(self.model))
        if not groups:
            raise TunelabError("nothing to train: the plan froze every parameter.")
        # The fused AdamW kernel: one pass over each parameter's memory instead of torch's default
        # per-tensor loop of a dozen element-wise ops on CPU. The same update up to float rounding;
        # measured on the packaged MiniLM (2-core CPU): 61 -> 6 ms per step for all 22.7 M
        # parameters, 9 -> 1 ms for freeze=last2's 3.7 M; training +8 % samples/s in fp32, +25 % in bf16.
        # Not under an fp16 loss scaler: its unscale-then-clip needs the unfused step.
        fused = self._loss_scaler() is None and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point
                                       for g in groups for p in g["params"])
        opt = torch.optim.AdamW(groups, lr=self.optim_cfg.lr, eps=self.optim_cfg.adam_eps, fused=fused or None)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.optim_cfg.warmup_ratio * total)
        sched = get_linear_schedule_with_warmup(opt, warmup, total)
        if self.unfreezer is not None and self._thawed_at_checkpoint:
            # Resuming: the checkpoint's optimizer and scheduler hold the groups thawed before it
            # was saved (their states, rates and lambdas are then loaded over these).
            self.unfreezer.thaw_to(self._thawed_at_checkpoint, opt, sched)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _loss_scaler(self):
        """The fp16 loss scaler of the trainer's precision plugin (None: none, or no trainer yet)."""
        return getattr(self.trainer.precision_plugin, "scaler", None) if self._trainer is not None else None

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Lightning's mixed-precision plugin refuses to clip for a fused optimiser (it could be
        # unscaling fp16 gradients inside its step). bf16 autocast has no scaler, so the gradients
        # are true-scale and are clipped here exactly as Lightning would clip them.
        if gradient_clip_val and getattr(optimizer, "_step_supports_amp_scaling", False) and self._loss_scaler() is None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            if gradient_clip_algorithm == "value":
                torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
            else:
                torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)
            return
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

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
        self._eval_step(batch, self.test_split)

    def on_test_epoch_end(self):
        self._eval_epoch_end(self.test_split)

    def _test_index(self, n_local: int, split: str = "test"):
        """Split row of each example this rank scored, in the order it scored them (the
        evaluation sampler is deterministic, so iterating it again replays the pass)."""
        stage = "val" if split == "val" else "test"  # test_ood is a test pass too
        loader = getattr(self._trainer, f"{stage}_dataloaders", None) if self._trainer is not None else None
        if isinstance(loader, (list, tuple)):
            loader = loader[0] if loader else None
        return predictions.eval_order(loader)[:n_local] if loader is not None else range(n_local)


class SequenceClassifier(EncoderModule):
    """Binary or multi-class classification; F1 is the positive class's for binary tasks."""

    kind = "seq_cls"

    def __init__(self, model, *, num_labels: int, positive_index: int = 1, **kw):
        super().__init__(model, **kw)
        self.num_labels, self.positive_index = num_labels, positive_index
        self._preds: dict[str, tuple[list, list, list]] = {}
        for split in ("val", "test", "test_ood"):
            setattr(self, f"{split}_loss", MeanMetric())
        # Validation predictions of the tested weights: temperature scaling (tunelab.calibration).
        self.kept_val = KeptValidation()

    def on_train_start(self) -> None:
        super().on_train_start()
        self.kept_val.weights_moved()

    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)
        self.kept_val.save(checkpoint, self.global_step)

    def on_load_checkpoint(self, checkpoint) -> None:
        super().on_load_checkpoint(checkpoint)
        self.kept_val.load(checkpoint)

    def _eval_forward(self, batch):
        """Model outputs for an evaluation batch (the cached-feature path runs only the head)."""
        return self.model(**batch)

    def _eval_step(self, batch, split: str):
        out = self._eval_forward(batch)
        preds = out.logits.argmax(-1)
        labels = batch["labels"]
        y_true, y_pred, probs = self._preds.setdefault(split, ([], [], []))
        y_true.append(labels.detach().cpu())
        y_pred.append(preds.detach().cpu())
        # kept for predictions.npz (tunelab.predictions) and calibration (val and test)
        probs.append(out.logits.detach().float().softmax(-1).cpu())
        getattr(self, f"{split}_loss").update(out.loss, weight=labels.numel())
        return preds

    def _eval_epoch_end(self, split: str):
        y_true, y_pred, probs = self._preds.pop(split, ([], [], []))
        n_local = sum(len(t) for t in y_true)
        y_true, y_pred = _gathered(y_true, y_pred)
        scores = metrics.classification_scores(y_true, y_pred, self.num_labels, self.positive_index,
                                               prefix=split) if len(y_true) else {}
        self.log_dict({**scores, f"{split}/loss": getattr(self, f"{split}_loss").compute()},
                      prog_bar=(split == "val"), sync_dist=False)  # already gathered across ranks
        getattr(self, f"{split}_loss").reset()
        names = self.label_names or [str(i) for i in range(self.num_labels)]
        index, probs = gathered_lists(list(self._test_index(n_local, split)), [p for b in probs for p in b])
        preds = predictions.for_classes(index, y_true, y_pred, names, torch.stack(probs).numpy() if probs else None)
        if split == "val":
            self.kept_val.add(self.global_step, preds)
        elif split == "test":
            self.test_outputs["pred_class_counts"] = metrics.predicted_counts(y_pred, names)
            self.test_outputs["predictions"] = preds.with_split("val", self.kept_val.of_tested(self.global_step))
        elif self.test_outputs.get("predictions") is not None:  # test_ood: after the test pass, same weights
            self.test_outputs["predictions"].with_split(split, preds)


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
        y_true, y_pred = self._seqs.pop(split, ([], []))
        index = self._test_index(len(y_true)) if split == "test" else None
        y_true, y_pred = gathered_lists(y_true, y_pred)
        if split == "test":
            index, _ = gathered_lists(list(index), [])
            self.test_outputs["predictions"] = predictions.for_tags(index, y_true, y_pred, self.label_names)
        self.log_dict({**metrics.entity_scores(y_true, y_pred, prefix=split),
                       f"{split}/loss": getattr(self, f"{split}_loss").compute()}, prog_bar=(split == "val"))
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


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def gathered_lists(y_true: list, y_pred: list) -> tuple[list, list]:
    """Every rank's sequences, in rank order (no-op without DDP)."""
    if not _distributed():
        return y_true, y_pred
    parts = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, (y_true, y_pred))
    return [s for t, _ in parts for s in t], [s for _, p in parts for s in p]


def _gathered(y_true: list, y_pred: list):
    """One pass's labels and predictions as numpy arrays, from every rank under DDP."""
    y_true, y_pred = gathered_lists(y_true, y_pred)
    cat = (lambda xs: torch.cat(xs).numpy()) if y_true else (lambda xs: [])
    return cat(y_true), cat(y_pred)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
