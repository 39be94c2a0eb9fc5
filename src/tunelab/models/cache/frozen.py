"""A head trained on cached outputs of a frozen encoder (the plan's ``features`` runner).

With the whole encoder frozen and kept in eval mode, what a ``BertForSequenceClassification``
hands its head (the pooler's output on [CLS]) is a deterministic function of the text. So a
sweep of ten seeds need not run the encoder thirty times per example: :func:`encode_splits`
computes that output once per (model, data split, max length) through
:mod:`tunelab.models.cache.features` (disk cache under ``<cache_dir>/features``) and
:class:`FrozenFeatureClassifier` trains the head alone — the HF model's own dropout + classifier
modules and loss (:mod:`.heads`), initialised exactly as in the full forward pass for the same
seed — through Lightning on the cached tensors (:class:`FeatureDataModule`).

Equivalence with the full forward pass (tested):
  * the model is loaded the same way and at the same point of the seeded RNG stream, so the
    head starts from the same weights (and ``random_init`` encoders get the same weights);
  * batches come from the same ``LengthGroupedBatchSampler`` over the same lengths and seed,
    so every step sees the same examples in the same order, and the head's dropout draws the
    same masks;
  * optimiser groups, learning rates (the plan's), schedule, clipping, early stopping,
    checkpoint choice, metrics and results.json fields are those of the full path (same module
    class).
Only float rounding differs (the encoder ran on differently padded batches), ~1e-6.

Checkpoints hold the head only (the frozen encoder is rebuilt from its source), so they are
small and fast to write. Whether this route is taken is the plan's decision
(:func:`tunelab.models.plan.route_of`, with :func:`.heads.unsupported`).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig

from tunelab.models.cache.heads import base_of, head_parts, task_loss
from tunelab.models.modules import SequenceClassifier

log = logging.getLogger("tunelab")

class _Out:
    __slots__ = ("loss", "logits")

    def __init__(self, loss, logits):
        self.loss, self.logits = loss, logits


class FrozenFeatureClassifier(SequenceClassifier):
    """SequenceClassifier whose steps start from cached encoder features."""

    def __init__(self, model, *, head_fn, **kw):
        super().__init__(model, **kw)
        self._head_fn = head_fn
        # Checkpoints carry the trainable head only; the frozen encoder is rebuilt.
        self.strict_loading = False

    def _head(self, batch) -> _Out:
        logits = self._head_fn(batch["features"])
        return _Out(task_loss(self.model, logits, batch["labels"]), logits)

    def training_step(self, batch, batch_idx):
        out = self._head(batch)
        self._check_loss(out.loss)
        bs = batch["features"].shape[0]
        self.log("train/loss", out.loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        return out.loss

    def _eval_forward(self, batch):
        return self._head(batch)

    def on_save_checkpoint(self, checkpoint) -> None:
        super().on_save_checkpoint(checkpoint)  # the kept validation passes (calibration) too
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        sd = checkpoint.get("state_dict", {})
        for k in [k for k in sd if k in frozen]:
            del sd[k]


# --------------------------------------------------------------------------- the data


class _Rows(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):  # pragma: no cover - batches are fetched whole
        return self.x[i], self.y[i]

    def __getitems__(self, idx):
        return idx

class FeatureDataModule(L.LightningDataModule):
    """Batches of cached features, formed exactly as TextDataModule forms token batches."""

    def __init__(self, dm, features: dict, labels: dict, pin_memory: bool = False):
        super().__init__()
        self.dm = dm
        self.data = {s: _Rows(torch.from_numpy(np.require(features[s], np.float32, ["C", "W"])),
                              torch.tensor(np.asarray(labels[s]), dtype=torch.long))
                     for s in features}
        self.pin_memory = pin_memory

    def _collate(self, split):
        rows = self.data[split]

        def collate(idx):
            ix = torch.as_tensor(idx, dtype=torch.long)
            return {"features": rows.x.index_select(0, ix), "labels": rows.y.index_select(0, ix)}
        return collate

    def _loader(self, split: str, train: bool):
        # The token loader of the normal path, with its batch sampler, generator and class
        # (resumable for training) kept as they are: only the rows become cached features.
        dm = self.dm
        base = dm._loader(split, train)
        kw = dict(batch_sampler=base.batch_sampler, collate_fn=self._collate(split),
                  generator=base.generator, num_workers=0, pin_memory=self.pin_memory)
        if hasattr(base, "_consumed_fn"):
            kw["consumed_fn"] = self._batches_trained
        return type(base)(self.data[split], **kw)

    def _batches_trained(self):
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False) if "val" in self.data else []

    def test_dataloader(self):
        return self._loader("test", False)

    def ood_dataloader(self):
        """The out-of-domain test split's cached rows, batched as the token loader batches them."""
        return self._loader("test_ood", False) if "test_ood" in self.data else None


# --------------------------------------------------------------------------- the runner


def feature_device(cfg: DictConfig) -> str:
    """Where the frozen encoder runs to fill a cache: the GPU when the run trains on one."""
    acc = str(cfg.trainer.get("accelerator", "cpu"))
    if acc in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def encode_splits(cfg: DictConfig, model, tokenizer, splits, report, *, seed: int, batch_size: int = 128,
                  pooling: Optional[str] = None) -> tuple[dict, dict, float]:
    """Features of every non-empty split (cached); returns (features, hits, seconds).

    ``pooling`` None: what the HF head reads (BERT's pooler, DistilBERT's [CLS]).
    """
    from tunelab.models.cache.features import cached_features_with_info

    pooling = pooling or head_parts(model)[0]
    base = base_of(model)
    # Which weights the features depend on besides the source: drawn at random (random_init,
    # or base tensors the checkpoint lacked) -> they depend on the seed and the load order.
    # (The head's tensors are missing from every encoder checkpoint; they are not the features'.)
    base_missing = [k for k in (report.missing if report else []) if k.startswith(model.base_model_prefix + ".")]
    random_init = bool(cfg.model.random_init)
    seed_dependent = random_init or bool(base_missing)
    extra = {"kind": "seq_cls-base", "num_labels": int(model.config.num_labels),
             "dropout": cfg.model.dropout} if seed_dependent else {"kind": "seq_cls-base"}
    device = feature_device(cfg)
    t0 = time.time()
    feats, hits = {}, {}
    moved = False
    for name in splits.names:
        df = getattr(splits, name)
        if not len(df):
            continue
        texts = df["text"].astype(str).tolist()
        if device != "cpu" and not moved:
            base.to(device)
            moved = True
        arr, hit = cached_features_with_info(
            cfg.model, texts, pooling=pooling, max_length=cfg.model.max_length, cache_dir=cfg.cache_dir,
            batch_size=batch_size, seed=seed, encoder=model, tokenizer=tokenizer,
            base=_OnDevice(base, device), seed_dependent=seed_dependent, extra_key=extra)
        feats[name], hits[name] = arr, hit
    if moved:
        base.to("cpu")
        torch.cuda.empty_cache()
    return feats, hits, time.time() - t0


class _OnDevice:
    """Calls ``module`` with the batch moved to ``device`` (features come back on the CPU)."""

    def __init__(self, module, device: str):
        self.module, self.device = module, device

    @property
    def training(self):
        return self.module.training

    def eval(self):
        self.module.eval()
        return self

    def train(self, mode: bool = True):
        self.module.train(mode)
        return self

    def __call__(self, **batch):
        if self.device != "cpu":
            batch = {k: (v.to(self.device, non_blocking=True) if hasattr(v, "to") else v) for k, v in batch.items()}
        return self.module(**batch)
