"""What a frozen encoder's outputs are a function of: the model half of a cache entry's key.

The feature cache (:mod:`tunelab.models.cache.features`) and the frozen-prefix store
(:mod:`tunelab.models.cache.prefix_module`) both key their entries on :func:`model_identity`:
the resolved source and its files (a local folder's weights by name, size, mtime and ctime, its
small files — config, tokenizer, remote code — by content; a hub id by its cached snapshot and
commit), ``config_overrides``, ``random_init``, the libraries, and the seed where weights are
drawn rather than read. An input that changes the outputs and is missing here would let one
model's features be served for another: ``tests/test_cache_meaning.py`` checks each.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional, Sequence

from tunelab.ops.inputs import MODEL_FILES

# Files up to this size (configs, vocabularies) are identified by content too, weights by size
# and modification time (hashing hundreds of MB per run would cost seconds).
_HASHED_BYTES = 8 * 2**20


def _get(node: Any, key: str, default=None):
    if hasattr(node, "get"):
        try:
            return node.get(key, default)
        except Exception:
            pass
    return getattr(node, key, default)


def _plain(value: Any) -> Any:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(value):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return value


def _files_identity(path: Path) -> list:
    """The files that define a local model's weights and config: (name, size, mtime_ns, ctime_ns)
    of each, and the sha256 of the small ones (config, tokenizer files) whose content a copy may
    change without changing the size. ctime: ``cp -p`` and ``rsync -a`` rewrite a checkpoint and
    set its mtime back (a fine-tuned copy of the same architecture has the same size); no one
    can set the ctime, which every write moves (so a reinstall is a miss: the safe direction)."""
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir())
                                           if p.is_file() and p.suffix in MODEL_FILES]
    out = []
    for p in files:
        st = p.stat()
        row = [p.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        if st.st_size <= _HASHED_BYTES:
            row.append(hashlib.sha256(p.read_bytes()).hexdigest())
        out.append(row)
    return out


def model_identity(model_cfg: Any, *, seed: int = 0, seed_dependent: Optional[bool] = None,
                   extra: Optional[dict] = None) -> dict:
    """What the encoder's outputs depend on (the model half of a cache entry's description):
    its files, config overrides, the seed when weights are drawn at random, the libraries."""
    from tunelab.caching import library_versions
    from tunelab.locate import hub_snapshot, resolve_local
    from tunelab.models.loading import model_source

    src = model_source(model_cfg)
    local = resolve_local(src)
    ident: dict[str, Any] = {
        "source": str(local) if local is not None else src,
        "files": _files_identity(local) if local is not None else None,
        "tokenizer": _get(model_cfg, "tokenizer"),
        "config_overrides": _plain(_get(model_cfg, "config_overrides")) or {},
        "random_init": bool(_get(model_cfg, "random_init", False)),
        "versions": library_versions(),
    }
    if local is None:
        # A hub id: the snapshot its weights are read from (a push to the repo is another model).
        # None (not cached yet): no entry is written under such a description.
        snap = hub_snapshot(src)
        ident["files"] = _files_identity(snap) if snap is not None else None
        ident["revision"] = snap.name if snap is not None else None
    if seed_dependent is None:
        seed_dependent = ident["random_init"]
    if seed_dependent:
        ident["seed"] = int(seed)
    if extra:
        ident["extra"] = extra
    return ident


def texts_digest(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = str(t).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()
