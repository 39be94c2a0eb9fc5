"""``method=finetune freeze=all``, cached: encode once, then every seed trains only the head.

With the whole encoder frozen and kept in eval mode, what a ``BertForSequenceClassification``
hands its head (the pooler's output on [CLS]) is a deterministic function of the text. So a
sweep of ten seeds need not run the encoder thirty times per example: this runner computes
that output once per (model, data split, max length) through :mod:`tunelab.models.features` (disk
cache under ``<cache_dir>/features``) and trains the head alone (the HF model's own dropout +
classifier modules, initialised exactly as in the normal path for the same seed) through
Lightning on the cached tensors.

``tunelab.methods.finetune.run`` takes this branch (and logs it) when :func:`why_not` finds no
reason against it. Equivalence with the normal path (``run_encoder``), which a test checks:
  * the model is loaded the same way and at the same point of the seeded RNG stream, so the
    head starts from the same weights (and ``random_init`` encoders get the same weights);
  * batches come from the same ``LengthGroupedBatchSampler`` over the same lengths and seed,
    so every step sees the same examples in the same order, and the head's dropout draws the
    same masks;
  * optimiser groups, learning rates, schedule, clipping, early stopping, checkpoint choice,
    metrics and results.json fields are those of the normal path (same module class).
Only float rounding differs (the encoder ran on differently padded batches), ~1e-6.

Checkpoints hold the head only (the frozen encoder is rebuilt from its source), so they are
small and fast to write. Runs that this path does not cover (other heads, augmentation, resuming
from a checkpoint) take the normal path, saying why. Switch it off with ``trainer.feature_cache=false``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from tunelab.methods.finetune import encoder_record, load_data, positive_index
from tunelab.models.modules import SequenceClassifier
from tunelab.seeds import init_seed
from tunelab.training import train_and_test

log = logging.getLogger("tunelab")

# model_type -> how the HF sequence-classification model turns encoder output into logits.
SUPPORTED_TYPES = ("bert", "distilbert")


def _get(node: Any, key: str, default=None):
    if node is None:
        return default
    try:
        return node.get(key, default)
    except Exception:
        return getattr(node, key, default)


def why_not(cfg: DictConfig) -> Optional[str]:
    """None when the cached path applies to this run, else why it does not (logged)."""
    if cfg.task.name != "seq_cls" or cfg.freeze.mode != "all":
        return "only freeze=all sequence classification trains a head on a fixed encoder"
    if not bool(cfg.trainer.feature_cache):
        return "trainer.feature_cache=false"
    if _get(cfg.get("augment"), "name", "none") != "none":
        return "augmented texts change every run, so there is nothing to reuse"
    if cfg.get("ckpt_path"):
        return "resuming from ckpt_path needs the full model's checkpoint"
    mtype = _model_type(cfg)
    if mtype not in SUPPORTED_TYPES:
        return f"the cached head is implemented for {', '.join(SUPPORTED_TYPES)} models, not {mtype!r}"
    return None


def _model_type(cfg: DictConfig) -> Optional[str]:
    try:
        from tunelab.models.loading import load_config

        return getattr(load_config(cfg.model), "model_type", None)
    except Exception:  # the normal path reports the problem properly
        return None


# --------------------------------------------------------------------------- the head


def head_parts(model) -> tuple[str, Callable]:
    """``(pooling, head_fn)``: which features the HF head reads and how it maps them to logits.

    ``head_fn`` uses the model's own modules, so the parameters trained (and their init) are the
    normal path's.
    """
    mtype = getattr(model.config, "model_type", None)
    if mtype == "bert":
        # BertForSequenceClassification: logits = classifier(dropout(pooler_output))
        return "pooler", lambda x: model.classifier(model.dropout(x))
    if mtype == "distilbert":
        # DistilBertForSequenceClassification: classifier(dropout(relu(pre_classifier(h[:, 0]))))
        def fn(x):
            return model.classifier(model.dropout(torch.relu(model.pre_classifier(x))))
        return "cls", fn
    raise ValueError(f"no frozen-feature head for model_type={mtype!r}")


def base_of(model):
    return getattr(model, model.base_model_prefix)


def _loss(model, logits, labels):
    """The loss HF's model computes for these logits (same problem_type rules)."""
    cfg = model.config
    n = cfg.num_labels
    ptype = cfg.problem_type
    if ptype is None:
        ptype = "regression" if n == 1 else (
            "single_label_classification" if labels.dtype in (torch.long, torch.int)
            else "multi_label_classification")
    if ptype == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype)) if n == 1 else \
            F.mse_loss(logits, labels.to(logits.dtype))
    if ptype == "single_label_classification":
        return F.cross_entropy(logits.view(-1, n), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


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
        return _Out(_loss(self.model, logits, batch["labels"]), logits)

    def training_step(self, batch, batch_idx):
        out = self._head(batch)
        self._check_loss(out.loss)
        bs = batch["features"].shape[0]
        self.log("train/loss", out.loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        return out.loss

    def _eval_forward(self, batch):
        return self._head(batch)

    def on_save_checkpoint(self, checkpoint) -> None:
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


# --------------------------------------------------------------------------- the runner


def _feature_device(cfg: DictConfig) -> str:
    acc = str(_get(cfg.trainer, "accelerator", "cpu"))
    if acc in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def encode_splits(cfg: DictConfig, model, tokenizer, splits, report, *, batch_size: int = 128,
                  pooling: Optional[str] = None) -> tuple[dict, dict, float]:
    """Features of every non-empty split (cached); returns (features, hits, seconds).

    ``pooling`` None: what the HF head reads (BERT's pooler, DistilBERT's [CLS]).
    """
    from tunelab.models.features import cached_features_with_info

    pooling = pooling or head_parts(model)[0]
    base = base_of(model)
    head_prefixes = ("classifier", "pre_classifier", "dropout")
    # Which weights the features depend on besides the source: drawn at random (random_init,
    # or base tensors the checkpoint lacked) -> they depend on the seed and the load order.
    base_missing = [k for k in (report.missing if report else []) if not k.startswith(head_prefixes)]
    random_init = bool(cfg.model.random_init)
    seed_dependent = random_init or bool(base_missing)
    extra = {"kind": "seq_cls-base", "num_labels": int(model.config.num_labels),
             "dropout": cfg.model.dropout} if seed_dependent else {"kind": "seq_cls-base"}
    device = _feature_device(cfg)
    t0 = time.time()
    feats, hits = {}, {}
    moved = False
    for name in ("train", "val", "test"):
        df = getattr(splits, name)
        if not len(df):
            continue
        texts = df["text"].astype(str).tolist()
        if device != "cpu" and not moved:
            base.to(device)
            moved = True
        arr, hit = cached_features_with_info(
            cfg.model, texts, pooling=pooling, max_length=cfg.model.max_length, cache_dir=cfg.cache_dir,
            batch_size=batch_size, seed=init_seed(cfg), encoder=model, tokenizer=tokenizer,
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


def run(cfg: DictConfig, ctx, pooling: Optional[str] = None) -> dict:
    """``run_encoder`` for freeze=all seq_cls, training the head on cached encoder features.

    ``pooling`` None feeds the head what the HF model would (the normal path's numbers); a
    pooling name (``freeze.probe.fit=head``) feeds it that hidden-size vector instead.
    """
    from tunelab.models import dropout
    from tunelab.models.loading import load_model, load_tokenizer, print_load_report

    tokenizer = load_tokenizer(cfg.model)
    # Tokenised too: token lengths form the batches exactly as in the normal path.
    dm, splits = load_data(cfg, tokenizer)
    label_names = dm.label_names
    # Same call, same point of the seeded RNG stream as build_module: same head init.
    model, report = load_model(cfg.model, "seq_cls", num_labels=len(label_names), label_names=label_names,
                               fast_dropout=dropout.wanted(cfg.trainer))
    print_load_report(report, log.info)
    feats, hits, secs = encode_splits(cfg, model, tokenizer, splits, report,
                                      batch_size=max(int(cfg.optim.eval_batch_size), 64), pooling=pooling)
    log.info("[tunelab] frozen-encoder features: "
             + ", ".join(f"{s} {'cached' if h else 'computed'}" for s, h in hits.items())
             + f" ({secs:.1f} s); training the head only")
    labels = {s: getattr(splits, s)["label"].to_numpy() for s in feats}
    fdm = FeatureDataModule(dm, feats, labels, pin_memory=torch.cuda.is_available())
    _, head_fn = head_parts(model)
    module = FrozenFeatureClassifier(
        model, head_fn=head_fn, num_labels=len(label_names),
        positive_index=positive_index(label_names, cfg.data), optim_cfg=cfg.optim,
        freeze_cfg=cfg.freeze, label_names=label_names, log=log.info)
    metrics, trainer = train_and_test(cfg, ctx, module, fdm, has_val=len(splits.val) > 0)
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report, feature_cache={"hits": hits, "pooling": pooling or head_parts(model)[0],
                                                        "seconds": round(secs, 3)})
