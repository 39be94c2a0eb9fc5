"""On-disk store of frozen-prefix hidden states: one entry per (model, tokens, depth, dtype).

An entry is a folder ``<cache_dir>/prefix/<key>/`` holding

  * ``states.npy``: every example's ``[length_i, hidden]`` states stacked into one
    ``[sum(length_i), hidden]`` array (float32, or bfloat16 stored as its 16-bit pattern in an int16 array:
    numpy has no bfloat16), opened memory-mapped, so a sweep's jobs share the page cache and a
    job's memory does not grow with the data;
  * ``offsets.npy``: ``[n + 1]`` int64 row offsets; example ``i`` is ``states[offsets[i]:offsets[i+1]]``.

Variable length per example because tweets are ~25 tokens: padding every example to
``max_length`` would store (and read) mostly zeros. The folder is written under a temporary
name and renamed into place, so jobs of a sweep may race to fill an entry and a reader never
sees half of one (the loser of the race uses the winner's entry).

and ``description.json``: what the states were built from (:mod:`tunelab.caching`, checked on
every read; the entry's name is its hash): the model as for the ``freeze=all`` feature cache
(:func:`tunelab.models.cache.model_identity.model_identity`: source files, config overrides, the seed
when weights are drawn at random, library versions), the tokenizer's content, ``max_length``,
the exact texts, the depth ``k``, the attention implementation and the storage dtype.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

DTYPES = {"float32": np.float32, "bfloat16": np.int16}


class PrefixStates:
    """One split's cached states, memory-mapped; ``batch(idx)`` gives examples as padded float32."""

    def __init__(self, path: Path, dtype: str):
        self.path, self.dtype = path, dtype
        self.states = np.load(path / "states.npy", mmap_mode="r")
        self.offsets = np.load(path / "offsets.npy")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def batch(self, idx) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples ``idx`` zero-padded to the longest: ([B, T, H] float32, lengths [B]).

        One copy from the memory map into the padded batch (a training step's fixed cost: it
        runs in the main process between steps)."""
        idx = np.asarray(idx, dtype=np.int64)
        starts, ends = self.offsets[idx], self.offsets[idx + 1]
        lengths = ends - starts
        out = np.zeros((len(idx), int(lengths.max()), self.states.shape[1]), dtype=self.states.dtype)
        for r in range(len(idx)):
            out[r, :lengths[r]] = self.states[starts[r]:ends[r]]
        t = torch.from_numpy(out)
        return (t.view(torch.bfloat16).float() if self.dtype == "bfloat16" else t), torch.from_numpy(lengths)

    def nbytes_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())


def open_entry(path: Path, dtype: str, n: int) -> Optional[PrefixStates]:
    """The entry at ``path`` if it is complete and holds ``n`` examples, else None."""
    try:
        st = PrefixStates(path, dtype)
    except (OSError, ValueError, EOFError):
        return None
    if len(st) != n or st.states.dtype != DTYPES[dtype] or st.offsets[-1] != st.states.shape[0]:
        return None
    return st


def write_entry(path: Path, dtype: str, lengths: np.ndarray, hidden: int, batches, description: dict) -> PrefixStates:
    """Fill an entry from ``batches`` of ``(indices, [B, T, H] float32 tensor, lengths)``; its
    ``description`` (tunelab.caching) goes in last, before the folder is renamed into place."""
    from tunelab.caching import check, write_description

    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=".tmp-"))
    try:
        states = np.lib.format.open_memmap(tmp / "states.npy", mode="w+", dtype=DTYPES[dtype],
                                           shape=(int(offsets[-1]), hidden))
        for idx, h, lens in batches:
            if dtype == "bfloat16":
                h = h.to(torch.bfloat16).view(torch.int16)
            h = h.numpy()
            for r, i in enumerate(idx):
                states[offsets[i]:offsets[i + 1]] = h[r, :lens[r]]
        states.flush()
        del states
        np.save(tmp / "offsets.npy", offsets)
        write_description(tmp, description)
        if path.exists() and check(path, description) is not None:
            shutil.rmtree(path, ignore_errors=True)  # an entry of other inputs: replaced
        try:
            os.replace(tmp, path)
        except OSError:  # another job of the sweep wrote it first: use theirs
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PrefixStates(path, dtype)
