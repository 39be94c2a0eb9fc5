"""Per-task heads leave parameters without gradients: DDP needs unused-parameter detection.

Two CPU processes (gloo) train the curriculum model on mixed batches where one head gets no
examples: with ``find_unused_parameters=True`` (what the curriculum runner asks Lightning for,
``ddp_find_unused_parameters_true``) the steps succeed and the ranks stay in sync; without it
DDP fails on the next step."""

from __future__ import annotations

import os
import socket

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, q) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from tunelab.methods.curriculum.model import MultiHeadClassifier

    class Encoder(torch.nn.Module):  # a stand-in encoder: what DDP sees is the heads' usage
        config = type("C", (), {"hidden_size": 16, "hidden_dropout_prob": 0.0, "initializer_range": 0.02})()

        def __init__(self):
            super().__init__()
            self.emb = torch.nn.EmbeddingBag(100, 16)

        def forward(self, input_ids, attention_mask=None, **_):
            return type("O", (), {"pooler_output": torch.tanh(self.emb(input_ids))})()

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    result = {}
    try:
        for find_unused in (True, False):
            torch.manual_seed(0)
            enc = Encoder()
            model = MultiHeadClassifier(enc, {"a": 2, "b": 3}, head_seeds={"a": 1, "b": 2})
            model.routes = [("a", 0, 2), ("b", 2, 3)]   # mixed data, global labels 0-1 -> a, 2-4 -> b
            model.train()
            ddp = DDP(model, find_unused_parameters=find_unused)
            opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
            try:
                for step in range(3):
                    ids = torch.randint(1, 100, (4, 6), generator=torch.Generator().manual_seed(rank * 10 + step))
                    labels = torch.tensor([0, 1, 1, 0])  # only head "a": head "b" gets no gradient
                    loss = ddp(input_ids=ids, labels=labels).loss
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                w = model.head("a")[1].weight.detach().clone()
                gathered = [torch.zeros_like(w) for _ in range(world)]
                dist.all_gather(gathered, w)
                result[find_unused] = ("ok", bool(torch.equal(gathered[0], gathered[1])))
            except RuntimeError as e:
                result[find_unused] = ("error", str(e)[:200])
                break
    finally:
        q.put((rank, result))
        dist.destroy_process_group()


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
@pytest.mark.slow  # ~15 s on an idle 2-core machine; 137 s when 6 jobs share it (spawned imports)
def test_ddp_two_cpu_processes_with_unused_head():
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, 2, port, q)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(q.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    for rank in (0, 1):
        assert results[rank][True] == ("ok", True), results[rank]   # ranks agree on the weights
        assert results[rank][False][0] == "error", results[rank]   # what the runner avoids
