"""trainer=ddp on CPU: 2 processes (gloo) give the metrics of 1, and write one dir, once."""

from __future__ import annotations

import pytest

from conftest import load_results, run_cli
from tunelab.data.sampler import LengthGroupedBatchSampler

# lr ~ 0: both runs keep the (identically seeded) initial weights, so the test metrics must be
# the same whether the test set is scored by one process or split across two.
SAME = ["model=tiny", "logger=none", "data.max_train_samples=32", "data.max_eval_samples=27",
        "optim.epochs=1", "optim.batch_size=8", "optim.eval_batch_size=4", "optim.lr=1e-12",
        "trainer.enable_progress_bar=false", "trainer.num_threads=1", "seed=5"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("n", [1, 7, 27, 64])
def test_eval_shards_count_every_example_once(world, n):
    lengths = [(i * 7919) % 50 + 1 for i in range(n)]
    shards = [list(LengthGroupedBatchSampler(lengths, 4, shuffle=False, seed=0, num_replicas=world, rank=r,
                                                     even_shards=False))
              for r in range(world)]
    flat = sorted(i for s in shards for b in s for i in b)
    assert flat == list(range(n))  # no example twice (no padding), none missing
    for r, s in enumerate(shards):
        assert len(s) == len(LengthGroupedBatchSampler(lengths, 4, shuffle=False, seed=0, num_replicas=world,
                                                       rank=r, even_shards=False))
        lens = [lengths[i] for b in s for i in b]
        assert lens == sorted(lens, reverse=True)  # still length-sorted within a rank


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_ddp_two_cpu_processes_match_one_and_rank0_writes_once(tmp_path):
    one = run_cli([*SAME, f"hydra.run.dir={tmp_path / 'one'}"], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_cli([*SAME, *DDP, f"hydra.run.dir={tmp_path / 'two'}"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_results(tmp_path / "one" / "results.json")
    b = load_results(tmp_path / "two" / "results.json")
    assert a["status"] == b["status"] == "ok"
    assert b["config"]["trainer"]["strategy"] == "ddp" and b["config"]["trainer"]["devices"] == 2
    n_test = a["n_examples"]["test"]
    assert n_test % 2 == 1  # an odd test set: padding to even shards would count one twice
    # every test example predicted exactly once across the two ranks
    assert sum(b["pred_class_counts"].values()) == n_test == sum(a["pred_class_counts"].values())
    assert b["pred_class_counts"] == a["pred_class_counts"]
    # predictions.npz: the two ranks' shares gathered back onto the right test rows
    from tunelab import predictions

    pa, pb = (predictions.read(tmp_path / d / "predictions.npz") for d in ("one", "two"))
    assert pb.index.tolist() == pa.index.tolist() == list(range(n_test))
    assert pb.gold.tolist() == pa.gold.tolist() and pb.pred.tolist() == pa.pred.tolist()
    for k in ("test/acc", "test/f1", "test/f1_macro", "test/loss"):
        assert b["metrics"][k] == pytest.approx(a["metrics"][k], abs=1e-4), k
    # Lightning re-launched train.py for rank 1 and Hydra ran again in it: it must have reused
    # rank 0's dir and written nothing of its own there or anywhere else.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert "results.json" in files and ".hydra" in files
    assert not [f for f in files if "ddp_process" in f], files
    assert sorted(p.name for p in (tmp_path / "two").glob("*.log")) == ["train.log"]
