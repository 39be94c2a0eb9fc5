"""Top layers trained on cached outputs of a frozen bottom (the plan's ``prefix`` runner).

``freeze=last2`` (any ``last_n``/``first_n``) freezes the embeddings and the layers below the top
ones; those run in eval mode without gradient, so their output for an example never changes,
yet the full forward pass recomputes it for every batch of every epoch of every seed.
:func:`build_states` computes it once per (model, tokens, depth) into a memory-mapped store
(:mod:`.prefix_store`, under ``<cache_dir>/prefix``, shared by the seeds of a sweep) and
:class:`PrefixCachedClassifier` trains the top layers, pooler and head on it (:mod:`.prefix`).

Equivalence with the full forward pass (tested on BERT and DistilBERT with dropout on), as for
the ``freeze=all`` cache (:mod:`.frozen`, whose module and data classes this reuses):
  * the model is loaded by the same call at the same point of the seeded RNG stream (same init
    of the trained layers and head), and the same plan is applied to it (same blocks,
    optimiser groups, learning rates, parameter counts);
  * batches come from the token loader's own batch sampler and generator, padded to the same
    width, so the top layers' dropout draws the same masks;
  * nothing in the frozen prefix draws random numbers in the full path (eval mode), so the
    RNG stream of the trained part is the same.
Checkpoints hold the trained parameters only (the frozen prefix is rebuilt from its source).
``trainer.feature_cache_dtype=bfloat16`` halves the store; results then carry bf16 rounding.
Whether the route is taken, and why not, is the plan's decision (:func:`tunelab.models.plan.route_of`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig

from tunelab.models.cache import prefix
from tunelab.models.cache import prefix_store as store
from tunelab.models.cache.frozen import FeatureDataModule, FrozenFeatureClassifier, _Out, feature_device
from tunelab.models.cache.heads import task_loss

log = logging.getLogger("tunelab")

class PrefixCachedClassifier(FrozenFeatureClassifier):
    """SequenceClassifier whose steps start from layer ``k``'s cached input."""

    def __init__(self, model, *, k: int, **kw):
        super().__init__(model, head_fn=None, **kw)
        self.k = k

    def _head(self, batch) -> _Out:
        logits = prefix.top_logits(self.model, self.k, batch["features"], batch["attention_mask"])
        return _Out(task_loss(self.model, logits, batch["labels"]), logits)


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


def build_states(cfg: DictConfig, model, plan, report, dm, splits) -> tuple[dict, dict, float]:
    """Each split's prefix states, from the store or computed now: (states, hits, seconds)."""
    from tunelab.caching import entry_name, tokenizer_identity, usable
    from tunelab.models.cache.model_identity import model_identity, texts_digest
    from tunelab.seeds import init_seed

    k = plan.route.prefix_layers
    dtype = str(cfg.trainer.get("feature_cache_dtype", "float32"))
    # The states depend on the seed only when prefix weights were drawn at random.
    below = {"embeddings"} | {f"layer.{i}" for i in range(k)}
    ids = {id(p) for b in plan.blocks if b.name in below for p in b.params}
    prefix_params = {n for n, p in model.named_parameters() if id(p) in ids}
    seed_dependent = bool(cfg.model.random_init) or any(m in prefix_params for m in (report.missing if report else []))
    # As for the freeze=all cache: what else a seed-dependent draw could depend on.
    extra = {"num_labels": int(model.config.num_labels), "dropout": cfg.model.dropout} if seed_dependent else None
    # Drawn weights come from the global RNG seeded with init_seed (tunelab.seeds), not seed.
    ident = model_identity(cfg.model, seed=init_seed(cfg), seed_dependent=seed_dependent, extra=extra)
    device = feature_device(cfg)
    tok = dm.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    t0 = time.time()
    states, hits = {}, {}
    for name, ds in dm.tokenized.items():
        texts = getattr(splits, name)["text"].astype(str).tolist()
        desc = {"kind": "prefix", "model": ident, "tokenizer": tokenizer_identity(tok),
                "texts": texts_digest(texts), "n": len(texts), "max_length": int(cfg.model.max_length), "k": int(k),
                "dtype": dtype, "attention": model.config._attn_implementation}
        path = Path(cfg.cache_dir) / "prefix" / entry_name(f"k{k}", desc)
        st = store.open_entry(path, dtype, len(texts)) if usable(path, desc, "prefix") else None
        if st is None and path.exists():
            log.info(f"[tunelab] prefix cache entry {path.name} unreadable or of other inputs; recomputing")
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
            st = store.write_entry(path, dtype, lengths, int(model.config.hidden_size), batches, desc)
            model.to("cpu")
        states[name] = st
    return states, hits, time.time() - t0


def prepare(cfg: DictConfig, plain, report, dm, splits, log_fn=log.info):
    """``(module, datamodule, info)`` of a prefix-cached run, the states built or read.

    ``plain`` is the full-forward module the normal path would train (loaded by the same call,
    at the same point of the seeded RNG stream, with the plan applied): this trains its model,
    from the same weights. (Also used by ``bench/variants.py`` D1, so the benchmark times
    exactly this set-up.)
    """
    plan = plain.plan
    k = plan.route.prefix_layers
    states, hits, secs = build_states(cfg, plain.model, plan, report, dm, splits)
    size = sum(s.nbytes_on_disk() for s in states.values())
    log_fn(f"[tunelab] frozen prefix (embeddings + {k} layers) cached: "
           + ", ".join(f"{s} {'read' if h else 'computed'}" for s, h in hits.items())
           + f" ({secs:.1f} s, {size / 2**20:.1f} MiB on disk under {cfg.cache_dir}/prefix); "
           f"training layers {k}.. and the head on it")
    labels = {s: getattr(splits, s)["label"].to_numpy() for s in states}
    pdm = PrefixDataModule(dm, states, labels, pin_memory=torch.cuda.is_available())
    module = PrefixCachedClassifier(plain.model, k=k, plan=plan, num_labels=plain.num_labels,
                                    positive_index=plain.positive_index, optim_cfg=plain.optim_cfg,
                                    label_names=dm.label_names, log=log_fn)
    info = {"layers": k, "hits": hits, "seconds": round(secs, 3), "bytes": size, "dtype": states["train"].dtype}
    return module, pdm, info
