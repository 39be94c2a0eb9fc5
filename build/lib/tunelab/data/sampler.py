"""Length-grouped batching: batches of similar-length examples, in random order.

Why: with dynamic padding every batch is padded to its longest member, so a batch that mixes a
5-token tweet with a 120-token one spends most of its compute on padding. Sorting the whole data
set by length would remove the padding but would also make batches deterministic and correlated
with length (and so with label or source), which hurts optimisation. The compromise used here is
the one popularised by fairseq / ``transformers``' ``group_by_length``: shuffle, cut the
permutation into large *chunks* (``batch_size * bucket_size_multiplier`` examples), sort each
chunk by length, cut it into batches, then shuffle the order of all batches. Which examples meet
in a batch is still random at the chunk level, padding drops sharply, and the batch order is
random. For evaluation (``shuffle=False``) the data are simply sorted by length, longest first
(the biggest batch comes first, so an out-of-memory error shows up at once, not at the end).

With ``bucket_size_multiplier=1`` each chunk is one batch and sorting inside it changes nothing:
that is ordinary random batching, the baseline for measuring the effect of grouping.

Determinism: the permutation is a pure function of ``(seed, epoch)`` (NumPy's ``default_rng``
seeded with both), so every DDP rank computes the same global batch list without
communication, a run is repeatable, and ``set_epoch`` gives each epoch a new order.

Using it from Lightning:

* Lightning calls ``set_epoch`` on ``dataloader.sampler`` and ``dataloader.batch_sampler.sampler``
  (lightning 2.6 ``_set_sampler_epoch``), *not* on the batch sampler itself, so this class
  exposes a ``sampler`` attribute whose ``set_epoch`` forwards here. Without it every epoch
  would repeat epoch 0's order.
* Under DDP the sampler shards batches itself (``num_replicas``/``rank``, read from
  ``torch.distributed`` when not given). Lightning cannot inject its ``DistributedSampler`` into
  a custom batch sampler and raises a ``TypeError``; run with
  ``Trainer(use_distributed_sampler=False)``.
* Exact resume: see :meth:`LengthGroupedBatchSampler.state_dict`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["LengthGroupedBatchSampler", "batch_lengths", "padding_fraction"]


class _SetEpochHook:
    """What ``LengthGroupedBatchSampler.sampler`` returns: just ``set_epoch``, forwarded.

    Lightning looks for ``set_epoch`` on ``dataloader.batch_sampler.sampler``; this object is
    found there and is deliberately neither a ``RandomSampler`` nor a ``SequentialSampler``.
    """

    __slots__ = ("_owner",)

    def __init__(self, owner: LengthGroupedBatchSampler) -> None:
        self._owner = owner

    def set_epoch(self, epoch: int) -> None:
        self._owner.set_epoch(epoch)


def _as_lengths(lengths: Any) -> np.ndarray:
    if isinstance(lengths, np.ndarray):
        arr = lengths
    elif hasattr(lengths, "detach") and hasattr(lengths, "cpu"):  # a torch tensor
        arr = lengths.detach().cpu().numpy()
    elif isinstance(lengths, (list, tuple)):
        arr = np.asarray(lengths)
    elif hasattr(lengths, "__getitem__") and hasattr(lengths, "__len__"):
        # A lazy column (datasets >= 4 returns ``Column`` for ``ds["length"]``): slicing reads it
        # in one go, iterating it reads row by row (~2 s for 38k rows).
        arr = np.asarray(lengths[:])
    else:  # any other iterable
        arr = np.asarray(list(lengths))
    if arr.ndim != 1:
        raise ValueError(f"lengths must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(arr == np.floor(arr)):
            raise ValueError("lengths must be integers (token counts)")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise ValueError("lengths must be >= 0")
    return arr


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Yield lists of dataset indices whose lengths are similar (pass as ``batch_sampler=``).

    Args:
        lengths: one length per example (token count after truncation is what matters).
        batch_size: examples per batch (per rank under DDP).
        shuffle: True for training (chunked grouping, random batch order, new order per
            epoch); False for evaluation (sorted by length, longest first, same every time).
        seed: base of the ``(seed, epoch)`` permutation; must be >= 0.
        bucket_size_multiplier: chunk size in batches. Larger chunks mean more homogeneous
            batches but less randomness in which examples share a batch; 50 is a common choice.
            1 gives plain random batching.
        even_shards: False for evaluation under DDP: no padding, every example exactly once
            (see below). True (default): every rank gets the same number of batches.
        drop_last: drop the final incomplete batch (when shuffling, the examples dropped are
            the tail of the epoch's permutation, so which ones is random, not "the shortest"),
            and under DDP drop the batches that do not divide evenly among ranks instead of
            repeating some.
        num_replicas, rank: DDP world size and this process's rank. When None and
            ``torch.distributed`` is initialised they are read from it, else 1 and 0.

    Under DDP every rank builds the same global list of batches and takes every
    ``num_replicas``-th batch starting at ``rank``. For training without ``drop_last`` the list
    is padded by repeating batches from its start until it divides evenly (as
    ``DistributedSampler`` pads indices), so all ranks run the same number of steps and no
    collective waits forever. That padding would make evaluation count some examples twice, so
    for evaluation pass ``even_shards=False`` (with ``shuffle=False``; the datamodule does):
    each rank then takes every ``num_replicas``-th example of the length-sorted order, every
    example is counted exactly once, and shards may differ by one example (``drop_last`` is
    ignored there).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        bucket_size_multiplier: int = 50,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
        even_shards: bool = True,
    ) -> None:
        self.lengths = _as_lengths(lengths)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.bucket_size_multiplier = _check_int("bucket_size_multiplier",
                                                 bucket_size_multiplier, 1)  # fmt: skip
        self.seed = _check_int("seed", seed, 0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        if num_replicas is None or rank is None:
            world, this_rank = _distributed_world()
            num_replicas = world if num_replicas is None else num_replicas
            rank = this_rank if rank is None else rank
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"rank must be < num_replicas ({self.num_replicas}), got {rank}")
        self.even_shards = bool(even_shards)
        if not self.even_shards and self.shuffle:
            raise ValueError("even_shards=False is for evaluation (shuffle=False): training ranks "
                             "must all run the same number of steps")
        self.epoch = 0
        # Resume bookkeeping: batches of `self.epoch` handed out by the running/last iterator,
        # and batches to skip at the start of the next iterator (set by load_state_dict).
        self._yielded = 0
        self._skip = 0
        self.sampler = _SetEpochHook(self)

    # ---------------------------------------------------------------- sizes

    @property
    def num_samples(self) -> int:
        return len(self.lengths)

    def _num_global_batches(self) -> int:
        n = self.num_samples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        """Batches this rank yields in one full epoch (independent of any resume skip)."""
        if not self.even_shards and self.num_replicas > 1:
            return math.ceil(len(self._eval_indices()) / self.batch_size)
        total = self._num_global_batches()
        if self.drop_last:
            return total // self.num_replicas
        return math.ceil(total / self.num_replicas)

    # ---------------------------------------------------------------- epochs and batches

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iterator uses (shuffle=True only).

        A pending resume skip (from :meth:`load_state_dict`) belongs to the epoch it was saved
        in and is discarded when a different epoch is selected.
        """
        epoch = _check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self._skip = 0
            self._yielded = 0
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        """All batches of the current epoch, before sharding among ranks (same on every rank)."""
        bs = self.batch_size
        if not self.shuffle:
            # Stable sort on -length: longest first, ties keep index order.
            order = np.argsort(-self.lengths, kind="stable")
            if self.drop_last:
                order = order[: len(order) // bs * bs]
            return [order[i : i + bs].tolist() for i in range(0, len(order), bs)]

        rng = np.random.default_rng([self.seed, self.epoch])
        perm = rng.permutation(self.num_samples)
        if self.drop_last:
            perm = perm[: len(perm) // bs * bs]
        chunk = bs * self.bucket_size_multiplier
        batches: list[list[int]] = []
        for start in range(0, len(perm), chunk):
            part = perm[start : start + chunk]
            part = part[np.argsort(-self.lengths[part], kind="stable")]
            # chunk is a multiple of bs, so only the very last batch can be short.
            batches.extend(part[i : i + bs].tolist() for i in range(0, len(part), bs))
        return [batches[i] for i in rng.permutation(len(batches))]

    def _eval_indices(self) -> np.ndarray:
        # Evaluation under DDP: every example exactly once. Ranks take every num_replicas-th
        # example of the length-sorted order (so their batches have similar lengths and sizes),
        # with no padding: shards differ by at most one example, which Lightning's evaluation
        # loop tolerates (metrics are reduced once, at the end). Repeating batches to even them
        # out, as training does, would count some test examples twice.
        order = np.argsort(-self.lengths, kind="stable")
        return order[self.rank :: self.num_replicas]

    def rank_batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch, in order (before any resume skip)."""
        if not self.even_shards and self.num_replicas > 1:
            mine = self._eval_indices()
            bs = self.batch_size
            return [mine[i : i + bs].tolist() for i in range(0, len(mine), bs)]
        batches = self.global_batches()
        if self.num_replicas == 1:
            return batches
        per_rank = len(self)
        total = per_rank * self.num_replicas
        if total <= len(batches):
            batches = batches[:total]
        elif batches:
            repeats = math.ceil(total / len(batches))
            batches = (batches * repeats)[:total]
        return batches[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        # Lazy: the epoch's batch list and the resume skip are read at the *first* ``next()``,
        # not when the iterator is created. Lightning creates the training iterator before it
        # calls ``set_epoch`` on some paths (resuming from an epoch-end checkpoint), and before
        # a checkpoint's position is restored when ``configure_optimizers`` reads
        # ``trainer.estimated_stepping_batches``; an eager iterator would then replay a stale
        # epoch's order. Lightning fetches nothing ahead for sized loaders, so reading the state
        # at the first batch sees every set_epoch/load_state_dict made before training starts.
        # The count restarts now, though: a fresh iterator has handed out nothing beyond the skip.
        self._yielded = self._skip
        return self._generate()

    def _generate(self) -> Iterator[list[int]]:
        batches = self.rank_batches()
        start = min(self._skip, len(batches))
        self._skip = 0
        self._yielded = start
        for i in range(start, len(batches)):
            self._yielded = i + 1  # counted when handed out
            yield batches[i]

    # ---------------------------------------------------------------- exact resume

    def state_dict(self, *, consumed: int | None = None) -> dict[str, int]:
        """Where this epoch stands: ``{"epoch", "batches_yielded", "seed", "num_replicas"}``.

        ``batches_yielded`` counts the batches of ``epoch`` this sampler has handed to its
        consumer on this rank. A ``DataLoader`` with workers, and Lightning's data fetcher,
        fetch a few batches ahead of the training step, so that count can exceed what was
        trained on; pass ``consumed=`` (e.g. the trainer's completed-batch count for the epoch)
        to record that instead. Loading the state makes the next iterator of the same epoch skip
        that many batches and yield exactly the rest; the batches themselves are recomputed
        from ``(seed, epoch)``, so nothing but two integers needs saving.
        """
        done = self._yielded if consumed is None else _check_int("consumed", consumed, 0)
        return {"epoch": self.epoch, "batches_yielded": done, "seed": self.seed,
                "num_replicas": self.num_replicas}  # fmt: skip

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore :meth:`state_dict`'s position; the next ``iter()`` resumes mid-epoch.

        The seed and world size must match the saved ones, because the saved count refers to
        this rank's share of a batch list that depends on both.
        """
        for key in ("seed", "num_replicas"):
            if key in state and int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"cannot resume: state was saved with {key}={state[key]}, "
                    f"this sampler has {key}={getattr(self, key)}"
                )
        self.epoch = _check_int("epoch", state["epoch"], 0)
        self._skip = _check_int("batches_yielded", state["batches_yielded"], 0)
        self._yielded = self._skip


def _distributed_world() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch builds without distributed support
        return 1, 0
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


# -------------------------------------------------------------------- padding measurement


def batch_lengths(lengths: Sequence[int] | np.ndarray,
                  batches: Iterable[Sequence[int]]) -> list[list[int]]:  # fmt: skip
    """Map batches of indices to batches of lengths (input for :func:`padding_fraction`)."""
    arr = _as_lengths(lengths)
    return [arr[list(b)].tolist() for b in batches]


def padding_fraction(
    lengths_batches: Iterable[Sequence[int]],
    max_length: int | None = None,
    *,
    fixed: bool = False,
) -> float:
    """Fraction of the positions in the padded batches that are padding.

    ``fixed=False`` (dynamic padding, what ``DataCollatorWithPadding`` does): each batch is
    padded to its own longest member. ``fixed=True``: every example is padded to
    ``max_length`` (``padding="max_length"``), which needs ``max_length``. In both cases
    lengths above ``max_length`` count as ``max_length`` (they were truncated). Compute spent
    on a batch grows with its padded size, so this is the share of it that is wasted
    (attention cost grows faster, so the saving of length grouping is, if anything, larger).
    Returns 0.0 when there are no positions.
    """
    if fixed and max_length is None:
        raise ValueError("fixed=True pads to max_length, so max_length must be given")
    if max_length is not None:
        max_length = _check_int("max_length", max_length, 1)
    real = padded = 0
    for batch in lengths_batches:
        arr = _as_lengths(batch)
        if arr.size == 0:
            continue
        if max_length is not None:
            arr = np.minimum(arr, max_length)
        width = max_length if fixed else int(arr.max())
        real += int(arr.sum())
        padded += width * arr.size
    return 0.0 if padded == 0 else (padded - real) / padded
