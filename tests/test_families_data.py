"""Every encoder family, continued: word-piece alignment, the MLM head, dropout, the probe's
features, both caches against the full forward pass, and exact resume, over the ten tiny folders
of ``tests/families.py`` (``tests/test_families.py``: what trains and what is refused).
"""

from __future__ import annotations

import math
import os

import lightning as L
import pandas as pd
import pytest
import torch

import families
from families import TEXTS, batch_of, config, fit, module_for

FAMILIES = families.FAMILIES

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



@pytest.mark.parametrize("family", FAMILIES)
def test_caches_give_the_full_forward_pass_s_logits(compose, family_dirs, family):
    """The family-specific half of both caches, against the model's own forward within 1e-5: the
    head on cached pooled features (freeze=all's route), and the top layers on cached prefix
    states (freeze=last2's), the latter in train mode with dropout from the same RNG state (so
    the same masks). The plan takes both routes for every family but ALBERT's prefix."""
    import numpy as np

    from tunelab.models.cache import heads, prefix
    from tunelab.models.cache.features import compute_features
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.plan import route_of

    policy = ["freeze=all"] if family == "albert" else ["freeze=last2"]
    cfg = config(compose, family_dirs, family, *policy, "model.dropout=0.2")
    probe = config(compose, family_dirs, family, "freeze=all", "freeze.probe.fit=head", "freeze.probe.pooling=head")
    assert route_of(probe).runner == "features"
    assert route_of(cfg).runner == ("logreg" if family == "albert" else "prefix"), route_of(cfg).why
    module, _ = module_for(cfg)
    model = module.model
    tok = load_tokenizer(cfg.model)
    batch = batch_of(tok)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        full = model(**inputs).logits
        pooling, head = heads.head_parts(model)
        feats = compute_features(tok, model, TEXTS, pooling=pooling, max_length=32, base=heads.base_of(model))
        cached = head(torch.from_numpy(feats))
    assert (cached - full).abs().max() < 1e-5
    if family == "albert":
        return
    rows = {k: [r[m.bool()].tolist() for r, m in zip(v, batch["attention_mask"])] for k, v in inputs.items()}
    (_, states, _), = prefix.prefix_states(model, 2, rows, np.arange(len(TEXTS)), batch_size=len(TEXTS),
                                           pad_id=tok.pad_token_id)
    module.train()  # the frozen bottom in eval mode, the top layers and the head with dropout
    with torch.no_grad():
        torch.manual_seed(1)
        full = model(**inputs).logits
        torch.manual_seed(1)
        top = prefix.top_logits(model, 2, states, batch["attention_mask"])
    assert (top - full).abs().max() < 1e-5


def test_prefix_cached_run_gives_the_uncached_metrics_deberta_v3(compose, family_dirs, tmp_path):
    """End to end through the plan's prefix route, on the family with the most to hand its layers
    (relative positions, shared relative embeddings), dropout on: the metrics within 1e-5."""
    from tunelab.run import RunContext, run

    ovr = ("freeze=last2", "model.dropout=0.3", "data.max_train_samples=32", "data.max_eval_samples=16",
           "optim.epochs=2", "optim.batch_size=8", "optim.lr=1e-3", "seed=3")
    recs = {}
    for name, extra in (("uncached", ("trainer.feature_cache=false",)), ("cached", ())):
        cfg = config(compose, family_dirs, "deberta_v3", *ovr, *extra)
        cfg.cache_dir = str(tmp_path / "cache")
        recs[name] = run(cfg, RunContext(out_dir=tmp_path / name))
    slow, fast = recs["uncached"], recs["cached"]
    assert "prefix_cache" not in slow["extra"] and fast["extra"]["prefix_cache"]["layers"] == 2
    assert set(slow["metrics"]) == set(fast["metrics"]) and "test/acc" in slow["metrics"]
    for k, v in slow["metrics"].items():
        assert fast["metrics"][k] == pytest.approx(v, abs=1e-5), k
    assert fast["pred_class_counts"] == slow["pred_class_counts"]

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
