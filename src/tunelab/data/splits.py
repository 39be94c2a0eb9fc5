"""Labels and deterministic train/val/test splits.

Splits depend on ``data.split_seed`` only, never on the run seed: every seed of a study is
evaluated on the same held-out examples, so the spread over seeds measures training
randomness, not which tweets happened to land in the test set.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tunelab.data.sources import Raw, TOKEN_TASKS, UNLABELLED_TASKS
from tunelab.errors import DataError

log = logging.getLogger("tunelab")

# A label seen in fewer than max(RARE_MIN, RARE_FRACTION of the examples) looks like a typo
# (``postive``, ``B-persn``): when the labels are inferred rather than listed, such a label
# silently becomes an extra class, so it is reported loudly (log warning + results.json note).
RARE_MIN = 5
RARE_FRACTION = 0.005


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    label_names: Optional[list[str]]
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # The out-of-domain test split (tunelab.data.ood); None when none was asked for.
    test_ood: Optional[pd.DataFrame] = None

    @property
    def names(self) -> tuple[str, ...]:
        """The splits there are: train, val, test, and test_ood when asked for."""
        return ("train", "val", "test") + (("test_ood",) if self.test_ood is not None else ())

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.names}


def _apply_labels(raw: Raw, cfg: Any) -> list[str]:
    """Map, drop and check labels in every split; return class names in index order."""
    frames = {s: getattr(raw, s) for s in ("train", "val", "test", "test_ood") if getattr(raw, s, None) is not None}
    if cfg.label_map:
        mapping = {str(k): str(v) for k, v in cfg.label_map.items()}
        for df in frames.values():
            df["label"] = df["label"].map(lambda x: mapping.get(x, x))
    drop = set(map(str, cfg.drop_labels))
    if drop:
        for split, df in frames.items():
            mask = df["label"].isin(drop)
            raw.drop(f"{split}: label in data.drop_labels {sorted(drop)}", int(mask.sum()))
            frames[split] = df[~mask].reset_index(drop=True)
            setattr(raw, split, frames[split])
    if cfg.labels is not None:
        names = [str(x) for x in cfg.labels]
        if len(set(names)) != len(names):
            raise DataError(f"data.labels has duplicates: {names}.")
    else:
        names = sorted(set(frames["train"]["label"]))
        _warn_rare(raw, Counter(frames["train"]["label"]), "label", "data.labels=[...] (then it is an error "
                   "naming the row) or map it with data.label_map")
    known = set(names)
    for split, df in frames.items():
        unknown = ~df["label"].isin(known)
        if unknown.any():
            i = int(unknown.to_numpy().nonzero()[0][0])
            bad = sorted(set(df.loc[unknown, "label"]))[:5]
            path = getattr(cfg, "ood_test_path", None)
            where = (f"data.ood_test_path={path}" if split == "test_ood" and path
                     else f"data '{cfg.name}' ({split} split)")
            raise DataError(
                f"{where}: example {i} has label "
                f"{df['label'].iloc[i]!r}, not in data.labels={names}. Unknown labels: {bad}. "
                f"Add them to data.labels, map them with data.label_map, or list them in data.drop_labels."
            )
    if len(names) < 2:
        raise DataError(f"data '{cfg.name}': only one class ({names}); classification needs at least two.")
    for split, df in frames.items():
        df["label"] = df["label"].map({n: i for i, n in enumerate(names)}).astype(int)
        setattr(raw, split, df)
    return names


def _warn_rare(raw: Raw, counts: Counter, what: str, fix: str) -> None:
    total = sum(counts.values())
    limit = max(RARE_MIN, RARE_FRACTION * total)
    rare = sorted((c, k) for k, c in counts.items() if c < limit)
    if not rare or len(rare) == len(counts):
        return
    common = ", ".join(f"{k!r} {c:,}" for k, c in counts.most_common(3))
    msg = (f"rare {what}(s) that may be typos: " + ", ".join(f"{k!r} ({c} of {total:,})" for c, k in rare)
           + f"; most common: {common}. If they are typos, fix the data or set {fix}.")
    log.warning(f"[tunelab] WARNING: {msg}")
    raw.notes.append(msg)


def _tag_names(raw: Raw) -> list[str]:
    tags = set()
    types: Counter = Counter()
    for s in ("train", "val", "test"):
        df = getattr(raw, s)
        if df is not None:
            for t in df["tags"]:
                tags.update(t)
                types.update(x[2:] if x[:2] in ("B-", "I-") else x for x in t if x != "O")
    _warn_rare(raw, types, "entity type", "the tags in the file")
    # O first, then entity tags sorted by type then B/I, so ids are stable across runs.
    rest = sorted(tags - {"O"}, key=lambda t: (t[2:], t[:1]))
    return ["O"] + rest


def _split(df: pd.DataFrame, size: float, seed: int, stratify: bool, what: str, notes: list[str]):
    if size <= 0:
        return df, df.iloc[:0]
    n_hold = max(1, int(round(len(df) * size)))
    if n_hold >= len(df):
        raise DataError(f"{what}: {len(df)} examples are too few to hold out {size:.0%}.")
    strat = df["label"] if stratify else None
    if strat is not None and (strat.value_counts().min() < 2 or n_hold < strat.nunique()):
        notes.append(f"{what}: too few examples per class to stratify; split at random instead")
        strat = None
    a, b = train_test_split(df, test_size=n_hold, random_state=seed, shuffle=True, stratify=strat)
    return a.reset_index(drop=True), b.reset_index(drop=True)


def _subsample(df: pd.DataFrame, n: Optional[int], seed: int, stratify: bool) -> pd.DataFrame:
    if n is None or n >= len(df):
        return df
    strat = df["label"] if stratify and df["label"].value_counts().min() >= 2 and n >= df["label"].nunique() else None
    keep, _ = train_test_split(df, train_size=n, random_state=seed, shuffle=True, stratify=strat)
    return keep.reset_index(drop=True)


def _balance(df: Optional[pd.DataFrame], seed: int, what: str, notes: list[str]) -> Optional[pd.DataFrame]:
    """Keep the rarest class's count of every class (a seeded draw; rows keep their order)."""
    if df is None or df.empty:
        return df
    counts = df["label"].value_counts()
    n = int(counts.min())
    if (counts == n).all():
        return df
    keep = [g.sample(n=n, random_state=seed) for _, g in df.groupby("label", sort=True)]
    out = pd.concat(keep).sort_index().reset_index(drop=True)
    notes.append(f"{what}: classes balanced to {n} each ({len(df) - len(out)} examples left out)")
    return out


def make_splits(raw: Raw, cfg: Any, task: str) -> Splits:
    """Labels -> ids, then hold out test and val (stratified) unless the source provides them."""
    if task in TOKEN_TASKS:
        label_names = _tag_names(raw)
        for s in ("train", "val", "test"):
            df = getattr(raw, s)
            if df is not None:
                df["labels"] = df["tags"].map(lambda ts: [label_names.index(t) for t in ts])
        stratify = False
    elif task in UNLABELLED_TASKS:
        label_names, stratify = None, False
    else:
        label_names, stratify = _apply_labels(raw, cfg), True
    notes = list(raw.notes)
    seed = cfg.split_seed
    if getattr(cfg, "balance_classes", False):
        if not stratify:
            raise DataError(f"data '{cfg.name}': data.balance_classes=true needs one label per example "
                            f"(task seq_cls), not task {task}; remove it.")
        for s in ("train", "val", "test", "test_ood"):
            setattr(raw, s, _balance(getattr(raw, s), seed + 5, f"data '{cfg.name}' {s}", notes))
    train = raw.train
    test = raw.test
    if test is None:
        train, test = _split(train, cfg.test_size, seed, stratify, f"data '{cfg.name}' test split", notes)
    val = raw.val
    if val is None:
        # The fraction is of the whole data set, so val_size means the same with or without a
        # separate test file.
        frac = cfg.val_size / max(1e-9, 1.0 - (cfg.test_size if raw.test is None else 0.0))
        train, val = _split(train, frac, seed + 1, stratify, f"data '{cfg.name}' validation split", notes)
    train = _subsample(train, cfg.max_train_samples, seed + 2, stratify)
    val = _subsample(val, cfg.max_eval_samples, seed + 3, stratify)
    test = _subsample(test, cfg.max_eval_samples, seed + 4, stratify)
    # The out-of-domain split (tunelab.data.ood): capped like the in-domain evaluation splits.
    test_ood = raw.test_ood
    if test_ood is not None:
        test_ood = _subsample(test_ood, cfg.max_eval_samples, seed + 6, stratify)
        if test_ood.empty:
            raise DataError(f"data '{cfg.name}': the out-of-domain test split is empty after data.drop_labels; "
                            f"choose other data.ood_domains / data.ood_test_path.")
    for name, df in (("train", train), ("test", test)):
        if df.empty:
            raise DataError(f"data '{cfg.name}': the {name} split is empty; lower data.test_size or add data.")
    return Splits(train=train, val=val, test=test, label_names=label_names,
                  dropped=dict(raw.dropped), notes=notes, test_ood=test_ood)


def majority_rate(splits: Splits, split: str = "test") -> Optional[float]:
    """Accuracy on ``split`` (test, or test_ood) of always predicting the most frequent training class."""
    if splits.label_names is None or "label" not in splits.train:
        return None
    major = int(np.bincount(splits.train["label"]).argmax())
    return float((getattr(splits, split)["label"] == major).mean())
