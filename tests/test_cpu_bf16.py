"""trainer=cpu_bf16: bf16 autocast on the CPU is configured, and a step really runs in bf16."""

from __future__ import annotations

import pytest
import torch

from conftest import FAST


@pytest.mark.parametrize("preset,expected", [("trainer=cpu_bf16", torch.bfloat16), ("trainer=cpu", torch.float32)])
def test_one_training_step_runs_in_the_configured_precision(compose, tmp_path, preset, expected):
    from tunelab.methods.finetune import build_module, load_data
    from tunelab.models.loading import load_tokenizer
    from tunelab.training import build_trainer

    cfg = compose(FAST + [preset, "optim.max_steps=1", "trainer.enable_checkpointing=false"])
    assert cfg.trainer.accelerator == "cpu"
    dm, _ = load_data(cfg, load_tokenizer(cfg.model))
    module, _ = build_module(cfg, dm)
    seen = []
    module.model.classifier.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    trainer = build_trainer(cfg, tmp_path, False, monitor=None, mode="min")
    assert trainer.precision == cfg.trainer.precision
    weights = module.model.classifier.weight.detach().clone()
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 1
    assert seen and seen[0] == expected
    # Weights stay fp32 (mixed precision, not a bf16 model), and the step moved them.
    assert module.model.classifier.weight.dtype == torch.float32
    assert not torch.equal(weights, module.model.classifier.weight.detach())
