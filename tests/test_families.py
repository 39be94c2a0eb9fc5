"""Every encoder family, tested: what trains, frozen means frozen, PEFT, word-piece alignment, the MLM
head, dropout and resume, over ten tiny random-initialised folders (``tests/families.py``: BERT,
DistilBERT, RoBERTa, XLM-R, DeBERTa-v2, DeBERTa-v3, ELECTRA, ALBERT, ModernBERT, MPNet).

What should train is written here from each architecture (``ARCH``: every parameter name of the
family's modeling file in transformers, and the block it belongs to), not read from
``tunelab.models.freezing``. ``docs/notes/families.md`` is the family x feature table these back.
The module under test comes from :func:`module_for` alone.
"""

from __future__ import annotations

import copy
import math
import os
import re
from types import SimpleNamespace

import lightning as L
import pandas as pd
import pytest
import torch

import families
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

# policy -> (overrides, blocks frozen when built, blocks frozen after FIT_STEPS steps)
FIT_STEPS = 3
_BOTTOM2 = {"embeddings", "layer.0", "layer.1"}
POLICIES = {
    "none": ([], set(), set()),
    "all": (["freeze=all"], BASE_BLOCKS, BASE_BLOCKS),
    "last2": (["freeze=last2"], _BOTTOM2, _BOTTOM2),
    "first_n": (["freeze=first_n", "freeze.n=1"], {"embeddings", "layer.0"}, {"embeddings", "layer.0"}),
    "embeddings": (["freeze=embeddings"], {"embeddings"}, {"embeddings"}),
    # one block more from the top at each step from step 1: pooler + layer.3, then layer.2
    "gradual": (["freeze=gradual", "freeze.unfreeze_every=steps", "freeze.unfreeze_k_steps=1"], BASE_BLOCKS, _BOTTOM2),
}
PER_LAYER = ("last2", "first_n", "gradual")  # ALBERT's shared layer cannot be split: refused

# LoRA targets: PEFT's per-family default (peft 0.21's TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING),
# and for the families it has none for, the attention projections a user names.
LORA_DEFAULT = {"bert": ["query", "value"], "roberta": ["query", "value"], "xlmr": ["query", "value"],
                "electra": ["query", "value"], "deberta_v2": ["query_proj", "value_proj"],
                "deberta_v3": ["query_proj", "value_proj"]}
LORA_GIVEN = {"distilbert": ["q_lin", "v_lin"], "albert": ["query", "value"], "modernbert": ["Wqkv"], "mpnet": ["q", "v"]}
ADAPTERS_REFUSED = {"modernbert": "would change the frozen base encoder", "mpnet": "does not support it"}

TEXTS = ["the cat sat on the mat", "visit Timbuktuville now please", "a dog", "good news for the airline today"]


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


_COMPOSED: dict = {}


def config(compose, family_dirs, family: str, *overrides):
    """The run's config for ``family``'s folder. Composed once per set of overrides (Hydra's compose
    takes most of a second) and copied, with ``model.path`` set, for each family."""
    if overrides not in _COMPOSED:
        _COMPOSED[overrides] = compose(["model=minilm", "model.max_length=32", "logger=none",
                                        "trainer.enable_progress_bar=false", *overrides])
    cfg = copy.deepcopy(_COMPOSED[overrides])
    cfg.model.path = str(family_dirs[family].path)
    return cfg


def module_for(cfg, *, labels=("negative", "positive")):
    """``(LightningModule, load report)`` as a job builds it: the full-forward module under the job's
    plan (``method=finetune``'s builder), or for ``strategy=lora|adapters`` a curriculum stage's
    model for one task, as ``Env.build_model`` and ``Env.fit`` make it."""
    from tunelab.methods.shared.encoder import build_module
    from tunelab.models.plan import Route, make_plan
    from tunelab.models.policy import policy_of

    route = Route.direct(policy_of(cfg), str(cfg.task.name))
    strategy = str((cfg.get("strategy") or {}).get("name", "sequential"))
    if strategy not in ("lora", "adapters"):
        return build_module(cfg, SimpleNamespace(label_names=list(labels) if cfg.task.name != "mlm" else None), route)
    from tunelab.methods.curriculum.adapters import prepare_stage, stage_parameters
    from tunelab.methods.curriculum.env import Env
    from tunelab.methods.curriculum.stages import Stage
    from tunelab.models.modules import SequenceClassifier

    stage = Stage(index=0, name="t", data="t", data_cfg=None, epochs=1, lr=1e-3, head="h")
    env = Env(cfg, None, None, [stage], {"h": list(labels)}, strategy)
    model = env.build_model([stage])
    model.active = "h"
    prepare_stage(model, strategy, stage.adapter)
    plan = make_plan(route, model, cfg.optim, restrict_to=stage_parameters(model, strategy, {"h"}, stage.adapter))
    return SequenceClassifier(model, plan=plan, num_labels=len(labels), positive_index=1, optim_cfg=cfg.optim,
                              label_names=list(labels), log=lambda *_: None), None


def batch_of(tokenizer, texts=TEXTS, labels=(0, 1, 0, 1)) -> dict:
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    return {**enc, "labels": torch.tensor(labels)}


def fit(module, batch: dict, steps: int = FIT_STEPS) -> L.Trainer:
    """``steps`` optimizer steps through Lightning (the module's own optimiser, hooks and eval modes)."""
    torch.manual_seed(0)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", devices=1, limit_val_batches=0)
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return trainer


@torch.no_grad()
def hidden_states(encoder, batch: dict) -> list[torch.Tensor]:
    """``[embedding output, layer 0's output, ...]`` in eval mode."""
    was = encoder.training
    encoder.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = encoder(**inputs, output_hidden_states=True).hidden_states
    encoder.train(was)
    return [h.clone() for h in out]


def frozen_outputs(frozen: set[str]) -> list[int]:
    """Indices into hidden_states of the frozen blocks' outputs."""
    return [0] * ("embeddings" in frozen) + [i + 1 for i in range(LAYERS) if f"layer.{i}" in frozen]


def trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def _cases():
    for family in FAMILIES:
        for policy in POLICIES:
            if not (family == "albert" and policy in PER_LAYER):
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
    assert trainable(model) == {n for n, b in block.items() if b not in frozen_start}
    from tunelab.models.loading import load_tokenizer

    batch = batch_of(load_tokenizer(cfg.model))
    before = hidden_states(model.base_model, batch)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = fit(module, batch)
    want = {n for n, b in block.items() if b not in frozen_end}
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


@pytest.mark.parametrize("strategy", ["lora", "adapters"])
@pytest.mark.parametrize("family", FAMILIES)
def test_lora_and_adapters_train_their_own_weights_and_leave_the_base_as_it_was(
        compose, family_dirs, family, strategy):
    from tunelab.models.loading import load_model, load_tokenizer

    cfg = config(compose, family_dirs, family, f"strategy={strategy}", "strategy.reduction_factor=4", "optim.lr=1e-2")
    if strategy == "adapters" and family in ADAPTERS_REFUSED:
        with pytest.raises(ConfigError, match=ADAPTERS_REFUSED[family]):
            module_for(cfg)
        return
    targets = LORA_DEFAULT.get(family)
    if strategy == "lora" and targets is None:
        with pytest.raises(ConfigError, match=r"no default LoRA target modules .*set strategy.lora_target_modules"):
            module_for(cfg)
        targets = LORA_GIVEN[family]
        cfg.strategy.lora_target_modules = targets
    bare, _ = load_model(cfg.model, "encoder")
    batch = batch_of(load_tokenizer(cfg.model))
    reference = hidden_states(bare, batch)
    torch.manual_seed(0)
    module, _ = module_for(cfg)
    model = module.model
    heads = {n for n, _ in model.named_parameters() if n.startswith("heads.h0.")}
    if strategy == "lora":  # A and B of every targeted linear layer of the bare encoder
        n_wrapped = sum(name.rsplit(".", 1)[-1] in targets for name, m in bare.named_modules()
                        if isinstance(m, torch.nn.Linear))
        own = {n for n, _ in model.named_parameters() if re.search(r"\.lora_[AB]\.task0\.weight$", n)}
        assert len(own) == 2 * n_wrapped > 0
    else:  # a down and an up projection (weight, bias) after each distinct layer's output
        n_layers = 1 if family == "albert" else LAYERS
        own = {n for n, _ in model.named_parameters() if ".adapters.task0." in n}
        assert len(own) == 4 * n_layers
    assert trainable(model) == own | heads
    base = {n: p.detach().clone() for n, p in model.named_parameters() if n not in own | heads}
    fit(module, batch)
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)
    enc = model.encoder
    if strategy == "lora":
        with enc.disable_adapter():
            bare_after = hidden_states(enc, batch)
    else:
        enc.set_active_adapters(None)
        bare_after = hidden_states(enc, batch)
    # LoRA switched off is the bare encoder bit for bit; the adapters library runs some families'
    # layers through its own code (ELECTRA: ~1e-8 apart, float rounding) with the same weights.
    tol = 0 if strategy == "lora" else 1e-6
    assert max((a - b).abs().max().item() for a, b in zip(reference, bare_after)) <= tol, "the base changed"


@pytest.mark.parametrize("family", FAMILIES)
def test_token_classification_labels_the_first_piece_of_each_word(compose, family_dirs, family):
    """Where each word's pieces are is computed from each word tokenised alone, as running text
    spells it (a byte-level BPE word after a space starts with Ġ), not from the word_ids alignment."""
    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits
    from tunelab.models.loading import load_tokenizer

    cfg = config(compose, family_dirs, family, "task=token_cls")
    tok = load_tokenizer(cfg.model)
    words = ["visit", "Timbuktuville", "now", "with", "the", "cat"]
    names = ["O", "B-loc", "I-loc"]
    tags = [0, 1, 0, 0, 0, 1]
    df = pd.DataFrame({"tokens": [words], "tags": [[names[t] for t in tags]], "labels": [tags]})
    dm = TextDataModule(cfg.data, cfg.task, tok, max_length=32, batch_size=1, eval_batch_size=1, seed=0,
                        cache_dir=None, splits=Splits(train=df, val=df.iloc[:0], test=df, label_names=names))
    dm.setup()
    ids, labels = dm.tokenized["train"][0]["input_ids"], dm.tokenized["train"][0]["labels"]
    byte_level = family in families.BYTE_LEVEL
    spelled = [tok.tokenize((" " + w) if byte_level else w) for w in words]
    starts = [1 + sum(len(s) for s in spelled[:j]) for j in range(len(words))]
    assert len(ids) == 2 + sum(len(s) for s in spelled)  # one special token at each end
    assert [i for i, x in enumerate(labels) if x != -100] == starts
    assert [labels[s] for s in starts] == tags
    pieces = tok.convert_ids_to_tokens(ids)
    for w, s, sp in zip(words, starts, spelled):
        assert pieces[s:s + len(sp)] == sp
        assert tok.convert_tokens_to_string(sp).strip().lower() == w.lower()
        if byte_level:
            assert sp[0].startswith("Ġ"), (w, sp)


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_lm_trains_and_records_whether_its_head_is_fresh(compose, family_dirs, family, tmp_path):
    from transformers import DataCollatorForLanguageModeling

    from tunelab.models.loading import load_model, load_tokenizer

    cfg = config(compose, family_dirs, family, "task=mlm")
    module, report = module_for(cfg)
    assert report.fresh_head is True  # the folder holds the base model only
    tok = load_tokenizer(cfg.model)
    enc = [tok(t) for t in TEXTS * 4]
    batch = dict(DataCollatorForLanguageModeling(tok, mlm_probability=0.3, seed=0)(enc))
    trainer = fit(module, batch, steps=1)
    assert math.isfinite(float(trainer.callback_metrics["train/loss_step"]))
    module.model.save_pretrained(tmp_path / "mlm")
    tok.save_pretrained(tmp_path / "mlm")
    cfg.model.path = str(tmp_path / "mlm")
    _, report2 = load_model(cfg.model, "mlm")
    assert report2.fresh_head is False, report2.missing  # the head was saved with it


@pytest.mark.parametrize("family", FAMILIES)
def test_model_dropout_reaches_every_dropout_of_the_model(compose, family_dirs, family):
    from tunelab.models.loading import load_model

    cfg = config(compose, family_dirs, family, "model.dropout=0.37")
    for kind in ("seq_cls", "mlm"):
        model, _ = load_model(cfg.model, kind, num_labels=2 if kind == "seq_cls" else None)
        ps = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        # attention dropout inside SDPA kernels is a float attribute, not a module
        ps += [v for m in model.modules() for k, v in vars(m).items()
               if "dropout" in k and isinstance(v, float)]
        assert ps and set(ps) == {0.37}, (kind, sorted(set(ps)))


@pytest.mark.parametrize("family", FAMILIES)
def test_probe_features_are_each_text_s_own_mean_over_its_tokens(compose, family_dirs, family):
    """The frozen features freeze=all's probe fits on: batched and padded, they equal each text
    run alone (no padding) and mean-pooled by hand."""
    from tunelab.models.cache.features import extract
    from tunelab.models.loading import load_model, load_tokenizer

    cfg = config(compose, family_dirs, family)
    X = extract(TEXTS, cfg.model, pooling="mean", max_length=32)
    enc, _ = load_model(cfg.model, "encoder")
    tok = load_tokenizer(cfg.model)
    enc.eval()
    with torch.no_grad():
        want = [enc(**tok(t, return_tensors="pt")).last_hidden_state[0].mean(0).numpy() for t in TEXTS]
    assert X.shape == (len(TEXTS), families.HIDDEN)
    assert max(abs(X[i] - want[i]).max() for i in range(len(TEXTS))) < 1e-5


class _CrashAtStep(L.Callback):
    """Raises when global step ``step`` starts: a run that dies mid-epoch after a checkpoint."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise RuntimeError("injected crash")


# Relative attention, rotary + sliding windows, a shared layer: three runs of ~3 s each per family.
# (All ten families passed this when it was written: TUNELAB_RESUME_ALL=1 runs every one.)
RESUMED = FAMILIES if os.environ.get("TUNELAB_RESUME_ALL") else ("deberta_v3", "modernbert", "albert")


@pytest.mark.parametrize("family", RESUMED)
def test_a_crashed_run_resumes_to_the_metrics_of_an_uninterrupted_one(compose, family_dirs, family, tmp_path,
                                                                     monkeypatch, caplog):
    """In-process: 4 steps an epoch, 2 epochs, last.ckpt every 2 steps, a crash at step 3."""
    from tunelab.ops import faults
    from tunelab.run import RunContext, run

    cfg = config(compose, family_dirs, family, "resume=auto", "resume.name=t", "resume.every_n_steps=2",
                 "data.max_train_samples=32", "data.max_eval_samples=16", "optim.epochs=2", "optim.batch_size=8",
                 "optim.early_stopping_patience=null", "seed=3")
    cfg.cache_dir = str(tmp_path / "cache")
    want = run(cfg, RunContext(out_dir=tmp_path / "ref"))
    with monkeypatch.context() as m:
        m.setattr(faults, "fault_injection_callback", lambda: _CrashAtStep(3))
        with pytest.raises(RuntimeError, match="injected crash"):
            run(cfg, RunContext(out_dir=tmp_path / "job"))
    with caplog.at_level("INFO", logger="tunelab"):
        got = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert "resumed at step 2" in caplog.text
    assert got["status"] == "ok" and got["extra"]["steps_run"] == want["extra"]["steps_run"] == 8
    assert set(got["metrics"]) == set(want["metrics"])
    for k, v in want["metrics"].items():
        assert got["metrics"][k] == pytest.approx(v, rel=1e-7, abs=1e-9), k
