"""Labels and deterministic train/val/test splits.

Splits depend on ``data.split_seed`` only, never on the run seed: every seed of a study is
evaluated on the same held-out examples, so the spread over seeds measures training
randomness, not which tweets happened to land in the test set.

Two checks on what the splits can tell: a validation or test split with fewer than
:data:`MIN_PER_CLASS` examples of a class is refused (its scores would be noise), and test
texts that also occur in the training split are counted in the run's data notes (the scores on
them are optimistic; duplicates are common in scraped corpora such as the packaged tweets).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from tunelab.data.labels import RARE_MIN, class_names, tag_names
from tunelab.data.shape import SOURCE_ROW
from tunelab.config import FILE_SOURCES
from tunelab.data.sources import Raw, TOKEN_TASKS, UNLABELLED_TASKS
from tunelab.errors import DataError

log = logging.getLogger("tunelab")
# The fewest examples of a class a validation or test split must hold for its metrics to mean
# anything (per-class F1 on one example is 0 or 1).
MIN_PER_CLASS = 2


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


def _frames(raw: Raw, names: tuple = ("train", "val", "test", "test_ood")) -> dict[str, pd.DataFrame]:
    """The splits among ``names`` that the source gave, by name."""
    return {s: getattr(raw, s) for s in names if getattr(raw, s, None) is not None}


def _apply_labels(raw: Raw, cfg: Any) -> list[str]:
    """Map, merge, drop and check labels in every split (tunelab.data.labels); return class
    names in index order."""
    frames = _frames(raw)
    names = class_names(frames, cfg, raw.notes)
    drop = set(map(str, cfg.drop_labels))
    if drop:
        for split, df in frames.items():
            mask = df["label"].isin(drop)
            raw.drop(f"{split}: label in data.drop_labels {sorted(drop)}", int(mask.sum()))
            frames[split] = df[~mask].reset_index(drop=True)
    known = set(names)
    for split, df in frames.items():
        unknown = ~df["label"].isin(known)
        if unknown.any():
            i = int(unknown.to_numpy().nonzero()[0][0])
            bad = sorted(set(df.loc[unknown, "label"]))[:5]
            # the file the split was read from, where one was (data.path=mine.csv), else the dataset
            key = {"train": "path", "val": "val_path", "test": "test_path", "test_ood": "ood_test_path"}[split]
            path = getattr(cfg, key, None)
            where = (f"data.ood_test_path={path}" if split == "test_ood" and path
                     else f"data.{key}={path} ({split} split)" if path and getattr(cfg, "source", None) in FILE_SOURCES
                     else f"data '{cfg.name}' ({split} split)")
            text = str(df["text"].iloc[i]) if "text" in df else ""
            shown = text if len(text) <= 60 else text[:60] + "..."
            quoted = f" ({shown!r})" if text else ""  # and its text
            # its row in the file where it came from one (filters have left out rows before it)
            at = f"row {int(df[SOURCE_ROW].iloc[i])}" if SOURCE_ROW in df else f"example {i}"
            raise DataError(
                f"{where}: {at}{quoted} has label "
                f"{df['label'].iloc[i]!r}, not in data.labels={names}. Unknown labels: {bad}. "
                f"Add them to data.labels, map them with data.label_map, or list them in data.drop_labels."
            )
    if len(names) < 2:
        dropped = sorted(map(str, getattr(cfg, "drop_labels", None) or []))
        fix = f" (after data.drop_labels={dropped}: drop fewer labels)" if dropped else ""
        raise DataError(f"data '{cfg.name}': {'only one class' if names else 'no class'} ({names}); classification "
                        f"needs at least two{fix}.")
    for split, df in frames.items():
        df["label"] = df["label"].map({n: i for i, n in enumerate(names)}).astype(int)
        setattr(raw, split, df)
    return names


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
        label_names = tag_names(_frames(raw, ("train", "val", "test")), cfg)
        for s in ("train", "val", "test"):
            df = getattr(raw, s)
            if df is not None:
                df["labels"] = df["tags"].map(lambda ts: [label_names.index(t) for t in ts])
        stratify = False
    elif task in UNLABELLED_TASKS:
        label_names, stratify = None, False
    else:
        label_names, stratify = _apply_labels(raw, cfg), True
    for s, df in _frames(raw).items():  # the file rows served the checks above
        if SOURCE_ROW in df:
            setattr(raw, s, df.drop(columns=SOURCE_ROW))
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
            no_test = name == "test" and raw.test is None and not cfg.test_size  # data.test_size=0 asked for none
            fix = ("set data.test_size above 0 (e.g. 0.1) or give data.test_path" if no_test else
                   "lower data.test_size or add data")
            raise DataError(f"data '{cfg.name}': the {name} split is empty; {fix}.")
    if stratify:  # one label per example
        every = (train, val, test)
        _check_measurable(val, label_names, cfg, "validation", "val_size", given=raw.val is not None, every=every)
        _check_measurable(test, label_names, cfg, "test", "test_size", given=raw.test is not None, every=every)
    _note_overlap(train, test, task, cfg, notes)
    if test_ood is not None:  # data.ood_test_path: another file may share tweets with the training data
        _note_overlap(train, test_ood, task, cfg, notes, "out-of-domain test")
    return Splits(train=train, val=val, test=test, label_names=label_names,
                  dropped=dict(raw.dropped), notes=notes, test_ood=test_ood)


def _check_measurable(df: pd.DataFrame, names: list[str], cfg: Any, split: str, size_key: str, given: bool,
                      every: tuple = ()) -> None:
    """A held-out split (when there is one) needs MIN_PER_CLASS examples of every class;
    ``given``: the source provided it as a file, so no setting makes it bigger. ``every``: all the
    splits, counted only when the check fails: a class in under RARE_MIN rows of all the data is
    likelier a typo that the rare-label rule (labels.py, which also needs < 0.5 % of the rows) let
    through in a small file, and the message says so."""
    if df.empty:
        return  # no validation split (data.val_size=0): nothing is measured on it
    counts = df["label"].value_counts()
    few = [(names[i], int(counts.get(i, 0))) for i in range(len(names)) if counts.get(i, 0) < MIN_PER_CLASS]
    if not few:
        return
    shown = ", ".join(f"{n!r}: {c}" for n, c in few)
    more = ("add examples of them to that file" if given else
            f"raise data.{size_key} (now {getattr(cfg, size_key)}) or data.max_eval_samples, or add data")
    totals = pd.concat([d["label"] for d in every if "label" in d]).value_counts() if every else None
    absent = [] if totals is None else [n for n, _ in few if int(totals.get(names.index(n), 0)) == 0]
    if absent:  # listed in data.labels, in no row: no setting of the split sizes helps
        raise DataError(f"data '{cfg.name}': data.labels lists {', '.join(map(repr, absent))}, which no row of the data "
                        f"has: remove {'it' if len(absent) == 1 else 'them'} from data.labels (or check "
                        f"data.label_column={getattr(cfg, 'label_column', None)}).")
    typos = [] if totals is None else [n for n, _ in few if int(totals.get(names.index(n), 0)) < RARE_MIN]
    typo = (f"; {', '.join(repr(n) for n in typos)} {'is' if len(typos) == 1 else 'are'} in under {RARE_MIN} rows "
            f"of all the data, so a typo is likelier than a class: fix the data, or map it with "
            f"+data.label_map={{{typos[0]}:<class>}}" if typos else "")
    raise DataError(f"data '{cfg.name}': the {split} split has fewer than {MIN_PER_CLASS} examples of class(es) "
                    f"{shown} ({len(df)} in all), too few to measure: {more}, or drop the class with "
                    f"data.drop_labels=[{','.join(n for n, _ in few)}]{typo}.")


def _texts(df: pd.DataFrame, task: str) -> pd.Series:
    return df["tokens"].map(" ".join) if task in TOKEN_TASKS else df["text"].astype(str)


def _note_overlap(train: pd.DataFrame, test: pd.DataFrame, task: str, cfg: Any, notes: list[str],
                  what: str = "test") -> None:
    """Count the ``what`` examples whose text is also a training text (exact match, whitespace-trimmed)."""
    seen = set(_texts(train, task).str.strip())
    n = int(_texts(test, task).str.strip().isin(seen).sum())
    if n:
        msg = (f"data '{cfg.name}': {n} of {len(test):,} {what} texts also occur in the training split (exact "
               f"duplicates): scores on them are optimistic")
        log.warning(f"[tunelab] {msg}")
        notes.append(msg)


def majority_rate(splits: Splits, split: str = "test") -> Optional[float]:
    """Accuracy on ``split`` (test, or test_ood) of always predicting the most frequent training class."""
    if splits.label_names is None or "label" not in splits.train:
        return None
    major = int(np.bincount(splits.train["label"]).argmax())
    return float((getattr(splits, split)["label"] == major).mean())
