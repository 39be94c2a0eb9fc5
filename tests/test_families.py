"""Every encoder family, tested: what trains, frozen means frozen, what is refused, LoRA and
adapters, over ten tiny random-initialised folders (``tests/families.py``: BERT, DistilBERT,
RoBERTa, XLM-R, DeBERTa-v2, DeBERTa-v3, ELECTRA, ALBERT, ModernBERT, MPNet); the data side, the
caches and resume are in ``tests/test_families_data.py``.

What should train is written here from each architecture (``ARCH``: every parameter name of the
family's modeling file in transformers, and the block it belongs to), not read from
``tunelab.models.freezing``. The family x feature table these back is in the README ("Encoder
families"), explained in ``docs/families.md``.
The module under test comes from ``families.module_for`` alone.
"""

from __future__ import annotations

import re

import pytest
import torch

import families
from families import batch_of, config, fit, hidden_states, module_for, trainable
from tunelab.errors import ConfigError

FAMILIES = families.FAMILIES
LAYERS = families.LAYERS

# family -> (base-model prefix, regex of a layer's parameters under it (group 1: the layer; ALBERT's
# one shared layer has none), {name start under the base: block} for the rest). Weights that several
# layers use belong to the lowest block using them (DeBERTa's relative-position embeddings and their
# LayerNorm; v2's convolution, which mixes layer 0's output with the embeddings; MPNet's relative
# attention bias); weights before the first layer to the embeddings (ELECTRA's and ALBERT's
# projections up to the hidden size); weights after the last layer to the top layer (ModernBERT).
ARCH = {
    "bert": ("bert", r"encoder\.layer\.(\d+)\.", {"pooler.": "pooler"}),
    "distilbert": ("distilbert", r"transformer\.layer\.(\d+)\.", {}),
    "roberta": ("roberta", r"encoder\.layer\.(\d+)\.", {}),
    "xlmr": ("roberta", r"encoder\.layer\.(\d+)\.", {}),
    "deberta_v2": ("deberta", r"encoder\.layer\.(\d+)\.",
                   {"encoder.rel_embeddings.": "layer.0", "encoder.LayerNorm.": "layer.0", "encoder.conv.": "layer.0"}),
    "deberta_v3": ("deberta", r"encoder\.layer\.(\d+)\.",
                   {"encoder.rel_embeddings.": "layer.0", "encoder.LayerNorm.": "layer.0"}),
    "electra": ("electra", r"encoder\.layer\.(\d+)\.", {"embeddings_project.": "embeddings"}),
    "albert": ("albert", r"encoder\.albert_layer_groups\.0\.()",
               {"encoder.embedding_hidden_mapping_in.": "embeddings", "pooler.": "pooler"}),
    "modernbert": ("model", r"layers\.(\d+)\.", {"final_norm.": f"layer.{LAYERS - 1}"}),
    "mpnet": ("mpnet", r"encoder\.layer\.(\d+)\.", {"encoder.relative_attention_bias.": "layer.0"}),
}
BASE_BLOCKS = {"embeddings", "shared", "pooler", *(f"layer.{i}" for i in range(LAYERS))}

# policy -> (overrides, blocks frozen when built, blocks frozen after families.FIT_STEPS (3) steps)
_BOTTOM2 = {"embeddings", "layer.0", "layer.1"}
POLICIES = {
    "none": ([], set(), set()),
    "all": (["freeze=all"], BASE_BLOCKS, BASE_BLOCKS),
    "last2": (["freeze=last2"], _BOTTOM2, _BOTTOM2),
    "first_n": (["freeze=first_n", "freeze.n=1"], {"embeddings", "layer.0"}, {"embeddings", "layer.0"}),
    "embeddings": (["freeze=embeddings"], {"embeddings"}, {"embeddings"}),
    # one block more from the top at each step from step 1: pooler + layer.3, then layer.2
    "gradual": (["freeze=gradual", "freeze.unfreeze_every=steps", "freeze.unfreeze_k_steps=1"], BASE_BLOCKS, _BOTTOM2),
    # the encoder's bias terms and the head (no block frozen whole: see bitfit_trains)
    "bitfit": (["freeze=bitfit"], set(), set()),
}
PER_LAYER = ("last2", "first_n", "gradual")  # ALBERT's shared layer cannot be split: refused

# LoRA targets: PEFT's per-family default (peft 0.21's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING),
# and for the families it has none for, the attention projections a user names.
LORA_DEFAULT = {"bert": ["query", "value"], "roberta": ["query", "value"], "xlmr": ["query", "value"],
                "electra": ["query", "value"], "deberta_v2": ["query_proj", "value_proj"],
                "deberta_v3": ["query_proj", "value_proj"]}
LORA_GIVEN = {"distilbert": ["q_lin", "v_lin"], "albert": ["query", "value"], "modernbert": ["Wqkv"], "mpnet": ["q", "v"]}
ADAPTERS_REFUSED = {"modernbert": "would change the frozen base encoder", "mpnet": "does not support it"}



def expected_block(family: str, name: str) -> str:
    prefix, layer_re, rest = ARCH[family]
    if not name.startswith(prefix + "."):
        return "head"
    sub = name[len(prefix) + 1:]
    if sub.startswith("embeddings."):
        return "embeddings"
    for start, block in rest.items():
        if sub.startswith(start):
            return block
    m = re.match(layer_re, sub)
    assert m, f"{family}: ARCH has no block for {name}"
    return f"layer.{m.group(1)}" if m.group(1) else "shared"


def frozen_outputs(frozen: set[str]) -> list[int]:
    """Indices into hidden_states of the frozen blocks' outputs."""
    return [0] * ("embeddings" in frozen) + [i + 1 for i in range(LAYERS) if f"layer.{i}" in frozen]


def bitfit_trains(name: str, block: str) -> bool:
    return block == "head" or name.endswith(".bias")


def _cases():
    for family in FAMILIES:
        for policy in POLICIES:
            # ALBERT's layer is shared; ModernBERT's encoder has no bias terms: both refused
            if not (family == "albert" and policy in PER_LAYER) and (family, policy) != ("modernbert", "bitfit"):
                yield family, policy


@pytest.mark.parametrize("family,policy", list(_cases()))
def test_what_trains_is_the_architecture_s_blocks_and_frozen_blocks_stay_bit_identical(
        compose, family_dirs, family, policy):
    overrides, frozen_start, frozen_end = POLICIES[policy]
    decay = ["optim.layer_decay=0.5", "optim.head_lr=1e-3"] if policy == "none" and family != "albert" else []
    cfg = config(compose, family_dirs, family, *overrides, *decay, "optim.lr=1e-3", "optim.warmup_ratio=0")
    torch.manual_seed(0)
    module, _ = module_for(cfg)
    model = module.model
    block = {n: expected_block(family, n) for n, _ in model.named_parameters()}
    keep = bitfit_trains if policy == "bitfit" else (lambda n, b: True)
    assert trainable(model) == {n for n, b in block.items() if b not in frozen_start and keep(n, b)}
    from tunelab.models.loading import load_tokenizer

    batch = batch_of(load_tokenizer(cfg.model))
    before = hidden_states(model.base_model, batch)
    module.train()  # frozen blocks run in eval mode inside a training model: no dropout reaches them
    torch.manual_seed(0)
    in_training = hidden_states(model.base_model, batch, keep_mode=True)
    for i in frozen_outputs(frozen_start):
        assert torch.equal(before[i], in_training[i]), f"{family} {policy}: dropout in frozen hidden_states[{i}]"
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = fit(module, batch)
    want = {n for n, b in block.items() if b not in frozen_end and keep(n, b)}
    assert trainable(model) == want
    after = hidden_states(model.base_model, batch)
    for i in frozen_outputs(frozen_end):
        assert torch.equal(before[i], after[i]), f"{family} {policy}: frozen hidden_states[{i}] moved"
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, weights[n])}
    assert moved == want
    if decay:  # layer-wise lr decay: depth d of L + 1 gets lr * 0.5 ** (L - d); embeddings are depth 0
        depth = {"embeddings": 0, "pooler": LAYERS, **{f"layer.{i}": i + 1 for i in range(LAYERS)}}
        lr_of = {id(p): g["initial_lr"] for g in trainer.optimizers[0].param_groups for p in g["params"]}
        for n, p in model.named_parameters():
            lr = 1e-3 if block[n] == "head" else 1e-3 * 0.5 ** max(0, LAYERS - depth[block[n]])
            assert lr_of[id(p)] == pytest.approx(lr, rel=1e-12), n


def test_bitfit_on_a_bias_free_encoder_is_refused(compose, family_dirs):
    cfg = config(compose, family_dirs, "modernbert", "freeze=bitfit")
    with pytest.raises(ConfigError, match=r"ModernBertModel has none \(its layers are bias-free\)"):
        module_for(cfg)


@pytest.mark.parametrize("overrides", [["freeze=last2"], ["freeze=first_n", "freeze.n=1"], ["freeze=gradual"],
                                       ["optim.layer_decay=0.8"]], ids=["last2", "first_n", "gradual", "decay"])
def test_albert_refuses_to_split_its_shared_layer(compose, family_dirs, overrides):
    """Refused by the plan, and before a curriculum's or adaptation's first stage (from a
    meta-device model: no weights read)."""
    from tunelab.models.plan import check_depth

    cfg = config(compose, family_dirs, "albert", *overrides)
    why = r"its encoder layers share their weights \(4 layers run each set, as in ALBERT\); use (freeze|optim)"
    with pytest.raises(ConfigError, match=why):
        check_depth(cfg)
    with pytest.raises(ConfigError, match=why):
        module_for(cfg)


# IA3 (single-task peft=ia3): PEFT's defaults exist for bert, roberta and deberta-v2 only.
IA3_DEFAULT = {"bert": ["key", "value", "output.dense"], "roberta": ["key", "value", "output.dense"],
               "deberta_v2": ["key_proj", "value_proj", "output.dense"],
               "deberta_v3": ["key_proj", "value_proj", "output.dense"]}
IA3_GIVEN = {"distilbert": (["k_lin", "v_lin", "lin2"], ["lin2"]), "xlmr": (["key", "value", "output.dense"], ["output.dense"]),
             "electra": (["key", "value", "output.dense"], ["output.dense"]),
             "albert": (["key", "value", "ffn_output"], ["ffn_output"]), "modernbert": (["Wqkv", "Wo"], ["Wo"]),
             "mpnet": (["k", "v", "output.dense"], ["output.dense"])}
# arm -> (overrides, the setting a refusal names, the name of the trained adapter)
ARMS = {"strategy=lora": (["strategy=lora"], "strategy.lora_target_modules", "task0"),
        "strategy=adapters": (["strategy=adapters", "strategy.reduction_factor=4"], None, "task0"),
        "peft=lora": (["peft=lora"], "peft.target_modules", "default"),
        "peft=adapters": (["peft=adapters", "peft.reduction_factor=4"], None, "task"),
        "peft=ia3": (["peft=ia3"], "peft.target_modules", "default")}


def _targets_or_refusal(cfg, family: str, arm: str):
    """The modules the arm wraps: PEFT's default for the family, or (checking the refusal first)
    the ones the test gives."""
    setting = ARMS[arm][1]
    if arm.endswith("ia3"):
        if family in IA3_DEFAULT:
            return IA3_DEFAULT[family]
        with pytest.raises(ConfigError, match=r"no default IA3 modules .*set peft.target_modules and peft.feedforward"):
            module_for(cfg)
        cfg.peft.target_modules, cfg.peft.feedforward_modules = IA3_GIVEN[family]
        return IA3_GIVEN[family][0]
    if family in LORA_DEFAULT:
        return LORA_DEFAULT[family]
    with pytest.raises(ConfigError, match=rf"no default LoRA target modules .*set {setting}"):
        module_for(cfg)
    node, key = setting.split(".")
    cfg[node][key] = LORA_GIVEN[family]
    return LORA_GIVEN[family]


@pytest.mark.parametrize("arm", list(ARMS))
@pytest.mark.parametrize("family", FAMILIES)
def test_peft_trains_its_own_modules_and_the_head_and_leaves_the_base_as_it_was(compose, family_dirs, family, arm):
    """The curriculum's per-task strategies and the single-task ``peft`` group, on every family."""
    from tunelab.models.loading import load_model, load_tokenizer

    cfg = config(compose, family_dirs, family, *ARMS[arm][0], "optim.lr=1e-2")
    name = ARMS[arm][2]
    if arm.endswith("adapters") and family in ADAPTERS_REFUSED:
        with pytest.raises(ConfigError, match=ADAPTERS_REFUSED[family]):
            module_for(cfg)
        return
    targets = None if arm.endswith("adapters") else _targets_or_refusal(cfg, family, arm)
    bare, _ = load_model(cfg.model, "encoder")
    batch = batch_of(load_tokenizer(cfg.model))
    reference = hidden_states(bare, batch)
    torch.manual_seed(0)
    module, _ = module_for(cfg)
    model = module.model
    names = [n for n, _ in model.named_parameters()]
    curriculum = arm.startswith("strategy")
    heads = {n for n in names if n.startswith("heads.h0.")} if curriculum else \
        {n for n in names if expected_block(family, n) == "head"}
    # PEFT's matching: a module whose name is a target or ends with "." + target
    wrapped = targets and sum(any(n == t or n.endswith("." + t) for t in targets)
                              for n, m in bare.named_modules() if isinstance(m, torch.nn.Linear))
    if arm.endswith("lora"):  # A and B of every targeted linear layer of the bare encoder
        own = {n for n in names if re.search(rf"\.lora_[AB]\.{name}\.weight$", n)}
        assert len(own) == 2 * wrapped > 0
    elif arm.endswith("ia3"):  # one scaling vector per targeted linear layer
        own = {n for n in names if n.endswith(f".ia3_l.{name}")}
        assert len(own) == wrapped > 0
    else:  # a down and an up projection (weight, bias) after each distinct layer's output
        own = {n for n in names if f".adapters.{name}." in n}
        assert len(own) == 4 * (1 if family == "albert" else LAYERS)
    assert trainable(model) == own | heads
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    if not arm.endswith("adapters"):  # untrained LoRA is the identity, IA3 starts at 1
        encoder = model.encoder if curriculum else model.base_model
        assert all(torch.equal(a, b) for a, b in zip(reference, hidden_states(encoder, batch)))
    fit(module, batch)
    assert {n for n, p in model.named_parameters() if not torch.equal(p, before[n])} == own | heads
    if curriculum:  # the encoder with the task's adapter switched off is the bare one
        enc = model.encoder
        if arm.endswith("lora"):
            with enc.disable_adapter():
                bare_after = hidden_states(enc, batch)
        else:
            enc.set_active_adapters(None)
            bare_after = hidden_states(enc, batch)
        # LoRA switched off is the bare encoder bit for bit; the adapters library runs some
        # families' layers through its own code (ELECTRA: ~1e-8 apart, float rounding).
        tol = 0 if arm.endswith("lora") else 1e-6
        assert max((a - b).abs().max().item() for a, b in zip(reference, bare_after)) <= tol, "the base changed"
