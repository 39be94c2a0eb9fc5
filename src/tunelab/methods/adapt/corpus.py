"""The unlabelled texts of the masked-LM stage, and the rule that keeps them honest.

``tapt`` reads the task's own *training* texts (exactly the rows stage 2 trains on, before any
augmentation); ``dapt`` reads a domain corpus: a data config by name (its train split only: its
test split may be someone's evaluation set) or a ``.txt`` / ``.jsonl`` / ``.csv`` / ``.tsv``
file. Whatever the source, a corpus text equal to one of the task's validation or test texts is
dropped (and counted): stage 1 must never see what stage 2 is evaluated on.

Config-only rules (``tapt`` takes no ``adapt.corpus``, ``dapt`` needs one) are checked before any
of this runs, by :func:`tunelab.validation.check_adapt`; what needs the file system or the
config search path (a missing file, an unknown data config) is checked here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from tunelab import config as _config
from tunelab.errors import ConfigError, DataError


def texts_of(df: pd.DataFrame) -> list[str]:
    """The texts of a split: its ``text`` column, or its ``tokens`` joined by spaces (NER)."""
    if "text" in df.columns:
        return df["text"].astype(str).tolist()
    if "tokens" in df.columns:
        return [" ".join(map(str, t)) for t in df["tokens"]]
    raise DataError(f"no text column among {list(df.columns)}")


def norm(t: str) -> str:
    """Whitespace-normalised text: the key two texts are compared by when deduplicating."""
    return " ".join(str(t).split())


def task_splits(cfg: DictConfig):
    """The labelled task's splits exactly as stage 2 builds them (no augmentation applied)."""
    from tunelab.methods.shared.data import build_datamodule

    return build_datamodule(cfg, None).load()


def _data_splits(name: str):
    """The splits of the data config ``name`` (composed by Hydra; unknown names: ConfigError)."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    dc = _config.compose_option("data", name)
    return make_splits(load_raw(dc, "mlm"), dc, "mlm")


def _file_corpus(path: Path, a: DictConfig) -> list[str]:
    from tunelab.data.sources import load_raw

    suffix = path.suffix.lower()
    if suffix == ".txt":
        try:
            lines = path.read_text(encoding=a.encoding).splitlines()
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not valid {a.encoding} (byte {e.start}); set adapt.encoding.") from None
        return [ln.strip() for ln in lines if ln.strip()]
    if suffix in (".jsonl", ".json", ".csv", ".tsv"):
        # A data config built here (not a YAML): the file is read by the same loaders as data=.
        node = OmegaConf.merge(OmegaConf.structured(_config.DataConfig), {
            "name": "adapt.corpus", "source": "jsonl" if suffix in (".jsonl", ".json") else "csv",
            "path": str(path), "text_column": a.text_column, "encoding": a.encoding,
            "delimiter": "\t" if suffix == ".tsv" else None})
        return texts_of(load_raw(node, "mlm").train)
    raise ConfigError(f"adapt.corpus={str(path)!r}: unsupported file type '{suffix}' "
                      f"(use .txt with one text per line, .jsonl, .csv or .tsv).")


def corpus_texts(cfg: DictConfig, task=None) -> tuple[list[str], str]:
    """``(texts, description)`` of the unlabelled MLM corpus for ``adapt.name``.

    ``task``: the task's splits when already loaded (tapt reads their train split). The config
    has passed :func:`tunelab.validation.check_adapt`: tapt has no corpus, dapt has one.
    """
    from tunelab.locate import resolve_local

    a = cfg.adapt
    if a.name == "tapt":
        return texts_of(task.train if task is not None else task_splits(cfg).train), f"tapt:{cfg.data.name}:train"
    spec = str(a.corpus)
    local = resolve_local(spec)
    if local is not None and local.is_file():
        return _file_corpus(local, a), f"file:{local}"
    if "/" in spec or "." in Path(spec).name:
        raise ConfigError(f"adapt.corpus={spec!r}: file not found (relative paths are taken from "
                          f"the launch dir).")
    return texts_of(_data_splits(spec).train), f"data:{spec}:train"


def prepare_corpus(texts: list[str], cfg: DictConfig, forbidden: set[str]) -> dict:
    """Drop empties and texts equal to a task val/test text (``forbidden``: their :func:`norm`);
    cap at ``adapt.max_texts``; split off the held-out part.

    Both draws are seeded by ``data.split_seed``, so every seed of a study adapts on the same
    texts and measures perplexity on the same held-out part.
    """
    a = cfg.adapt
    clean = [t for t in (str(x) for x in texts) if t.strip()]
    kept = [t for t in clean if norm(t) not in forbidden]
    n_overlap = len(clean) - len(kept)
    rng = np.random.RandomState(int(cfg.data.split_seed))
    if a.max_texts is not None and len(kept) > a.max_texts:
        idx = np.sort(rng.choice(len(kept), size=int(a.max_texts), replace=False))
        kept = [kept[i] for i in idx]
    if len(kept) < 2:
        raise DataError(f"adapt={a.name}: the MLM corpus has {len(kept)} usable text(s) "
                        f"after removing {n_overlap} that also occur in the task's val/test splits.")
    n_hold = min(max(1, int(round(len(kept) * a.heldout_size))), int(a.max_heldout), len(kept) - 1)
    perm = np.random.RandomState(int(cfg.data.split_seed) + 7).permutation(len(kept))
    held = [kept[i] for i in sorted(perm[:n_hold])]
    train = [kept[i] for i in sorted(perm[n_hold:])]
    return {"train": train, "heldout": held, "n_removed_overlap": n_overlap, "n_empty": len(texts) - len(clean)}


def original_texts(cfg: DictConfig, task, corpus_train: list[str]) -> list[str]:
    """Held-out texts of ``adapt.eval_original`` (the forgetting check): that data config's test
    split (the task's own test texts when it names the task's data), minus texts the MLM stage
    trains on, capped at ``adapt.max_heldout``."""
    a = cfg.adapt
    if a.eval_original == cfg.data.name:
        held = texts_of(task.test)  # the task's own test texts, as configured here
    else:
        held = texts_of(_data_splits(str(a.eval_original)).test)
    seen = {norm(t) for t in corpus_train}
    texts = [t for t in held if t.strip() and norm(t) not in seen][: int(a.max_heldout)]
    if not texts:
        raise DataError(f"adapt.eval_original={a.eval_original!r}: no held-out texts left to score.")
    return texts
