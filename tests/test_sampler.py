"""Tests for tunelab.data.sampler: coverage, determinism, homogeneity, DDP sharding, resume."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tunelab.data.sampler import LengthGroupedBatchSampler, batch_lengths, padding_fraction


@pytest.fixture(scope="module")
def lengths() -> np.ndarray:
    # Tweet-like: mostly short, a long tail; 1,003 so batches do not divide evenly.
    rng = np.random.default_rng(123)
    return np.clip(rng.lognormal(3.0, 0.6, size=1003).astype(int), 3, 200)


def _flat(batches):
    return [i for b in batches for i in b]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
def test_every_index_once_per_epoch(lengths, shuffle, drop_last):
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=shuffle, seed=0,
                                  bucket_size_multiplier=8, drop_last=drop_last)  # fmt: skip
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        flat = _flat(batches)
        assert len(flat) == len(set(flat))
        if drop_last:
            assert len(batches) == len(lengths) // 16
            assert all(len(b) == 16 for b in batches)
            assert len(flat) == len(lengths) // 16 * 16
        else:
            assert len(batches) == math.ceil(len(lengths) / 16)
            assert sorted(flat) == list(range(len(lengths)))
            assert sum(len(b) < 16 for b in batches) == 1


def test_shuffled_drop_last_drops_random_examples(lengths):
    """The dropped remainder is the permutation's tail, not systematically the shortest."""
    dropped = set()
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0, drop_last=True)
    for epoch in range(20):
        s.set_epoch(epoch)
        dropped |= set(range(len(lengths))) - set(_flat(s))
    assert len(dropped) > 3 * (len(lengths) % 16)


def test_eval_order_is_sorted_longest_first_and_fixed(lengths):
    s = LengthGroupedBatchSampler(lengths, 32, shuffle=False, seed=0)
    flat = _flat(list(s))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)
    s.set_epoch(5)
    assert _flat(list(s)) == flat


def test_reproducible_by_seed_and_epochs_differ(lengths):
    def epoch_batches(seed, epoch):
        s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert epoch_batches(0, 0) == epoch_batches(0, 0)
    assert epoch_batches(0, 0) != epoch_batches(1, 0)
    assert epoch_batches(0, 0) != epoch_batches(0, 1)
    # not only the batch order: the grouping of examples changes between epochs too
    groups = {frozenset(b) for b in epoch_batches(0, 0)}
    assert len(groups & {frozenset(b) for b in epoch_batches(0, 1)}) < len(groups) // 10
    # a sampler iterated twice without set_epoch repeats itself (like DistributedSampler)
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    assert list(s) == list(s)


def test_batches_are_length_homogeneous(lengths):
    grouped = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    random_batches = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0,
                                               bucket_size_multiplier=1)  # fmt: skip
    pad_grouped = padding_fraction(batch_lengths(lengths, grouped))
    pad_random = padding_fraction(batch_lengths(lengths, random_batches))
    assert pad_random > 0.3
    assert pad_grouped < pad_random / 4, (pad_grouped, pad_random)
    # ... while batch order is still random: consecutive batches' max lengths are not sorted
    maxima = [max(lengths[b]) for b in grouped]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_padding_fraction_by_hand():
    # widths 4 and 3: 8 + 3 positions, 6 + 3 real
    assert padding_fraction([[2, 4], [3]]) == pytest.approx(2 / 11)
    # fixed padding to 10, truncating the 12 to 10
    assert padding_fraction([[2, 12], [3]], 10, fixed=True) == pytest.approx(1 - 15 / 30)
    # dynamic padding with truncation at 10: widths 10 and 3
    assert padding_fraction([[2, 12], [3]], 10) == pytest.approx(1 - 15 / 23)
    assert padding_fraction([]) == 0.0
    with pytest.raises(ValueError, match="max_length"):
        padding_fraction([[1]], fixed=True)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_ranks_disjoint_equal_and_complete(lengths, shuffle, drop_last, world):
    samplers = [
        LengthGroupedBatchSampler(lengths, 16, shuffle=shuffle, seed=3, drop_last=drop_last,
                                  num_replicas=world, rank=r)  # fmt: skip
        for r in range(world)
    ]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in samplers]
        n_batches = {len(b) for b in per_rank}
        assert n_batches == {len(samplers[0])}  # equal share: same number of steps
        global_batches = samplers[0].global_batches()
        assert all(s.global_batches() == global_batches for s in samplers)
        # before padding, ranks hold disjoint batches that together are all of them
        unique = len(global_batches)
        # (rank r's k-th batch is position r + world * k of the padded global list)
        owned = [b for r in range(world) for k, b in enumerate(per_rank[r])
                 if r + world * k < unique]  # fmt: skip
        assert sorted(map(sorted, owned)) == sorted(map(sorted, global_batches[: len(owned)]))
        counts = Counter(i for b in owned for i in b)
        if drop_last:
            assert len(samplers[0]) == unique // world
            assert max(counts.values()) == 1
            assert sum(counts.values()) == unique // world * world * 16
        else:
            assert len(samplers[0]) == math.ceil(unique / world)
            assert sorted(counts) == list(range(len(lengths)))
            assert set(counts.values()) == {1}
            # the padding repeats whole batches from the start of the list
            padded = [b for r in range(world) for k, b in enumerate(per_rank[r])
                      if r + world * k >= unique]  # fmt: skip
            assert len(padded) == len(samplers[0]) * world - unique
            assert all(b in global_batches for b in padded)


def test_ddp_more_ranks_than_batches():
    s = [LengthGroupedBatchSampler([5, 6, 7], 2, shuffle=True, seed=0, num_replicas=4, rank=r)
         for r in range(4)]  # fmt: skip
    per_rank = [list(x) for x in s]
    assert all(len(b) == 1 for b in per_rank)
    assert sorted(_flat(per_rank[0] + per_rank[1])) == [0, 1, 2]


def test_ddp_settings_read_from_torch_distributed(monkeypatch):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(dist, "get_rank", lambda: 2)
    s = LengthGroupedBatchSampler(list(range(100)), 10, shuffle=False, seed=0)
    assert (s.num_replicas, s.rank) == (4, 2)
    s = LengthGroupedBatchSampler(list(range(100)), 10, shuffle=False, seed=0, num_replicas=2,
                                  rank=1)  # fmt: skip
    assert (s.num_replicas, s.rank) == (2, 1)


def test_single_process_defaults():
    s = LengthGroupedBatchSampler([1, 2, 3], 2, shuffle=False, seed=0)
    assert (s.num_replicas, s.rank) == (1, 0)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("stop_after", [0, 1, 7, 31, 32])
def test_resume_via_state_dict_yields_the_rest_exactly(lengths, shuffle, stop_after):
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=shuffle, seed=11, num_replicas=2, rank=1)
    s.set_epoch(2)
    full = list(s)
    assert len(full) == 32  # ceil(ceil(1003 / 16) / 2)
    it = iter(s)
    seen = list(itertools.islice(it, stop_after))
    state = s.state_dict()
    assert state["epoch"] == 2 and state["batches_yielded"] == stop_after

    fresh = LengthGroupedBatchSampler(lengths, 16, shuffle=shuffle, seed=11, num_replicas=2,
                                      rank=1)  # fmt: skip
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # what Lightning does at the start of the resumed epoch: keeps the skip
    rest = list(fresh)
    assert seen + rest == full
    assert len(fresh) == len(full)  # __len__ stays the full epoch
    fresh.set_epoch(3)
    assert len(list(fresh)) == len(full)  # the next epoch is complete again


def test_resume_with_consumed_count_and_stale_epoch(lengths):
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    s.set_epoch(1)
    full = list(s)
    it = iter(s)
    list(itertools.islice(it, 10))  # a prefetching loader pulled 10 ...
    state = s.state_dict(consumed=8)  # ... but only 8 were trained on
    fresh = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    fresh.load_state_dict(state)
    assert list(fresh) == full[8:]
    # a skip saved for epoch 1 does not apply to another epoch
    fresh.load_state_dict(state)
    fresh.set_epoch(2)
    assert len(list(fresh)) == len(full)


@pytest.mark.parametrize("saved_at", [5, "epoch_end"])
def test_iterator_made_before_restore_and_set_epoch_follows_them(lengths, saved_at):
    """Lightning creates the training iterator *before* the checkpoint's position is applied
    (when configure_optimizers reads trainer.estimated_stepping_batches) and before set_epoch
    on an epoch-end resume. The batches must still follow the state as it is at the first
    batch; an eager iterator replayed epoch 0's order (the cause of issue 7's resume drift)."""
    ref = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=4)
    epochs = {e: (ref.set_epoch(e), list(ref))[1] for e in (0, 1, 2)}
    n = len(epochs[1])
    saved = {"epoch": 1, "batches_yielded": n if saved_at == "epoch_end" else saved_at,
             "seed": 4, "num_replicas": 1}

    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=4)
    it = iter(s)                 # made while the sampler still says epoch 0, position 0
    s.load_state_dict(saved)     # the restore
    resumed_epoch = 2 if saved_at == "epoch_end" else 1
    s.set_epoch(resumed_epoch)   # the fit loop's set_epoch for the epoch it resumes in
    want = epochs[2] if saved_at == "epoch_end" else epochs[1][saved_at:]
    assert list(it) == want
    assert s.state_dict()["batches_yielded"] == (len(epochs[2]) if saved_at == "epoch_end" else n)


def test_resume_refuses_mismatched_setup(lengths):
    state = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0).state_dict()
    with pytest.raises(ValueError, match="seed"):
        LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="num_replicas"):
        LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0, num_replicas=2,
                                  rank=0).load_state_dict(state)  # fmt: skip


def test_lightning_set_epoch_reaches_the_sampler(lengths):
    """Lightning calls set_epoch on dataloader.sampler and dataloader.batch_sampler.sampler."""
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    loader = DataLoader(list(range(len(lengths))), batch_sampler=s)
    try:
        from lightning.fabric.utilities.data import _set_sampler_epoch
    except ImportError:
        loader.batch_sampler.sampler.set_epoch(4)  # what that helper does
    else:
        _set_sampler_epoch(loader, 4)
    assert s.epoch == 4


def test_works_as_dataloader_batch_sampler(lengths):
    s = LengthGroupedBatchSampler(lengths, 16, shuffle=True, seed=0)
    loader = DataLoader(torch.arange(len(lengths)), batch_sampler=s)
    assert len(loader) == len(s)
    got = torch.cat(list(loader)).tolist()
    assert sorted(got) == list(range(len(lengths)))


def test_accepts_lists_tensors_and_columns():
    ref = list(LengthGroupedBatchSampler([3, 1, 2], 2, shuffle=False, seed=0))
    assert ref == [[0, 2], [1]]
    assert list(LengthGroupedBatchSampler(torch.tensor([3, 1, 2]), 2, shuffle=False,
                                          seed=0)) == ref  # fmt: skip
    assert list(LengthGroupedBatchSampler(iter([3, 1, 2]), 2, shuffle=False, seed=0)) == ref
    assert list(LengthGroupedBatchSampler([], 2, shuffle=True, seed=0)) == []


def test_accepts_a_datasets_column():
    """The data module passes ``ds["length"]``: a lazy Column in datasets >= 4."""
    datasets = pytest.importorskip("datasets")
    column = datasets.Dataset.from_dict({"length": [3, 1, 2]})["length"]
    assert list(LengthGroupedBatchSampler(column, 2, shuffle=False, seed=0)) == [[0, 2], [1]]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"bucket_size_multiplier": 0}, "bucket_size_multiplier"),
        ({"seed": -1}, "seed"),
        ({"num_replicas": 2, "rank": 2}, "rank"),
        ({"lengths": [[1, 2]]}, "one-dimensional"),
        ({"lengths": [1, -2]}, ">= 0"),
        ({"lengths": [1.5]}, "integers"),
    ],
)
def test_invalid_arguments(kwargs, field):
    args = {"lengths": [1, 2, 3], "batch_size": 2, "shuffle": True, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=field):
        LengthGroupedBatchSampler(**args)


_DDP_WORKER = """
import json, os, sys
import torch.distributed as dist
from tunelab.data.sampler import LengthGroupedBatchSampler

dist.init_process_group("gloo", init_method=f"file://{sys.argv[1]}",
                        rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))
lengths = [(i * 37) % 101 + 1 for i in range(203)]
s = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=5)  # world read from dist
s.set_epoch(1)
out = {"world": s.num_replicas, "rank": s.rank, "batches": list(s)}
gathered = [None] * dist.get_world_size()
dist.all_gather_object(gathered, len(out["batches"]))  # a collective: all ranks must take part
out["all_lens"] = gathered
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
dist.destroy_process_group()
"""


def test_real_gloo_process_group(tmp_path):
    """Two processes with an initialised torch.distributed group shard without being told."""
    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "WORLD_SIZE": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen([sys.executable, "-c", _DDP_WORKER, str(tmp_path / "store"),
                          str(tmp_path / f"rank{r}.json")], env={**env, "RANK": str(r)})
        for r in range(2)
    ]  # fmt: skip
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    outs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(o["world"], o["rank"]) for o in outs] == [(2, 0), (2, 1)]
    assert outs[0]["all_lens"] == [13, 13]  # ceil(ceil(203 / 8) / 2) on both ranks
    lengths = [(i * 37) % 101 + 1 for i in range(203)]
    expected = LengthGroupedBatchSampler(lengths, 8, shuffle=True, seed=5, num_replicas=2,
                                         rank=1)  # fmt: skip
    expected.set_epoch(1)
    assert outs[1]["batches"] == list(expected)
    flat = [i for o in outs for b in o["batches"] for i in b]
    assert set(flat) == set(range(203))
