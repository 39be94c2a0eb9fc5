"""Every freeze policy, as the job's plan applies it: which blocks train, that frozen means frozen,
and layer-wise lr decay (the expected blocks are written out by hand for the 2-layer tiny BERT)."""

from __future__ import annotations

import pytest
import torch

from tunelab.models import freezing
from tunelab.errors import ConfigError
from tunelab.models.loading import load_model
from tunelab.models.plan import plan_for

POLICIES = {
    # policy overrides -> blocks that must be frozen (tiny has 2 layers)
    ("freeze=none",): set(),
    ("freeze=all",): {"embeddings", "layer.0", "layer.1", "pooler"},
    ("freeze=last2",): {"embeddings"},
    ("freeze=last_n", "freeze.n=1"): {"embeddings", "layer.0"},
    ("freeze=first_n", "freeze.n=1"): {"embeddings", "layer.0"},
    ("freeze=embeddings",): {"embeddings"},
    ("freeze=gradual",): {"embeddings", "layer.0", "layer.1", "pooler"},
}


def _tiny(compose, *overrides, task="seq_cls"):
    cfg = compose(["model=tiny", *overrides])
    model, _ = load_model(cfg.model, task, num_labels=2 if task != "mlm" else None)
    return cfg, model


@pytest.mark.parametrize("overrides,frozen", list(POLICIES.items()), ids=lambda x: ",".join(x) if isinstance(x, tuple) else None)
def test_policy_freezes_exactly_these_blocks(compose, overrides, frozen):
    cfg, model = _tiny(compose, *overrides)
    plan = plan_for(cfg, model)
    blocks = plan.blocks
    assert [b.name for b in blocks] == ["embeddings", "layer.0", "layer.1", "pooler", "head"]
    assert plan.frozen == frozen
    for b in blocks:
        assert all(p.requires_grad == (b.name not in frozen) for p in b.params), b.name
    # The head always trains.
    assert all(p.requires_grad for p in blocks[-1].params)
    # The recorded counts are the model's own.
    assert plan.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert plan.total_params == sum(p.numel() for p in model.parameters())


def test_blocks_cover_every_parameter_once(compose):
    _, model = _tiny(compose, task="mlm")  # MLM ties its decoder to the word embeddings
    blocks = freezing.blocks_of(model)
    ids = [id(p) for b in blocks for p in b.params]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}


@pytest.mark.parametrize("policy", ["freeze=all", "freeze=last2", "freeze=embeddings"])
def test_frozen_params_get_no_grad_no_update_and_no_dropout(compose, policy):
    from tunelab.models.modules import SequenceClassifier

    cfg, model = _tiny(compose, policy, "model.dropout=0.5")
    module = SequenceClassifier(model, plan=plan_for(cfg, model), num_labels=2, optim_cfg=cfg.optim,
                                label_names=["a", "b"], log=lambda *_: None)
    module.trainer = None
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen_before
    # Optimizer holds only trainable parameters.
    groups = freezing.param_groups(module.blocks, cfg.optim, named=freezing.named_ids(model))
    opt = torch.optim.AdamW(groups, lr=1e-2, weight_decay=0.1)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert all(id(p) not in in_opt for p in model.parameters() if not p.requires_grad)
    module.train()
    for b in module.blocks:
        if b.params and not any(p.requires_grad for p in b.params):
            assert all(not m.training for m in b.modules), f"{b.name} is frozen but in train mode"
    batch = {"input_ids": torch.randint(1000, 2000, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
             "labels": torch.tensor([0, 1, 0, 1])}
    for _ in range(2):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    freezing.assert_frozen_state(model, opt)
    for n, p in model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"frozen {n} changed"
    # Something did train.
    assert any(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_asking_for_more_layers_than_the_model_has_is_a_clear_error(compose):
    cfg, model = _tiny(compose, "freeze=last_n", "freeze.n=5")
    with pytest.raises(ConfigError, match=r"freeze.n=5 but the model has only 2 encoder layers"):
        plan_for(cfg, model)


def test_layer_decay_lrs_shrink_downwards(compose):
    cfg, model = _tiny(compose, "optim.layer_decay=0.5", "optim.lr=1.0", "optim.head_lr=2.0")
    lrs = freezing.block_lrs(freezing.blocks_of(model), cfg.optim)
    assert lrs == {"embeddings": 0.25, "layer.0": 0.5, "layer.1": 1.0, "pooler": 1.0, "head": 2.0}
    groups = freezing.param_groups(freezing.blocks_of(model), cfg.optim, named=freezing.named_ids(model))
    assert {g["block"]: g["lr"] for g in groups}["layer.0"] == 0.5
    # Biases and LayerNorm weights get no weight decay.
    named = freezing.named_ids(model)
    for g in groups:
        for p in g["params"]:
            if "LayerNorm" in named[id(p)] or named[id(p)].endswith("bias"):
                assert g["weight_decay"] == 0.0


def test_gradual_unfreezing_adds_blocks_to_optimizer_top_down(compose):
    cfg, model = _tiny(compose, "freeze=gradual", "freeze.unfreeze_every=epoch")
    plan = plan_for(cfg, model)
    blocks = plan.blocks
    groups = freezing.param_groups(blocks, cfg.optim, named=freezing.named_ids(model))
    opt = torch.optim.AdamW(groups, lr=cfg.optim.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    assert {g["block"] for g in opt.param_groups} == {"head"}
    u = freezing.GradualUnfreezer(plan, cfg.optim, freezing.named_ids(model))
    assert u.step(opt, sched, epoch=0, global_step=0) == []
    assert sorted(u.step(opt, sched, epoch=1, global_step=10)) == ["layer.1", "pooler"]
    assert {g["block"] for g in opt.param_groups} == {"head", "layer.1", "pooler"}
    assert len(sched.base_lrs) == len(opt.param_groups)
    u.step(opt, sched, epoch=3, global_step=30)
    assert {g["block"] for g in opt.param_groups} == {"head", "layer.1", "pooler", "layer.0", "embeddings"}
    assert all(p.requires_grad for p in model.parameters())


def test_staged_unfreezing_cuts_the_run_into_equal_stages(compose):
    cfg, model = _tiny(compose, "freeze=gradual")        # stage: the group's default
    u = freezing.GradualUnfreezer(plan_for(cfg, model), cfg.optim, freezing.named_ids(model))
    # Tiny BERT, 3 thaw groups (layer.1 + pooler, layer.0, embeddings) -> 4 stages; 40 steps -> 10 each.
    due = {step: u.due(epoch=0, global_step=step, total_steps=40) for step in (0, 9, 10, 19, 20, 29, 30, 39)}
    assert due == {0: 0, 9: 0, 10: 1, 19: 1, 20: 2, 29: 2, 30: 3, 39: 3}
    assert u.due(epoch=0, global_step=5, total_steps=2) == 3       # a run shorter than the stages: all due
    with pytest.raises(ConfigError, match="unfreeze_every=stage needs the run's length"):
        u.due(epoch=0, global_step=0, total_steps=float("inf"))


def test_module_starts_in_train_mode_except_frozen_blocks(compose):
    """Lightning keeps the mode it finds at fit start; from_pretrained gives eval mode."""
    from tunelab.models.modules import SequenceClassifier

    cfg = compose(["model=minilm", "freeze=last2"])
    model, _ = load_model(cfg.model, "seq_cls", num_labels=2)  # real checkpoint: loads in eval mode
    module = SequenceClassifier(model, plan=plan_for(cfg, model), num_labels=2, optim_cfg=cfg.optim,
                                label_names=["a", "b"], log=lambda *_: None)
    by_name = {b.name: b for b in module.blocks}
    assert all(m.training for m in by_name["layer.5"].modules)
    assert all(not m.training for m in by_name["layer.0"].modules)
    assert model.classifier.training and model.dropout.training


def test_ia3_vectors_are_not_weight_decayed_and_lora_matrices_are(compose):
    """IA3 rescales activations by learned vectors that start at 1; AdamW's decay would shrink them
    toward 0. PEFT keeps them as (d, 1) / (1, d) matrices, so a rank rule alone decays them."""
    from types import SimpleNamespace

    from tunelab.methods.shared.encoder import build_module
    from tunelab.models.plan import Route
    from tunelab.models.policy import policy_of

    decays, shapes = {}, {}
    for peft in ("ia3", "lora"):
        cfg = compose(["model=tiny", f"peft={peft}", "optim.weight_decay=0.05"])
        module, _ = build_module(cfg, SimpleNamespace(label_names=["negative", "positive"]),
                                 Route.direct(policy_of(cfg), "seq_cls"))
        # the groups configure_optimizers hands to AdamW
        groups = freezing.param_groups(module.blocks, module.optim_cfg, named=freezing.named_ids(module.model))
        wd = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
        decays[peft] = {n: wd[id(p)] for n, p in module.model.named_parameters() if p.requires_grad}
        shapes[peft] = {n: tuple(p.shape) for n, p in module.model.named_parameters() if p.requires_grad}
    ia3 = {n: d for n, d in decays["ia3"].items() if ".ia3_l." in n}
    assert ia3 and set(ia3.values()) == {0.0} and all(len(shapes["ia3"][n]) == 2 for n in ia3)
    lora = {n: d for n, d in decays["lora"].items() if ".lora_" in n}
    assert lora and set(lora.values()) == {0.05}
    # The rest that trains under IA3 (the head) decays as before: its weight matrix.
    head = {n: d for n, d in decays["ia3"].items() if ".ia3_l." not in n and len(shapes["ia3"][n]) == 2}
    assert head and set(head.values()) == {0.05}
    # IA3's jobs are other jobs than before this rule (their numbers changed); LoRA's are not.
    ia3_cfg, lora_cfg = compose(["model=tiny", "peft=ia3"]), compose(["model=tiny", "peft=lora"])
    from tunelab.ops import identity
    assert identity.identity_payload(ia3_cfg)["peft_rules"] == 2
    assert "peft_rules" not in identity.identity_payload(lora_cfg)
