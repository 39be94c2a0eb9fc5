"""Per-example test predictions: ``predictions.npz`` next to a job's ``results.json``.

Why a job keeps its predictions and not only its scores: two arms evaluated on the *same* test
examples can be compared example by example (McNemar, a paired bootstrap), the seeds of an arm
can be ensembled and their agreement measured (Dror et al. 2018/2019) — none of which the
scores alone allow. The report (``tunelab.report.paired``) reads these files.

What the file holds (numpy ``.npz``, compressed; no pickled objects, so it loads with
``allow_pickle=False``):

* ``index``: the example's row number in the test split (``Splits.test``). The split depends on
  the data config and ``data.split_seed`` only, never on the run seed, so the same index is the
  same example in every job of a study; the report also checks that ``gold`` agrees before
  pairing two jobs;
* ``gold``, ``pred``: class ids (into ``label_names``);
* ``probs`` (optional): class probabilities, float16 in the file (3 significant digits is plenty
  for a mean-probability ensemble and keeps 10k examples x 60 jobs at a few MB; in memory they
  stay float32, so the job's own calibration metrics see the unrounded values);
* the other splits the job scored, each the same four arrays under ``<split>.<name>``
  (``val.index``, ``val.gold``, ``val.pred``, ``val.probs``): the validation predictions of the
  tested weights, which temperature scaling is fitted on (``tunelab.calibration``);
* token classification: ``gold``/``pred`` are the tag ids of all words, one sequence after the
  other, and ``offsets`` (length n+1) says where sequence ``i`` starts and ends.

Rows are stored sorted by ``index`` (the evaluation loader visits them longest first).
Written atomically through :func:`tunelab.io.atomic_write`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tunelab.io import atomic_write

PREDICTIONS_FILE = "predictions.npz"


@dataclass
class Predictions:
    """One job's test predictions (see the module docstring for the meaning of each array)."""

    index: np.ndarray
    gold: np.ndarray
    pred: np.ndarray
    label_names: list[str]
    probs: Optional[np.ndarray] = None
    offsets: Optional[np.ndarray] = None  # token_cls: sequence boundaries into gold/pred
    split: str = "test"
    # Other splits scored by the same weights (seq_cls): split name -> its predictions.
    other: dict[str, Predictions] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "token_cls" if self.offsets is not None else "seq_cls"

    def __len__(self) -> int:
        return int(self.index.size)

    def with_split(self, name: str, p: Optional[Predictions]) -> Predictions:
        """These predictions with ``p`` kept as split ``name`` (unchanged when ``p`` is None)."""
        if p is not None:
            self.other[name] = Predictions(p.index, p.gold, p.pred, p.label_names, p.probs, p.offsets, name)
        return self

    def sorted(self) -> Predictions:
        """The rows in example order (a no-op when they already are)."""
        order = np.argsort(self.index, kind="stable")
        if np.all(order == np.arange(order.size)):
            return self
        if self.offsets is None:
            return Predictions(self.index[order], self.gold[order], self.pred[order], self.label_names,
                               None if self.probs is None else self.probs[order], None, self.split, self.other)
        seqs = [slice(self.offsets[i], self.offsets[i + 1]) for i in order]
        lengths = np.array([s.stop - s.start for s in seqs], dtype=np.int64)
        cat = (lambda a: np.concatenate([a[s] for s in seqs]) if seqs else a[:0])
        return Predictions(self.index[order], cat(self.gold), cat(self.pred), self.label_names, None,
                           np.concatenate([[0], np.cumsum(lengths)]), self.split)


def same_examples(a: Predictions, b: Predictions) -> bool:
    """Whether two jobs' predictions are on the same examples with the same labels: equal example
    indices, gold ids and label names (in order). The index is the row number in the split, so it
    alone does not tell two test sets apart, and gold ids into two different label orders are
    different labels: only all three together make two prediction vectors comparable row by row."""
    return (list(a.label_names) == list(b.label_names) and np.array_equal(a.index, b.index)
            and np.array_equal(a.gold, b.gold))


def for_classes(index, gold, pred, label_names: Sequence[str], probs=None) -> Predictions:
    """Sequence-classification predictions, sorted by example index."""
    n = len(label_names)
    small = np.int16 if n < 2**15 else np.int32
    return Predictions(np.asarray(index, dtype=np.int64), np.asarray(gold).astype(small),
                       np.asarray(pred).astype(small), [str(x) for x in label_names],
                       None if probs is None else np.asarray(probs, dtype=np.float32)).sorted()


def for_tags(index, gold_seqs: list[list[str]], pred_seqs: list[list[str]], label_names: Sequence[str]) -> Predictions:
    """Token-classification predictions (tag names per word), stored as ids + offsets."""
    names = [str(x) for x in label_names]
    ids = {name: i for i, name in enumerate(names)}
    lengths = [len(s) for s in gold_seqs]
    flat = (lambda seqs: np.array([ids[t] for s in seqs for t in s], dtype=np.int16))
    return Predictions(np.asarray(index, dtype=np.int64), flat(gold_seqs), flat(pred_seqs), names,
                       offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)).sorted()


def write(out_dir: Path, p: Predictions) -> Path:
    """``out_dir/predictions.npz``, atomically."""
    arrays = {"label_names": np.array(p.label_names, dtype=str), "split": np.array(p.split)}
    for prefix, q in [("", p), *((f"{name}.", q) for name, q in p.other.items())]:
        arrays.update({prefix + "index": q.index, prefix + "gold": q.gold, prefix + "pred": q.pred})
        if q.probs is not None:
            arrays[prefix + "probs"] = np.asarray(q.probs, dtype=np.float16)
        if q.offsets is not None:
            arrays[prefix + "offsets"] = q.offsets
    path = Path(out_dir) / PREDICTIONS_FILE
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write(path, lambda f: f.write(buf.getvalue()), binary=True, what="predictions ")
    return path


def read(path: Path) -> Predictions:
    """A predictions file as written by :func:`write` (raises OSError/ValueError/KeyError if unreadable)."""
    with np.load(Path(path), allow_pickle=False) as z:
        get = (lambda k: z[k] if k in z.files else None)
        names = [str(x) for x in z["label_names"]]
        other = {}
        for split in sorted({k.split(".", 1)[0] for k in z.files if "." in k}):
            other[split] = Predictions(z[f"{split}.index"], z[f"{split}.gold"], z[f"{split}.pred"], names,
                                       get(f"{split}.probs"), get(f"{split}.offsets"), split)
        return Predictions(z["index"], z["gold"], z["pred"], names, get("probs"), get("offsets"),
                           str(z["split"]) if "split" in z.files else "test", other)


def eval_order(loader) -> np.ndarray:
    """Dataset indices in the order an evaluation loader visits them (its batch sampler's order).

    The evaluation sampler is deterministic (sorted by length), so iterating it again gives the
    order the test pass used; under DDP each rank's sampler yields that rank's share.
    """
    sampler = getattr(loader, "batch_sampler", None)
    if sampler is None:
        return np.arange(len(loader.dataset))
    return np.fromiter((i for batch in sampler for i in batch), dtype=np.int64)
