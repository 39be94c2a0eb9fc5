"""trainer=cpu_bf16: bf16 autocast on the CPU is configured, and a step really runs in bf16."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST


@pytest.mark.parametrize("preset,expected", [("trainer=cpu_bf16", torch.bfloat16), ("trainer=cpu", torch.float32)])
def test_one_training_step_runs_in_the_configured_precision(compose, tmp_path, preset, expected):
    from tunelab.methods.shared.data import load_data
    from tunelab.methods.shared.encoder import build_module
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.plan import route_of
    from tunelab.training import build_trainer

    cfg = compose(FAST + [preset, "optim.max_steps=1", "trainer.enable_checkpointing=false"])
    assert cfg.trainer.accelerator == "cpu"
    dm, _ = load_data(cfg, load_tokenizer(cfg.model))
    module, _ = build_module(cfg, dm, route_of(cfg))
    seen = []
    module.model.classifier.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    trainer = build_trainer(cfg, tmp_path, False, monitor=None, mode="min")
    assert trainer.precision == cfg.trainer.precision
    weights = module.model.classifier.weight.detach().clone()
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    # The fused AdamW kernel in both precisions (bf16 autocast has no loss scaler to get in its way).
    assert trainer.optimizers[0].defaults["fused"] is True
    assert seen and seen[0] == expected
    # Weights stay fp32 (mixed precision, not a bf16 model), and the step moved them.
    assert module.model.classifier.weight.dtype == torch.float32
    assert not torch.equal(weights, module.model.classifier.weight.detach())


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_clipping_for_the_fused_optimiser_without_a_scaler(algorithm):
    """Lightning refuses to clip for a fused optimiser under mixed precision; the module clips."""
    from types import SimpleNamespace

    import lightning as L
    import numpy as np

    from tunelab.models.modules import SequenceClassifier

    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    module = SequenceClassifier.__new__(SequenceClassifier)  # only its clipping hook is used
    L.LightningModule.__init__(module)
    module.net = net
    module._trainer = SimpleNamespace(precision_plugin=SimpleNamespace(scaler=None))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
    for p in net.parameters():
        p.grad = torch.randn_like(p) * 10
    before = np.concatenate([p.grad.numpy().ravel() for p in net.parameters()])
    module.configure_gradient_clipping(opt, gradient_clip_val=0.5, gradient_clip_algorithm=algorithm)
    after = np.concatenate([p.grad.numpy().ravel() for p in net.parameters()])
    if algorithm == "norm":  # rescaled to norm 0.5, direction kept
        assert np.linalg.norm(before) > 0.5
        np.testing.assert_allclose(after, before * 0.5 / np.linalg.norm(before), rtol=1e-5)
    else:
        np.testing.assert_allclose(after, np.clip(before, -0.5, 0.5))


def test_bf16_units_are_read_from_the_cpu_flags(monkeypatch):
    from pathlib import Path

    from tunelab.environment import cpu_bf16_units

    cpuinfo = {"text": "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n"}

    def read_text(self, *a, **k):
        if isinstance(cpuinfo["text"], Exception):
            raise cpuinfo["text"]
        return cpuinfo["text"]

    monkeypatch.setattr(Path, "read_text", read_text)
    assert cpu_bf16_units() == ["avx512_bf16"]          # amx_tile is not amx_bf16
    cpuinfo["text"] = "flags\t\t: fpu amx_bf16 avx512_bf16\n"
    assert cpu_bf16_units() == ["amx_bf16", "avx512_bf16"]
    cpuinfo["text"] = "flags\t\t: fpu sse2 avx2\n"
    assert cpu_bf16_units() == []
    cpuinfo["text"] = OSError("no /proc here")
    assert cpu_bf16_units() == []


def test_bf16_on_a_cpu_without_bf16_units_is_warned_about(monkeypatch, caplog):
    # an AVX2-only CPU emulates bf16 (~20x slower than fp32 measured): the run says so; a CPU with
    # avx512_bf16 or a GPU does not warn, nor does fp32
    import logging

    import tunelab.environment as env
    from tunelab.training import warn_emulated_bf16

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(env, "cpu_bf16_units", lambda: [])
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        assert warn_emulated_bf16("cpu", "bf16-mixed") is True
    assert "without bf16 units" in caplog.text and "trainer=cpu_bf16" in caplog.text
    assert warn_emulated_bf16("cpu", "32-true") is False
    # once per job: LP-FT builds two Trainers in one job folder; the next job is told again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tunelab"):
        said = [warn_emulated_bf16("cpu", "bf16-mixed", job=j) for j in ("runs/0", "runs/0", "runs/1")]
    assert said == [True, False, True] and caplog.text.count("without bf16 units") == 2
    monkeypatch.setattr(env, "cpu_bf16_units", lambda: ["avx512_bf16"])
    assert warn_emulated_bf16("cpu", "bf16-mixed") is False
