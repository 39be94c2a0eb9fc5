"""Frozen-encoder features: extract once, cache on disk, reuse in every run of a sweep.

A frozen encoder in eval mode is a deterministic function of the text, so its output for a
(model, data, max length, pooling) combination is computed once and stored as
``<cache_dir>/features/<key>.npy``. Used by ``method=features``, ``method=zeroshot`` and the
``freeze=all`` fast path (:mod:`tunelab.models.cache.frozen`).

From a notebook::

    import tunelab.models.cache.features as F
    X = F.extract(["a text", "another one"], model="minilm", pooling="mean")   # [2, 384] float32

Public interface
----------------
``POOLINGS``
    ``cls`` (last layer's [CLS] vector), ``mean`` (mean of the last layer over real tokens;
    padding is masked out), ``concat_last4`` ([CLS] of the last four hidden states, concatenated:
    dim ``4 * hidden``; a model with fewer than four layers uses all its hidden states, the
    embedding output included, so dim is ``min(4, layers + 1) * hidden``), ``pooler`` (BERT's
    pooler, tanh(W·[CLS]), what ``BertForSequenceClassification`` feeds its classifier).
``extract(texts, model="minilm", *, pooling, max_length, batch_size, cache_dir=None)``
    ``np.ndarray`` float32 ``[n, dim]``, rows in the order of ``texts``. ``model`` is a model
    config node (``cfg.model``) or a string: the name of a ``model`` config option (``minilm``,
    ``tiny``, ...; composed by Hydra), a ``pkg://`` spec, a local folder or a hub id. With ``cache_dir`` it goes
    through the disk cache.
``cached_features(model_cfg, texts, *, pooling, max_length, cache_dir, batch_size=64, seed=0)``
    The array, from the cache when possible.
``cached_features_with_info(...)``
    Same arguments; returns ``(array, hit)`` where ``hit`` is True when the array was read from
    disk (nothing was computed). This is how callers record cache hits in results.json.
``feature_description(...)`` / ``feature_key(...)``
    What an entry is a function of, and its file name (exposed for tests and reports).

An entry stores, beside its array, the description of what it was built from
(:mod:`tunelab.caching`; checked on every read, a difference is a miss): the model identity
(resolved source: local folder + name/size/mtime/ctime of its weight files and the content of its
config and tokenizer files, or the hub id and the same of its cached snapshot, whose commit it
names; ``config_overrides``; torch and transformers
versions), the tokenizer's content, the exact texts, ``max_length``, ``pooling`` and the
attention implementation. Models whose weights are not fully read from a checkpoint
(``random_init``, or base-model tensors reported missing at load) also include the seed, since
their weights depend on it. Writes are atomic (``tunelab.io.atomic_write``: temp file +
``os.replace``), so jobs of a sweep may race to fill the same entry and a reader never sees a
partial file.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from tunelab.errors import ConfigError
from tunelab.io import atomic_write
from tunelab.models.cache.model_identity import model_identity, texts_digest

log = logging.getLogger("tunelab")

POOLINGS = ("cls", "mean", "concat_last4", "pooler")


# --------------------------------------------------------------------------- model configs


def model_config(model: Any) -> Any:
    """A model config node from a node (returned as is) or a string (see module doc).

    A string without ``/`` is first tried as a ``model`` option (``model=<name>``, composed by
    Hydra on the schema, so it is exactly what ``python train.py model=<name>`` runs); anything
    else — or a name that is no option, such as the hub id ``bert-base-uncased`` — becomes
    ``model.name``.
    """
    if not isinstance(model, (str, os.PathLike)):
        return model
    from omegaconf import OmegaConf

    from tunelab.config import ModelConfig, compose_option

    spec = str(model)
    if "/" not in spec:
        try:
            return compose_option("model", spec)
        except ConfigError:
            pass
    return OmegaConf.merge(OmegaConf.structured(ModelConfig), {"name": spec})


def feature_description(model_cfg: Any, texts: Sequence[str], *, pooling: str, max_length: int, tokenizer,
                        seed: int = 0, seed_dependent: Optional[bool] = None, extra: Optional[dict] = None,
                        attention: Optional[str] = None) -> dict:
    """What a feature array is a function of (tunelab.caching): the encoder, the tokenizer's
    content, the exact texts, max length, pooling and the attention implementation."""
    from tunelab.caching import tokenizer_identity

    _check_pooling(pooling)
    return {
        "kind": "features",
        "model": model_identity(model_cfg, seed=seed, seed_dependent=seed_dependent, extra=extra),
        "tokenizer": tokenizer_identity(tokenizer),
        "texts": texts_digest(texts),
        "n": len(texts),
        "max_length": int(max_length),
        "pooling": pooling,
        "attention": attention or "default",
        "dtype": "float32",
    }


def feature_key(model_cfg: Any, texts: Sequence[str], *, tokenizer, pooling: str, max_length: int, **kw) -> str:
    """The entry's name (``<pooling>-<hash of its description>``)."""
    from tunelab.caching import entry_name

    desc = feature_description(model_cfg, texts, pooling=pooling, max_length=max_length, tokenizer=tokenizer, **kw)
    return entry_name(pooling, desc)


def _check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling={pooling!r} is not one of {list(POOLINGS)}.")


# --------------------------------------------------------------------------- computing


def load_encoder(model_cfg: Any, *, seed: int = 0, with_report: bool = False):
    """``(tokenizer, encoder)`` in eval mode (``with_report``: and the load report); weights not
    read from a checkpoint (random_init, or tensors the checkpoint lacks, such as a masked-LM
    checkpoint's pooler) are drawn under ``seed``."""
    import torch

    from tunelab.models.loading import load_model, load_tokenizer

    tok = load_tokenizer(model_cfg)
    # Keep the caller's RNG stream untouched: the weights depend on `seed` only.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        enc, report = load_model(model_cfg, "encoder")
    enc.eval()
    return (tok, enc, report) if with_report else (tok, enc)


def _pool(out, attention_mask, pooling: str, model):
    import torch

    if pooling == "cls":
        return out.last_hidden_state[:, 0]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        return (out.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1.0)
    if pooling == "concat_last4":
        hs = out.hidden_states
        return torch.cat([h[:, 0] for h in hs[-4:]], dim=-1)
    # pooler
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ConfigError(f"pooling=pooler: {type(model).__name__} has no pooler; use cls or mean.")
    return pooled


def compute_features(tokenizer, encoder, texts: Sequence[str], *, pooling: str = "mean",
                     max_length: int = 128, batch_size: int = 64, base=None) -> np.ndarray:
    """Run ``encoder`` (eval, no grad) over ``texts`` in length-sorted batches.

    ``base`` is the module to call when ``encoder`` is a task model (e.g. ``model.bert`` of a
    ``BertForSequenceClassification``); by default ``encoder`` itself.
    """
    import torch

    _check_pooling(pooling)
    texts = [str(t) for t in texts]
    n = len(texts)
    model = base if base is not None else encoder
    if n == 0:
        with torch.no_grad():
            probe = tokenizer(["x"], truncation=True, max_length=max_length, return_tensors="pt")
            was = model.training
            model.eval()
            dim = _pool(model(**probe, output_hidden_states=pooling == "concat_last4"),
                        probe["attention_mask"], pooling, model).shape[-1]
            model.train(was)
        return np.zeros((0, dim), dtype=np.float32)
    enc = tokenizer(texts, truncation=True, max_length=max_length)
    ids = enc["input_ids"]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=n)
    order = np.argsort(-lengths, kind="stable")
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out_arr: Optional[np.ndarray] = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                width = int(lengths[idx].max())
                batch = {}
                for k in keys:
                    fill = pad_id if k == "input_ids" else 0
                    a = np.full((len(idx), width), fill, dtype=np.int64)
                    for r, i in enumerate(idx):
                        row = enc[k][i]
                        a[r, :len(row)] = row
                    batch[k] = torch.from_numpy(a)
                if "attention_mask" not in batch:
                    a = np.zeros((len(idx), width), dtype=np.int64)
                    for r, i in enumerate(idx):
                        a[r, :lengths[i]] = 1
                    batch["attention_mask"] = torch.from_numpy(a)
                res = model(**batch, output_hidden_states=pooling == "concat_last4")
                vec = _pool(res, batch["attention_mask"], pooling, model).float().cpu().numpy()
                if out_arr is None:
                    out_arr = np.empty((n, vec.shape[1]), dtype=np.float32)
                out_arr[idx] = vec
    finally:
        model.train(was_training)
    return out_arr


# --------------------------------------------------------------------------- caching


def _load(path: Path, n: int) -> Optional[np.ndarray]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.ndim != 2 or arr.shape[0] != n or arr.dtype != np.float32:
        return None
    return arr


def _lookup(cache_dir, pooling: str, desc: dict, n: int) -> tuple[Path, Optional[np.ndarray]]:
    """The entry's path for ``desc``, and its array when the entry holds what ``desc`` describes."""
    from tunelab.caching import entry_name, usable

    path = Path(cache_dir) / "features" / f"{entry_name(pooling, desc)}.npy"
    if not usable(path, desc, "feature"):
        return path, None
    arr = _load(path, n)
    if arr is None:
        log.info(f"[tunelab] feature cache entry {path.name} unreadable; recomputing")
    return path, arr


def cached_features_with_info(model_cfg: Any, texts: Sequence[str], *, pooling: str, max_length: int,
                              cache_dir: Optional[str | os.PathLike], batch_size: int = 64, seed: int = 0,
                              encoder=None, tokenizer=None, base=None,
                              seed_dependent: Optional[bool] = None,
                              extra_key: Optional[dict] = None) -> tuple[np.ndarray, bool]:
    """``(features, hit)``; ``hit`` is True when the array came from the disk cache.

    ``encoder``/``tokenizer``/``base`` let a caller that already holds the model (the
    ``freeze=all`` path) compute with it on a miss; ``seed_dependent`` and ``extra_key`` add to
    the entry's description what such a model's weights depend on (:mod:`tunelab.caching`: a
    stored description that differs is a miss). Without ``cache_dir`` nothing is cached.
    """
    from tunelab.caching import entry_name, write_description
    from tunelab.models.loading import load_tokenizer

    model_cfg = model_config(model_cfg)
    _check_pooling(pooling)
    texts = [str(t) for t in texts]
    path = desc = None
    if cache_dir:
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_cfg)
        attention = encoder.config._attn_implementation if encoder is not None else None
        desc = feature_description(model_cfg, texts, pooling=pooling, max_length=max_length, tokenizer=tokenizer,
                                   seed=seed, seed_dependent=seed_dependent, extra=extra_key, attention=attention)
        path, arr = _lookup(cache_dir, pooling, desc, len(texts))
        if arr is not None:
            return arr, True
    if encoder is None:
        tok, encoder, report = load_encoder(model_cfg, seed=seed, with_report=True)
        tokenizer = tokenizer if tokenizer is not None else tok
        if path is not None and report.missing and seed_dependent is None and "seed" not in desc["model"]:
            # Tensors the checkpoint lacks were drawn under the seed: the entry is the seed's
            # (found only after loading; an entry without the seed is of a complete checkpoint).
            missing = {**(extra_key or {}), "missing": sorted(report.missing)}
            desc = feature_description(model_cfg, texts, pooling=pooling, max_length=max_length, tokenizer=tokenizer,
                                       seed=seed, seed_dependent=True, extra=missing, attention=None)
            path, arr = _lookup(cache_dir, pooling, desc, len(texts))
            if arr is not None:
                return arr, True
    elif tokenizer is None:
        tokenizer = load_tokenizer(model_cfg)
    arr = compute_features(tokenizer, encoder, texts, pooling=pooling, max_length=max_length,
                           batch_size=batch_size, base=base)
    if path is not None and "revision" in desc["model"]:
        # A hub model: the snapshot this load read (first downloaded, or updated, by it) is the entry's.
        desc = {**desc, "model": model_identity(model_cfg, seed=seed, seed_dependent="seed" in desc["model"],
                                                extra=desc["model"].get("extra"))}
        path = Path(cache_dir) / "features" / f"{entry_name(pooling, desc)}.npy"
    if path is not None and desc["model"].get("revision", "") is not None:
        atomic_write(path, lambda f: np.save(f, arr), binary=True, what="feature cache entry ")
        write_description(path, desc)
    return arr, False


def cached_features(model_cfg: Any, texts: Sequence[str], *, pooling: str, max_length: int,
                    cache_dir: Optional[str | os.PathLike], batch_size: int = 64, seed: int = 0,
                    **kw) -> np.ndarray:
    """The features, from the cache when possible (see :func:`cached_features_with_info`)."""
    return cached_features_with_info(model_cfg, texts, pooling=pooling, max_length=max_length,
                                     cache_dir=cache_dir, batch_size=batch_size, seed=seed, **kw)[0]


def extract(texts: Sequence[str] | str, model: Any = "minilm", *, pooling: str = "mean",
            max_length: int = 128, batch_size: int = 64,
            cache_dir: Optional[str | os.PathLike] = None, seed: int = 0) -> np.ndarray:
    """Sentence vectors ``[n, dim]`` (float32) from a frozen encoder; see the module doc."""
    if isinstance(texts, str):
        texts = [texts]
    model_cfg = model_config(model)
    if cache_dir:
        return cached_features(model_cfg, texts, pooling=pooling, max_length=max_length,
                               cache_dir=cache_dir, batch_size=batch_size, seed=seed)
    tok, enc = load_encoder(model_cfg, seed=seed)
    return compute_features(tok, enc, texts, pooling=pooling, max_length=max_length, batch_size=batch_size)
