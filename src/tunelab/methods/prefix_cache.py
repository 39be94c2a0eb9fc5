"""``method=finetune`` with frozen bottom layers, cached: the frozen prefix runs once per example.

``freeze=last2`` (any ``last_n``/``first_n``) freezes the embeddings and the layers below the top
ones; those run in eval mode without gradient, so their output for an example never changes,
yet the uncached path recomputes it for every batch of every epoch of every seed. This runner
computes it once per (model, tokens, depth) into a memory-mapped store
(:mod:`tunelab.models.prefix_store`, under ``<cache_dir>/prefix``, shared by the seeds of a
sweep) and trains the top layers, pooler and head on it (:mod:`tunelab.models.prefix`).

Equivalence with ``run_encoder`` (tested on BERT and DistilBERT with dropout on), as for the
``freeze=all`` cache (:mod:`tunelab.methods.frozen_cache`, whose module and data classes this
reuses):
  * the model is loaded by the same call at the same point of the seeded RNG stream (same init
    of the trained layers and head), and the same freeze policy is applied to it (same blocks,
    optimiser groups, learning rates, parameter counts);
  * batches come from the token loader's own batch sampler and generator, padded to the same
    width, so the top layers' dropout draws the same masks;
  * nothing in the frozen prefix draws random numbers in the uncached path (eval mode), so the
    RNG stream of the trained part is the same.
Checkpoints hold the trained parameters only (the frozen prefix is rebuilt from its source).

Not taken, with the reason logged: ``trainer.feature_cache=false``; gradual unfreezing (the
frozen set changes during training: no fixed prefix); only the embeddings frozen (caching
them saves almost nothing); tasks other than seq_cls; augmentation (texts change per run);
an explicit ``ckpt_path``; models other than BERT/DistilBERT. LoRA/adapters do not reach this
path: they are curriculum strategies, which ``method=finetune`` refuses at validation.
``trainer.feature_cache_dtype=bfloat16`` halves the store; results then carry bf16 rounding.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from tunelab.methods.finetune import build_module, encoder_record, load_data
from tunelab.methods import frozen_cache
from tunelab.methods.frozen_cache import (FeatureDataModule, FrozenFeatureClassifier, _feature_device, _loss,
                                          _model_type, _Out)
from tunelab.models import freezing, prefix
from tunelab.models import prefix_store as store
from tunelab.training import resolve_ckpt, train_and_test

log = logging.getLogger("tunelab")

PREFIX_MODES = ("last_n", "first_n", "embeddings", "gradual")


def why_not(cfg: DictConfig) -> Optional[str]:
    """None when the prefix cache applies, else why not (``finetune.run`` logs it)."""
    mode = cfg.freeze.mode
    if mode not in PREFIX_MODES or cfg.task.name != "seq_cls":
        return "only sequence classification with frozen bottom layers (last_n, first_n) has a prefix to cache"
    if mode == "gradual":
        return "gradual unfreezing thaws blocks during training, so no prefix stays fixed"
    n = int(cfg.freeze.get("n", 0) or 0)
    if mode == "embeddings" or (mode == "first_n" and n == 0) or (mode == "last_n" and n >= _n_layers(cfg)):
        return "only the embeddings are frozen; caching their output would save almost nothing"
    # The rest of the run must allow a cache as for freeze=all (switch, augmentation, ckpt_path,
    # model type): the same rules, asked of the same function.
    shared = frozen_cache.why_not(OmegaConf.merge(cfg, {"freeze": {"mode": "all"}}))
    if shared is not None:
        return shared
    mtype = _model_type(cfg)
    if mtype not in prefix.SUPPORTED_TYPES:
        return f"the prefix cache is implemented for {', '.join(prefix.SUPPORTED_TYPES)} models, not {mtype!r}"
    return None


def _n_layers(cfg: DictConfig) -> int:
    try:
        from tunelab.models.loading import load_config

        c = load_config(cfg.model)
        return int(getattr(c, "num_hidden_layers", None) or getattr(c, "n_layers"))
    except Exception:  # the normal path reports the problem properly
        return 10**6


class PrefixCachedClassifier(FrozenFeatureClassifier):
    """SequenceClassifier whose steps start from layer ``k``'s cached input."""

    def __init__(self, model, *, k: int, **kw):
        super().__init__(model, head_fn=None, **kw)
        self.k = k

    def _head(self, batch) -> _Out:
        logits = prefix.top_logits(self.model, self.k, batch["features"], batch["attention_mask"])
        return _Out(_loss(self.model, logits, batch["labels"]), logits)


class _Split(torch.utils.data.Dataset):
    def __init__(self, states: store.PrefixStates, labels):
        self.states, self.y = states, torch.tensor(np.asarray(labels), dtype=torch.long)

    def __len__(self):
        return len(self.y)

    def __getitems__(self, idx):
        return idx


class PrefixDataModule(FeatureDataModule):
    """Batches of cached states, padded with zeros to the batch's longest example."""

    def __init__(self, dm, states: dict, labels: dict, pin_memory: bool = False):
        # Not FeatureDataModule.__init__: it would copy whole feature arrays into memory.
        L.LightningDataModule.__init__(self)
        self.dm, self.pin_memory = dm, pin_memory
        self.data = {s: _Split(states[s], labels[s]) for s in states}

    def _collate(self, split):
        rows = self.data[split]

        def collate(idx):
            hidden, lengths = rows.states.batch(idx)
            mask = (torch.arange(hidden.shape[1])[None, :] < lengths[:, None]).long()
            return {"features": hidden, "attention_mask": mask,
                    "labels": rows.y.index_select(0, torch.as_tensor(idx, dtype=torch.long))}
        return collate


def build_states(cfg: DictConfig, model, report, dm, splits, k: int) -> tuple[dict, dict, float]:
    """Each split's prefix states, from the store or computed now: (states, hits, seconds)."""
    from tunelab.data.datamodule import tokenizer_fingerprint
    from tunelab.models.features import model_identity, texts_digest

    dtype = str(cfg.trainer.get("feature_cache_dtype", "float32"))
    # The states depend on the seed only when prefix weights were drawn at random.
    below = {"embeddings"} | {f"layer.{i}" for i in range(k)}
    ids = {id(p) for b in freezing.blocks_of(model) if b.name in below for p in b.params}
    prefix_params = {n for n, p in model.named_parameters() if id(p) in ids}
    seed_dependent = bool(cfg.model.random_init) or any(m in prefix_params for m in (report.missing if report else []))
    # As for the freeze=all cache: what else a seed-dependent draw could depend on.
    extra = {"num_labels": int(model.config.num_labels), "dropout": cfg.model.dropout} if seed_dependent else None
    ident = model_identity(cfg.model, seed=int(cfg.seed), seed_dependent=seed_dependent, extra=extra)
    device = _feature_device(cfg)
    tok = dm.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    t0 = time.time()
    states, hits = {}, {}
    for name, ds in dm.tokenized.items():
        texts = getattr(splits, name)["text"].astype(str).tolist()
        key = store.entry_key(ident, tokenizer=tokenizer_fingerprint(tok), texts_digest=texts_digest(texts),
                              n=len(texts), max_length=cfg.model.max_length, k=k, dtype=dtype)
        path = Path(cfg.cache_dir) / "prefix" / key
        st = store.open_entry(path, dtype, len(texts)) if path.exists() else None
        if st is None and path.exists():
            log.info(f"[tunelab] prefix cache entry {path.name} unreadable; recomputing")
            shutil.rmtree(path, ignore_errors=True)
        hits[name] = st is not None
        if st is None:
            cols = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in ds.column_names]
            rows = {c: ds[c] for c in cols}
            lengths = np.asarray(ds["length"], dtype=np.int64)
            order = np.argsort(-lengths, kind="stable")
            model.to(device)
            batches = prefix.prefix_states(model, k, rows, order, pad_id=pad_id, device=device,
                                           batch_size=max(int(cfg.optim.eval_batch_size), 64))
            # DistilBERT's config maps hidden_size to its own name (dim).
            st = store.write_entry(path, dtype, lengths, int(model.config.hidden_size), batches)
            model.to("cpu")
        states[name] = st
    return states, hits, time.time() - t0


def prepare(cfg: DictConfig, dm, splits, log_fn=log.info):
    """``(module, datamodule, report, info)`` of a prefix-cached run, the states built or read.

    The model comes from the normal path's own module builder: it is loaded by the same call
    at the same point of the seeded RNG stream, so what trains starts from the same weights.
    (Also used by ``bench/variants.py`` D1, so the benchmark times exactly this set-up.)
    """
    plain, report = build_module(cfg, dm)
    model = plain.model
    blocks = freezing.blocks_of(model)
    k = prefix.prefix_depth(freezing.frozen_block_names(blocks, cfg.freeze), len(prefix.layers_of(model)))
    states, hits, secs = build_states(cfg, model, report, dm, splits, k)
    size = sum(s.nbytes_on_disk() for s in states.values())
    log_fn(f"[tunelab] frozen prefix (embeddings + {k} layers) cached: "
           + ", ".join(f"{s} {'read' if h else 'computed'}" for s, h in hits.items())
           + f" ({secs:.1f} s, {size / 2**20:.1f} MiB on disk under {cfg.cache_dir}/prefix); "
           f"training layers {k}.. and the head on it")
    labels = {s: getattr(splits, s)["label"].to_numpy() for s in states}
    pdm = PrefixDataModule(dm, states, labels, pin_memory=torch.cuda.is_available())
    module = PrefixCachedClassifier(model, k=k, num_labels=plain.num_labels, positive_index=plain.positive_index,
                                    optim_cfg=cfg.optim, freeze_cfg=cfg.freeze, label_names=dm.label_names,
                                    log=log_fn)
    info = {"layers": k, "hits": hits, "seconds": round(secs, 3), "bytes": size, "dtype": states["train"].dtype}
    return module, pdm, report, info


def run(cfg: DictConfig, ctx) -> dict:
    """``run_encoder`` for frozen bottom layers, training the top on cached prefix states."""
    from tunelab.models.loading import load_tokenizer

    dm, splits = load_data(cfg, load_tokenizer(cfg.model))
    module, pdm, report, info = prepare(cfg, dm, splits)
    metrics, trainer = train_and_test(cfg, ctx, module, pdm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report, prefix_cache=info)
