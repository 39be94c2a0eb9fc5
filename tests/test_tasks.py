"""One short fit + test per task on the tiny model, through the real builders used by train.py."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tunelab.run import RunContext, run


def _run(compose, tmp_path, *overrides):
    cfg = compose(["model=tiny", "logger=none", "data.max_train_samples=48", "data.max_eval_samples=24",
                   "optim.epochs=1", "optim.batch_size=16", "trainer.enable_progress_bar=false",
                   f"cache_dir={tmp_path}/cache", *overrides])
    return run(cfg, RunContext(out_dir=tmp_path / "out", overrides=list(overrides)))


def test_seq_cls_binary_metrics_and_record(compose, tmp_path):
    rec = _run(compose, tmp_path)
    m = rec["metrics"]
    for k in ("test/acc", "test/f1", "test/f1_macro", "test/loss", "val/acc"):
        assert k in m and math.isfinite(m[k]), k
    assert 0 <= m["test/acc"] <= 1
    assert rec["status"] == "ok" and rec["label_names"] == ["negative", "positive"]
    assert sum(rec["pred_class_counts"].values()) == rec["n_examples"]["test"] == 24
    assert 0.5 <= rec["majority_rate"] <= 1
    assert rec["params"]["trainable"] == rec["params"]["total"] > 0
    saved = (tmp_path / "out" / "results.json").read_text()
    assert '"status": "ok"' in saved


def test_seq_cls_f1_is_positive_class_f1(compose, tmp_path):
    """The reported F1 must equal sklearn's F1 of the positive class on the same predictions."""
    import torch
    from sklearn.metrics import f1_score

    from tunelab.models.modules import SequenceClassifier

    cfg = compose(["model=tiny"])
    from tunelab.models.loading import load_model

    model, _ = load_model(cfg.model, "seq_cls", num_labels=2)
    from tunelab.models.plan import plan_for

    mod = SequenceClassifier(model, plan=plan_for(cfg, model), num_labels=2, positive_index=1, optim_cfg=cfg.optim,
                             label_names=["neg", "pos"], log=lambda *_: None)
    preds = torch.tensor([1, 1, 0, 0, 1, 0, 1, 1])
    labels = torch.tensor([1, 0, 0, 1, 1, 0, 0, 1])
    # Two evaluation batches through the module's own pass end (what Lightning calls).
    probs = torch.nn.functional.one_hot(preds, 2).float() * 0.5 + 0.25  # rows sum to 1, argmax = preds
    mod._preds["test"] = ([labels[:5], labels[5:]], [preds[:5], preds[5:]], [probs[:5], probs[5:]])
    mod.test_loss.update(torch.tensor(0.5), weight=8)
    logged = {}
    mod.log_dict = lambda d, **kw: logged.update(d)
    mod._eval_epoch_end("test")
    assert logged["test/f1"] == pytest.approx(f1_score(labels, preds, pos_label=1), abs=1e-12)
    assert logged["test/f1_macro"] == pytest.approx(f1_score(labels, preds, average="macro"), abs=1e-12)
    assert logged["test/acc"] == pytest.approx(5 / 8)
    assert mod.test_outputs["pred_class_counts"] == {"neg": 3, "pos": 5}
    saved = mod.test_outputs["predictions"]  # without a trainer the rows are in scoring order
    assert saved.index.tolist() == list(range(8)) and saved.pred.tolist() == preds.tolist()
    assert saved.gold.tolist() == labels.tolist() and saved.probs.astype(float).tolist() == probs.tolist()
    # with the negative class as the positive one, f1 follows it
    mod.positive_index = 0
    mod._preds["test"] = ([labels], [preds], [probs])
    mod._eval_epoch_end("test")
    assert logged["test/f1"] == pytest.approx(f1_score(labels, preds, pos_label=0), abs=1e-12)


def test_multiclass_bbc(compose, tmp_path):
    rec = _run(compose, tmp_path, "data=bbc_news")
    assert len(rec["label_names"]) == 5
    assert rec["metrics"]["test/f1"] == pytest.approx(rec["metrics"]["test/f1_macro"])


def test_token_cls_entity_f1_and_alignment(compose, tmp_path):
    rec = _run(compose, tmp_path, "data=wnut_ner", "task=token_cls")
    m = rec["metrics"]
    for k in ("test/f1", "test/precision", "test/recall", "test/loss"):
        assert k in m and math.isfinite(m[k])
    assert rec["label_names"][0] == "O" and "B-person" in rec["label_names"]


@pytest.mark.parametrize("label_all", [False, True])
def test_word_to_subword_label_alignment(compose, label_all):
    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits
    from tunelab.models.loading import load_tokenizer

    cfg = compose(["model=tiny", "task=token_cls", f"task.label_all_tokens={label_all}"])
    tok = load_tokenizer(cfg.model)
    names = ["O", "B-loc", "I-loc"]
    df = pd.DataFrame({"tokens": [["visit", "Timbuktuville", "now"]], "tags": [["O", "B-loc", "O"]]})
    df["labels"] = df["tags"].map(lambda ts: [names.index(t) for t in ts])
    splits = Splits(train=df, val=df.iloc[:0], test=df, label_names=names)
    dm = TextDataModule(cfg.data, cfg.task, tok, max_length=32, batch_size=2, eval_batch_size=2, seed=0,
                        cache_dir=None, splits=splits)
    dm.setup()
    ids = dm.tokenized["train"][0]["input_ids"]
    labels = dm.tokenized["train"][0]["labels"]
    pieces = tok.convert_ids_to_tokens(ids)
    assert len(pieces) > 5  # "Timbuktuville" splits into several word pieces
    assert labels[0] == -100 and labels[-1] == -100           # [CLS], [SEP]
    assert labels[1] == 0 and labels[2] == 1                  # visit, first piece of the entity
    inner = labels[3:-2]                                      # the entity's other pieces
    assert inner and all(x == (2 if label_all else -100) for x in inner)
    assert labels[-2] == 0                                    # now


def test_mlm_perplexity_and_fresh_head_note(compose, tmp_path):
    rec = _run(compose, tmp_path, "task=mlm")
    m = rec["metrics"]
    assert m["test/perplexity"] == pytest.approx(math.exp(m["test/loss"]), rel=1e-4)
    assert m["test/perplexity"] > 1


def test_mlm_masking_statistics(compose):
    """15% of tokens selected; of those ~80% [MASK], ~10% random, ~10% kept; specials never."""
    import torch

    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits
    from tunelab.models.loading import load_tokenizer

    cfg = compose(["model=tiny", "task=mlm"])
    tok = load_tokenizer(cfg.model)
    text = " ".join(["the cat sat on the mat with another small dog"] * 6)
    df = pd.DataFrame({"text": [text] * 200, "label": None})
    splits = Splits(train=df, val=df.iloc[:0], test=df, label_names=None)
    dm = TextDataModule(cfg.data, cfg.task, tok, max_length=64, batch_size=200, eval_batch_size=200, seed=0,
                        cache_dir=None, splits=splits)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    labels, ids = batch["labels"], batch["input_ids"]
    selected = labels != -100
    rate = selected.float().mean().item()
    assert 0.13 < rate < 0.17
    masked = (ids == tok.mask_token_id) & selected
    kept = (ids == labels) & selected
    assert 0.75 < masked.sum() / selected.sum() < 0.85
    assert 0.06 < kept.sum() / selected.sum() < 0.14
    assert not selected[:, 0].any()  # [CLS] is never masked
    # Evaluation masks are seeded: the same batch twice gives the same masks.
    again = next(iter(dm.test_dataloader()))
    assert torch.equal(again["input_ids"], ids)


@pytest.mark.parametrize("whole_word,workers", [(False, 0), (True, 0), (False, 1)])
def test_every_validation_pass_uses_the_same_masks(compose, whole_word, workers):
    """Lightning reuses one val loader for every epoch: each pass must mask the same tokens, or
    the epochs' val/loss are not comparable and a resumed run (fresh collator) measures other
    masks than the uninterrupted one. Training batches, by contrast, get new masks."""
    import torch

    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits
    from tunelab.models.loading import load_tokenizer

    cfg = compose(["model=tiny", "task=mlm", f"task.whole_word_mask={whole_word}",
                   f"data.num_workers={workers}"])
    tok = load_tokenizer(cfg.model)
    df = pd.DataFrame({"text": [f"the cat number {i} sat on the mat with a dog" for i in range(40)],
                       "label": None})
    splits = Splits(train=df, val=df, test=df, label_names=None)
    dm = TextDataModule(cfg.data, cfg.task, tok, max_length=32, batch_size=8, eval_batch_size=8, seed=0,
                        cache_dir=None, splits=splits)
    dm.setup()
    val = dm.val_dataloader()
    first, second = [b["input_ids"] for b in val], [b["input_ids"] for b in val]
    assert len(first) == 5 and all(torch.equal(a, b) for a, b in zip(first, second))
    train = dm.train_dataloader()
    torch.manual_seed(0)
    t1 = torch.cat([b["labels"] for b in train], 0)
    t2 = torch.cat([b["labels"] for b in train], 0)
    assert not torch.equal(t1, t2)


def test_mlm_whole_word_masking_runs_through_the_core_path(compose, tmp_path):
    """transformers 4.57's whole-word option crashes here; ours masks every piece of a word."""
    from tunelab.models.loading import load_tokenizer

    rec = _run(compose, tmp_path, "task=mlm", "task.whole_word_mask=true")
    assert rec["status"] == "ok" and rec["metrics"]["test/perplexity"] > 1
    from tunelab.data.masking import WholeWordMaskCollator

    tok = load_tokenizer(compose(["model=tiny"]).model)
    enc = [tok("unbelievably strange hyperparameters", return_special_tokens_mask=True)] * 64
    batch = WholeWordMaskCollator(tok, mlm_probability=0.5, mask_replace_prob=1.0, random_replace_prob=0.0, seed=0)(enc)
    pieces = tok.convert_ids_to_tokens(enc[0]["input_ids"])
    for row in batch["labels"]:
        chosen = (row != -100).tolist()
        for i, p in enumerate(pieces):
            if p.startswith("##"):
                assert chosen[i] == chosen[i - 1], "a word piece was masked without the rest of its word"


def test_max_steps_before_first_validation_still_tests(compose, tmp_path):
    rec = _run(compose, tmp_path, "optim.max_steps=2", "optim.epochs=5", "optim.val_check_interval=1.0")
    assert rec["status"] == "ok" and rec["extra"]["steps_run"] == 2
    assert "test/acc" in rec["metrics"]
