"""The files a job reads besides its config, by content: so a skip or a resume never serves a
result of other inputs.

A job's identity (:mod:`tunelab.ops.identity`) is its config. ``resume=auto`` skips a job whose
results.json says ok and continues one from its checkpoint; but the config names files
(``data.path=mine.csv``, a local model folder, a curriculum stage's data), and a file edited
between two runs of the same command (labels fixed, a model re-adapted into the same folder)
leaves the config, so the identity, as it was. Skipping then hands back the result of the old
file, and resuming trains on the new one from weights fitted to the old.

So every results.json records ``inputs``: for each config value (bookkeeping aside) that names a
local file or a model folder — ``pkg://`` specs included — its path and the sha256 of its content
(a model folder: of each weight, config and tokenizer file in it, as of a ``model.tokenizer``
folder; a data folder, such as ``data=bbc_news``'s one folder per class: of every file in it).
A data config named by a curriculum stage or ``adapt.corpus``/``adapt.eval_original`` is composed
and its files recorded under ``<key>:data.path``; the WordNet an EDA job reads (found through the
environment, not the config) under ``augment.wordnet``. Content, not times: a ``touch``
or a fresh checkout changes nothing. ``resume=auto`` compares the record with the files as they
are now and refuses, in one sentence, to skip or resume a job whose inputs changed
(:func:`changed`); tunelab's own sweepers, which read finished jobs instead of relaunching them,
check each record against its paths (:func:`stale`).

A hub model id is the same question for a repo: a push to ``main`` makes the same config another
model. Its entry is the commit ``from_pretrained`` reads (``{"hub", "revision"}``: the cached
snapshot's, or, online, the hub's ``main``), recorded again when the job ends (a first run
downloads it). A hub dataset (``data.hf_name``, any ``*.hf_name``) is the same, with
``"type": "dataset"``: ``load_dataset`` reads the card at ``main`` and the data at its commit. A hub
id not cached here and not reachable cannot tell and is not refused.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

# Files of a model folder that decide its outputs (weights, config, tokenizer; .py: a
# trust_remote_code model's modelling code); others (a README, training logs) are not inputs.
# The feature caches' model keys read the same list (tunelab.models.cache.model_identity).
MODEL_FILES = (".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".json", ".txt", ".model", ".py")


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(node, (list, tuple)):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{prefix}.{i}")
    elif isinstance(node, str) and node:
        yield prefix, node


@lru_cache(maxsize=16384)  # a data folder (BBC: 2,225 files) fits
def _sha(path: str, size: int, mtime_ns: int, ctime_ns: int) -> str:
    """Content hash, computed once per process for a file that was not written since (a sweep
    in one process skips or runs many jobs over the same data)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _file_sha(p: Path) -> str:
    st = p.stat()
    return _sha(str(p), st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _local(spec: str) -> Optional[Path]:
    from tunelab.errors import DataError
    from tunelab.locate import resolve_local

    if "\n" in spec or len(spec) > 4096:
        return None
    try:
        return resolve_local(spec)
    except (DataError, OSError, ValueError):  # a pkg:// spec of a package not installed: said elsewhere
        return None


def _offline() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(constants.HF_HUB_OFFLINE)


def _hub(spec: str, *, ask: bool = False, dataset: bool = False) -> Optional[dict]:
    """A hub model's (or dataset's) entry: the commit its cache's ``main`` names; with ``ask`` and
    network, the commit the hub's ``main`` has now (what the next load would download). None: not
    a hub repo this machine knows of."""
    from tunelab.locate import hub_dataset_commit, hub_snapshot

    if spec.startswith((".", "/", "~")) or "://" in spec or len(spec) > 200:
        return None  # a path, or a package spec: files, described above
    if dataset:
        revision = hub_dataset_commit(spec)
    else:
        snap = hub_snapshot(spec)
        revision = None if snap is None else snap.name
    if revision is None:
        return None
    if ask and not _offline():
        try:
            from huggingface_hub import HfApi

            info = HfApi().dataset_info if dataset else HfApi().model_info
            revision = info(spec, timeout=10).sha or revision
        except Exception:  # noqa: BLE001 - no network, or the hub refused: the cached commit is what loads
            pass
    return {"hub": spec, "type": "dataset", "revision": revision} if dataset else {"hub": spec, "revision": revision}


def _is_dataset_key(key: str) -> bool:
    """``data.hf_name`` (and a stage's ``*.hf_name``): a ``load_dataset`` name, not a model id."""
    return key.rsplit(".", 1)[-1] == "hf_name"


# Keys whose value may name a folder of data (data.source=bbc_dir's class folders, a folder for
# load_dataset): every file in it, by content. Other folders a config names (outputs, caches) are
# not inputs, and a model folder (one holding config.json) is described by its model files.
DATA_KEYS = ("path", "val_path", "test_path", "ood_test_path", "hf_name")


# The WordNet dict directory an EDA job reads (synonyms: another WordNet, other training copies).
# Not a config value: where it is comes from the environment (tunelab.augment.wordnet).
WORDNET_KEY = "augment.wordnet"


def _kind(key: str) -> Optional[str]:
    """What a folder named by this key is: ``data`` (every file counts), ``tokenizer`` (a tokenizer
    folder has no config.json: its model files count), or None (only a model folder counts)."""
    leaf = key.rsplit(".", 1)[-1]
    return "data" if leaf in DATA_KEYS or key == WORDNET_KEY else "tokenizer" if leaf == "tokenizer" else None


def wordnet(path: Path) -> dict[str, dict]:
    """``{augment.wordnet: entry}``: the WordNet directory a job reads, by every file's content."""
    entry = _describe(Path(path), _kind(WORDNET_KEY))
    return {WORDNET_KEY: entry} if entry is not None else {}


def _describe(p: Path, kind: Optional[str] = None) -> Optional[dict]:
    """A file's, a model (or ``tokenizer``) folder's or a ``data`` folder's content (None: none, or gone)."""
    if p.is_file():
        return {"path": str(p), "sha256": _file_sha(p)}
    if p.is_dir() and ((p / "config.json").is_file() or kind == "tokenizer"):
        return {"path": str(p), "files": {f.name: _file_sha(f) for f in sorted(p.iterdir())
                                          if f.is_file() and f.suffix in MODEL_FILES}}
    if kind == "data" and p.is_dir():
        files = {f.relative_to(p).as_posix(): _file_sha(f) for f in sorted(p.rglob("*"))
                 if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)}
        return {"path": str(p), "files": files} if files else None
    return None


def _content(entry: Any) -> Any:
    return (entry.get("sha256") or entry.get("files") or entry.get("revision")) if isinstance(entry, dict) else entry


def _is_hub(entry: Any) -> bool:
    return isinstance(entry, dict) and "hub" in entry


def fingerprint(cfg: Any, options: Optional[Callable[[str], Any]] = None) -> dict[str, dict]:
    """``{config key: {"path", "sha256"}}`` (a model folder: ``{"path", "files": {name: sha256}}``)
    for every config value that names an existing local file or a folder holding ``config.json``,
    and ``{"hub", "revision"}`` for each that names a hub model in the local cache (a hub dataset:
    ``{"hub", "type": "dataset", "revision"}``). ``options``: composes a data config by name (the
    run's ``compose_option("data", name)``; this layer sits below the configs), so the files of a
    data config a curriculum stage or ``adapt.corpus`` names are recorded too."""
    from tunelab.ops.identity import identity_payload

    out: dict[str, dict] = {}
    composed: dict[str, list] = {}
    for key, value in _leaves(identity_payload(cfg)):
        p = _local(value)
        entry = _describe(p, _kind(key)) if p is not None else _hub(value, dataset=_is_dataset_key(key))
        if entry is not None:
            out[key] = entry
        elif options is not None and _names_data_option(key):
            if value not in composed:
                composed[value] = _option_files(value, options)
            out.update({f"{key}:{sub}": e for sub, e in composed[value]})
    return out


def _names_data_option(key: str) -> bool:
    """A key whose value may be a data config's name (``conf/data/<name>.yaml``), not a file: a
    curriculum stage's ``data``, ``adapt.corpus``, ``adapt.eval_original``. The files that option
    reads are in no leaf of the job's config."""
    parts = key.split(".")
    return key in ("adapt.corpus", "adapt.eval_original") or (
        len(parts) == 4 and parts[0] == "curriculum" and parts[1] == "stages" and parts[3] == "data")


def _option_files(name: str, options: Callable[[str], Any]) -> list[tuple[str, dict]]:
    """``[(data.path, entry), ...]`` for the files and folders the data option ``name`` names,
    composed as the job composes it (the run's search path). Not a data option: none (said where
    the job reads it)."""
    try:
        node = options(name)
    except Exception:  # noqa: BLE001 - a name that is no option: the job's own check says so
        return []
    from omegaconf import OmegaConf

    found = []
    for key, value in _leaves(OmegaConf.to_container(node, resolve=True)):
        p = _local(value) if key in DATA_KEYS else None
        entry = _describe(p, "data") if p is not None else None
        if entry is not None:
            found.append((f"data.{key}", entry))
    return found


def asked(recorded: Any, now: dict[str, dict]) -> dict[str, dict]:
    """``now``, with each cached hub model a record holds asked of the hub (online): the commit
    the next load would download, not the cache's, which only that load updates. Only where a
    record is compared: a job without one makes no request."""
    if not isinstance(recorded, dict):
        return now
    return {**now, **{k: _hub(v["hub"], ask=True, dataset=v.get("type") == "dataset") or now[k]
                      for k, v in recorded.items() if _is_hub(v) and k in now}}


def hub_entries(cfg: Any) -> dict[str, dict]:
    """The hub repos' entries as the cache holds them now: at a job's end, the commits its loads read.
    The values :func:`fingerprint` asks the hub for, without describing every file again."""
    from tunelab.ops.identity import identity_payload

    out: dict[str, dict] = {}
    for key, value in _leaves(identity_payload(cfg)):
        if _local(value) is None and (entry := _hub(value, dataset=_is_dataset_key(key))) is not None:
            out[key] = entry
    return out


def changed(recorded: Any, now: dict[str, dict]) -> list[str]:
    """Keys of a job's record whose file differs now, or is gone, or whose hub model has another
    commit. Only what the record holds: one written before tunelab kept ``inputs`` cannot tell
    (none), nor a file a newer tunelab names that an older one did not, nor a hub model neither
    cached nor reachable now. Content only: the path may differ (another machine's site-packages)."""
    if not isinstance(recorded, dict):
        return []
    return sorted(k for k in recorded if _content(recorded[k]) != _content(now.get(k))
                  and not (_is_hub(recorded[k]) and k not in now))


def stale(record: Any) -> list[str]:
    """Keys of a results.json whose recorded file, at its recorded path, now holds other content
    (for a sweeper that reads finished jobs without their configs), or whose hub model's cached
    commit is another. A path that is gone cannot tell: a study moved to another machine has its
    packages elsewhere (nor a hub model not cached here)."""
    rec = (record or {}).get("inputs") if isinstance(record, dict) else None
    if not isinstance(rec, dict):
        return []
    now = {k: _describe(Path(v["path"]), _kind(k)) if v.get("path")
           else _hub(str(v["hub"]), dataset=v.get("type") == "dataset")
           for k, v in rec.items() if isinstance(v, dict) and (v.get("path") or v.get("hub"))}
    now = {k: v for k, v in now.items() if v is not None}
    return changed({k: v for k, v in rec.items() if k in now}, now)


def say(keys: list[str], recorded: dict) -> str:
    """``data.path (mine.csv)``, for a refusal's sentence."""
    def name(k):
        entry = recorded.get(k)
        if _is_hub(entry):
            return f"hub {entry.get('type', 'model')} {entry['hub']}"
        return os.path.basename(str(entry.get("path", "")).rstrip("/")) if isinstance(entry, dict) else "?"
    return ", ".join(f"{k} ({name(k)})" for k in keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
