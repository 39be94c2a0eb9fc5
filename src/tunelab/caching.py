"""One rule for every on-disk cache: an entry is found by its key and trusted by its description.

tunelab caches what seeds of a sweep would otherwise recompute: tokenised splits
(``tunelab.data.datamodule``), frozen-encoder features and frozen-prefix hidden states
(``tunelab.models.cache``). A cache that serves an entry built from other inputs gives silently
wrong results — the worst bug a research tool can have (a tokenisation cache once keyed on tag
*strings* but not on the tag -> id list handed one file's label ids to another). So every cache
follows this module:

* the reader builds the **description** of the entry it needs: every input the entry is a
  function of (tokenizer content, max length, label -> id list, model weights' identity,
  pooling, depth, dtype, library versions, the exact texts, ...), as plain JSON data;
* the entry's name is a hash of that description (:func:`entry_name`), and the description is
  stored beside the data (:func:`write_description`);
* on every read the stored description must equal the reader's (:func:`check`): a difference —
  a field the name's hash missed, a truncated-hash collision, an entry from an older tunelab, a
  half-written entry — is a miss, logged with the first field that differs, never a hit.

Writers write the data first and the description last, each atomically, so a reader that finds
a description finds complete data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Optional

from tunelab.io import atomic_write

log = logging.getLogger("tunelab")

# Bump to retire every entry written by an older tunelab (its descriptions then differ).
CACHE_FORMAT = 2
DESCRIPTION = "description.json"


def canonical(desc: dict) -> str:
    """The description as canonical JSON (sorted keys; what is hashed and stored)."""
    return json.dumps({"format": CACHE_FORMAT, **desc}, sort_keys=True, default=str, separators=(",", ":"))


def entry_name(prefix: str, desc: dict) -> str:
    """``<prefix>-<sha256 of the description>[:32]``: where the entry lives."""
    return f"{prefix}-{hashlib.sha256(canonical(desc).encode()).hexdigest()[:32]}"


def description_path(entry: Path) -> Path:
    """A folder entry keeps it inside; a file entry beside it (``<file>.description.json``)."""
    return entry / DESCRIPTION if entry.is_dir() else entry.with_name(entry.name + "." + DESCRIPTION)


def write_description(entry: Path, desc: dict) -> None:
    """Store ``desc`` for ``entry`` (atomically); call it after the data is in place (a folder
    entry: inside its temporary folder, before that is renamed into place)."""
    atomic_write(description_path(entry), lambda f: f.write(canonical(desc)), what="cache description ")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{path}.{k}" if path else k)
    return path or "(whole description)"


def check(entry: Path, desc: dict) -> Optional[str]:
    """None when ``entry`` holds what ``desc`` describes; else why it must not be used."""
    p = description_path(entry)
    try:
        stored = json.loads(p.read_text())
    except FileNotFoundError:
        return "no stored description (an entry of an older tunelab, or one being written)"
    except (OSError, ValueError) as e:
        return f"unreadable description ({type(e).__name__})"
    want = json.loads(canonical(desc))
    if stored != want:
        return f"built from other inputs (first difference: {_first_difference(stored, want)})"
    return None


def usable(entry: Path, desc: dict, what: str) -> bool:
    """Does ``entry`` exist and hold what ``desc`` describes? A mismatch is logged and is a miss."""
    if not entry.exists():
        return False
    why = check(entry, desc)
    if why is not None:
        log.info(f"[tunelab] {what} cache entry {entry.name} not used: {why}; recomputing")
        return False
    return True


def digest(data: Any) -> str:
    """sha256 of canonical JSON of ``data`` (for large parts of a description: texts, vocabularies)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8", "surrogatepass")).hexdigest()


def tokenizer_identity(tokenizer) -> dict:
    """What a tokenizer's output depends on: its class, its full serialised state (a fast
    tokenizer's JSON holds normaliser, pre-tokeniser, vocabulary and merges), the special tokens
    and the options passed to it. Two folders with the same name but other files differ here."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Without the call settings the backend keeps from its last call (truncation and padding
        # lengths): they change as the tokenizer is used, its vocabulary and rules do not.
        state = json.loads(backend.to_str())
        state.pop("truncation", None), state.pop("padding", None)
        content = digest(state)
    else:
        content = digest(_slow_tokenizer_state(tokenizer))
    init = getattr(tokenizer, "init_kwargs", {}) or {}
    options = {k: init.get(k) for k in ("do_lower_case", "add_prefix_space", "strip_accents",
                                        "tokenize_chinese_chars", "model_max_length")}
    return {"class": type(tokenizer).__name__, "content": content, "size": len(tokenizer),
            # which columns it returns (a DistilBERT folder's copy of BERT's tokenizer has no token_type_ids)
            "inputs": list(getattr(tokenizer, "model_input_names", [])),
            "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
            "padding_side": getattr(tokenizer, "padding_side", None),
            "truncation_side": getattr(tokenizer, "truncation_side", None), "options": options}


def _slow_tokenizer_state(tokenizer) -> dict:
    """A Python ("slow") tokenizer has no serialised state: its vocabulary alone misses the
    rules that split words — BPE merges, a SentencePiece model's normaliser and pieces' scores —
    so those and the bytes of every file it was loaded from count too. (Two GPT-2 tokenizers
    with one vocabulary and other merges give other ids for the same text.)"""
    state: dict = {"vocab": sorted(tokenizer.get_vocab().items())}
    ranks = getattr(tokenizer, "bpe_ranks", None)
    if ranks:
        state["merges"] = sorted((" ".join(map(str, pair)), int(rank)) for pair, rank in ranks.items())
    sp = getattr(tokenizer, "sp_model", None)
    if sp is not None and hasattr(sp, "serialized_model_proto"):
        state["sentencepiece"] = hashlib.sha256(sp.serialized_model_proto()).hexdigest()
    files = {}
    for attr in sorted(getattr(tokenizer, "vocab_files_names", None) or {}):
        path = getattr(tokenizer, attr, None)
        if isinstance(path, (str, Path)) and Path(path).is_file():
            files[attr] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    state["files"] = files
    return state


def tokenizer_versions() -> dict:
    """The libraries token ids depend on besides the tokenizer's files: its Rust core and the
    transformers code around it (special tokens, truncation, word ids)."""
    import tokenizers
    import transformers

    return {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__}


def library_versions() -> dict:
    """The libraries an encoder's outputs depend on: the numerics and the token ids."""
    import torch

    return {"torch": torch.__version__, **tokenizer_versions()}
