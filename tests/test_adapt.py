"""adapt=tapt|dapt (issue 5): MLM stage on unlabelled text, saved encoder, stage-2 fine-tuning.

Everything on a tiny BERT saved to a folder first, so "the original weights" are a real
checkpoint (model.path) that the adapted encoder can be compared with.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tunelab.run import RunContext, run

TINY_RUN = ["logger=none", "data.max_train_samples=48", "data.max_eval_samples=24", "optim.epochs=1",
            "optim.batch_size=16", "trainer.enable_progress_bar=false"]
# Added when a run adapts (adapt=tapt|dapt): the adapt group exists only then.
TINY_ADAPT = ["adapt.head_warmup_steps=2", "adapt.epochs=1"]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """120 labelled texts (a CSV is read in milliseconds; the packaged tweets take seconds)."""
    words = ["great", "awful", "flight", "delay", "crew", "bag", "seat", "service", "late", "friendly"]
    rows = [(f"{words[i % 10]} {words[(i * 3) % 10]} text {i} about the {words[(i * 7) % 10]} today",
             "positive" if i % 3 else "negative") for i in range(120)]
    path = tmp_path_factory.mktemp("data") / "small.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A tiny BERT (random weights, no MLM head) saved as a Hugging Face folder."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tunelab.config import register_configs
    from tunelab.models.loading import load_model, load_tokenizer

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["model=tiny"])
    GlobalHydra.instance().clear()
    torch.manual_seed(0)
    model, _ = load_model(cfg.model, "encoder")
    out = tmp_path_factory.mktemp("tiny_bert")
    model.save_pretrained(str(out), safe_serialization=True)
    load_tokenizer(cfg.model).save_pretrained(str(out))
    return out


def _cfg(compose, tmp_path, folder, *overrides, data=None):
    data = [] if data is None else ["data=csv", f"data.path={data}", "data.labels=[negative,positive]"]
    adapting = any(o.startswith(("adapt=tapt", "adapt=dapt")) for o in overrides)
    return compose([f"model.path={folder}", "model.max_length=48", f"cache_dir={tmp_path}/cache",
                    *TINY_RUN, *(TINY_ADAPT if adapting else []), *data, *overrides])


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def test_tapt_pipeline_saves_an_encoder_that_stage2_loads(compose, tmp_path, tiny_folder, small_csv):
    cfg = _cfg(compose, tmp_path, tiny_folder, "adapt=tapt", "adapt.eval_original=csv", data=small_csv)
    rec = run(cfg, RunContext(out_dir=tmp_path / "job", overrides=["adapt=tapt"]))
    assert rec["status"] == "ok"
    m, ad = rec["metrics"], rec["extra"]["adapt"]
    for k in ("adapt/ppl_before", "adapt/ppl_after_warmup", "adapt/ppl_after",
              "adapt/ppl_original_before", "adapt/ppl_original_after", "test/acc", "test/f1"):
        assert k in m and math.isfinite(m[k]), k
    assert ad["corpus"] == "tapt:csv:train" and ad["fresh_mlm_head"]
    assert ad["n_texts"] + ad["n_heldout"] + ad["n_removed_overlap"] == 48
    assert ad["warmup_steps"] == 2 and ad["steps"] > 0
    for key in ("corpus", "n_texts", "ppl_before", "ppl_after_warmup", "ppl_after", "steps", "path"):
        assert key in ad, key
    # The record names the user's model, not the temporary folder of stage 2.
    assert rec["config"]["model"]["path"] == str(tiny_folder)

    enc = Path(ad["path"])
    assert enc == tmp_path / "job" / "adapted_encoder"
    assert (enc / "model.safetensors").is_file() and (enc / "config.json").is_file()
    assert (enc / "tokenizer.json").is_file() or (enc / "vocab.txt").is_file()
    assert not list(enc.glob("*.bin"))                      # safetensors only
    # The encoder moved away from the original checkpoint.
    orig, new = _tensors(tiny_folder), _tensors(enc)
    key = "encoder.layer.0.attention.self.query.weight"
    assert not new[f"bert.{key}"].equal(orig[key])
    assert new["bert.embeddings.word_embeddings.weight"].shape == orig["embeddings.word_embeddings.weight"].shape
    # The original pooler was copied in (stage 2's classifier input is comparable with adapt=none).
    assert new["bert.pooler.dense.weight"].equal(orig["pooler.dense.weight"])
    # Stage 2 loaded that folder: only the classifier is new.
    assert rec["extra"]["model_load"]["missing"] == ["classifier.bias", "classifier.weight"]
    assert not (tmp_path / "job" / "adapt_checkpoints").exists()

    # Any later run can use it with model.path=<job dir>/adapted_encoder (item 4 of the issue).
    from tunelab.models.loading import load_model

    later = _cfg(compose, tmp_path, enc, data=small_csv)
    model, report = load_model(later.model, "seq_cls", num_labels=2)
    assert report.source == str(enc) and report.missing == ["classifier.bias", "classifier.weight"]
    assert model.bert.encoder.layer[0].attention.self.query.weight.equal(new[f"bert.{key}"])
    mlm, report = load_model(later.model, "mlm")
    assert not [k for k in report.missing if k.startswith("cls.")]   # the trained MLM head comes too


def test_tapt_corpus_has_no_val_or_test_text(compose, tmp_path, tiny_folder):
    """Training texts only; a text duplicated into val/test is removed from the MLM corpus."""
    from tunelab.methods.adapt.corpus import corpus_texts, norm, prepare_corpus, task_splits, texts_of

    rows = [(f"unique tweet number {i} about flights", "positive" if i % 2 else "negative") for i in range(80)]
    rows += [("the very same retweet", "negative")] * 20          # lands in train, val and test
    csv = tmp_path / "d.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(csv, index=False)
    cfg = _cfg(compose, tmp_path, tiny_folder, "adapt=tapt", "data=csv", f"data.path={csv}",
               "data.max_train_samples=null", "data.max_eval_samples=null")
    splits = task_splits(cfg)
    held = {norm(t) for df in (splits.val, splits.test) for t in texts_of(df)}
    assert "the very same retweet" in held
    texts, source = corpus_texts(cfg)
    assert sorted(texts) == sorted(texts_of(splits.train))          # exactly the training texts
    corpus = prepare_corpus(texts, cfg, held)
    used = corpus["train"] + corpus["heldout"]
    assert not {norm(t) for t in used} & held
    assert corpus["n_removed_overlap"] > 0
    assert {norm(t) for t in used} <= {norm(t) for t in texts_of(splits.train)}


def test_dapt_on_a_text_file_stops_after_stage1(compose, tmp_path, tiny_folder, small_csv):
    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(f"the patient took {i} mg of the drug and felt better" for i in range(40)) + "\n\n")
    cfg = _cfg(compose, tmp_path, tiny_folder, "adapt=dapt", f"adapt.corpus={corpus}", "adapt.skip_finetune=true",
               "adapt.head_warmup_steps=0", "adapt.whole_word_mask=true", "adapt.mlm_probability=0.3",
               data=small_csv)
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    ad = rec["extra"]["adapt"]
    assert rec["status"] == "ok" and ad["corpus"] == f"file:{corpus}"
    assert ad["n_texts"] + ad["n_heldout"] == 40 and ad["n_heldout"] == 4
    assert ad["masking"]["whole_word_mask"] is True and ad["masking"]["mlm_probability"] == 0.3
    # dapt's default eval_original is the task's own data: forgetting is measured.
    assert ad["original"]["data"] == "csv" and ad["original"]["n_texts"] == 12
    assert "adapt/ppl_original_after" in rec["metrics"] and "test/acc" not in rec["metrics"]
    assert (tmp_path / "job" / "adapted_encoder" / "model.safetensors").is_file()


def test_heldout_perplexity_uses_fixed_masks(compose, tmp_path, tiny_folder):
    """Perplexity through trainer.validate = exp(mean loss over the masked tokens), summed by hand
    over the same loader here; and every measurement uses the same masks."""
    import torch

    from tunelab.methods.adapt.mlm import heldout_perplexity, mlm_datamodule
    from tunelab.models.loading import load_model, load_tokenizer

    cfg = _cfg(compose, tmp_path, tiny_folder, "adapt=tapt", "optim.eval_batch_size=4")
    texts = [f"a short text about topic {i} and another word" + " again" * (i % 4) for i in range(20)]
    dm = mlm_datamodule(cfg, load_tokenizer(cfg.model), texts, texts[:10])
    model, _ = load_model(cfg.model, "mlm")
    a = heldout_perplexity(cfg, model, dm.val_dataloader(), tmp_path)
    b = heldout_perplexity(cfg, model, dm.val_dataloader(), tmp_path)
    assert a == b
    total, n, masks = 0.0, 0, []
    model.eval()
    with torch.no_grad():
        for batch in dm.val_dataloader():                       # 3 batches: 4 + 4 + 2 texts
            batch.pop("special_tokens_mask", None)
            m = int((batch["labels"] != -100).sum())
            masks.append(batch["labels"] != -100)
            total += float(model(**batch).loss) * m
            n += m
    assert len(masks) == 3 and n > 0
    assert a == pytest.approx(math.exp(total / n), rel=1e-5)
    again = [batch["labels"] != -100 for batch in dm.val_dataloader()]
    assert all(torch.equal(x, y) for x, y in zip(masks, again))


def test_adapt_selects_its_method_and_config_errors(compose, tmp_path, tiny_folder, small_csv):
    from hydra.utils import get_method

    from tunelab.methods.adapt import run as run_adapt
    from tunelab.errors import ConfigError, TunelabError
    from tunelab.validation import validate

    assert compose(["model=tiny"]).method.name == "finetune"
    assert compose(["model=tiny", "adapt=none"]).method.name == "finetune"   # the reference arm
    assert get_method(compose(["model=tiny", "adapt=tapt"]).method._target_) is run_adapt
    with pytest.raises(ConfigError, match="cannot be combined"):    # no silent choice between the two
        validate(compose(["model=tiny", "adapt=tapt", "curriculum=related"]))
    for overrides, words in ((["adapt=dapt", "adapt.corpus=null"], "needs a domain corpus"),
                             (["adapt=dapt", "adapt.corpus=/nope/corpus.txt"], "file not found"),
                             (["adapt=dapt", "adapt.corpus=no_such_data"], "no data config"),
                             (["adapt=tapt", "adapt.corpus=drug_reviews"], "tapt uses the task")):
        cfg = _cfg(compose, tmp_path, tiny_folder, *overrides, data=small_csv)
        with pytest.raises(TunelabError, match=words):
            run(cfg, RunContext(out_dir=tmp_path / "bad"))
    with pytest.raises(ConfigError, match="adapt.name='mlm' is not one of"):
        run(_cfg(compose, tmp_path, tiny_folder, "adapt=tapt", "adapt.name=mlm", data=small_csv),
            RunContext(out_dir=tmp_path / "bad2"))


def test_adapt_rules_are_checked_before_any_data_is_read(compose):
    """validate() alone (no data, no model) refuses what adapt=tapt|dapt cannot run."""
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    base = ["model=tiny", "logger=none"]
    validate(compose([*base, "adapt=tapt"]))
    validate(compose([*base, "adapt=dapt"]))                                   # corpus: drug_reviews
    validate(compose([*base, "adapt=dapt", "adapt.mask_replace_prob=0.9", "adapt.random_replace_prob=0.1"]))
    for overrides, words in ((["adapt=tapt", "adapt.corpus=drug_reviews"], "adapt=tapt uses the task's own"),
                             (["adapt=dapt", "adapt.corpus=null"], "adapt=dapt needs a domain corpus"),
                             (["adapt=dapt", "adapt.corpus="], "adapt=dapt needs a domain corpus"),
                             (["adapt=tapt", "adapt.mask_replace_prob=0.9", "adapt.random_replace_prob=0.2"],
                              r"adapt.mask_replace_prob \+ adapt.random_replace_prob must be <= 1"),
                             (["adapt=tapt", "adapt.heldout_size=1.0"], r"adapt.heldout_size=1.0 must be in \(0, 1\)"),
                             (["adapt=tapt", "adapt.heldout_size=0.0"], r"adapt.heldout_size=0.0 must be in \(0, 1\)"),
                             (["adapt=tapt", "adapt.mlm_probability=0.0"], r"adapt.mlm_probability=0.0 must be in \(0, 1\]"),
                             (["adapt=tapt", "adapt.random_replace_prob=-0.1"], "adapt.random_replace_prob=-0.1 must be"),
                             (["adapt=tapt", "adapt.head_warmup_steps=-1"], "adapt.head_warmup_steps=-1 must be >= 0")):
        with pytest.raises(ConfigError, match=words):
            validate(compose([*base, *overrides]))


def test_whole_word_masking_masks_every_piece_of_a_word(compose):
    import torch

    from tunelab.data.masking import WholeWordMaskCollator
    from tunelab.models.loading import load_tokenizer

    tok = load_tokenizer(compose(["model=tiny"]).model)
    text = "unbelievably tokenization of antidisestablishmentarianism is hilarious " * 4
    enc = tok([text] * 64, truncation=True, max_length=64, return_special_tokens_mask=True)
    examples = [{k: enc[k][i] for k in enc} for i in range(64)]
    coll = WholeWordMaskCollator(tok, mlm_probability=0.3, mask_replace_prob=0.8, random_replace_prob=0.1, seed=1)
    batch = coll(examples)
    sel = batch["labels"] != -100
    pieces = tok.convert_ids_to_tokens(enc["input_ids"][0])
    word, words = -1, []
    for p in pieces:
        word += 0 if p.startswith("##") else 1
        words.append(word)
    words = torch.tensor(words)
    for row in sel:
        for w in words.unique():
            assert row[words == w].all() or not row[words == w].any()   # all pieces or none
    assert not sel[:, 0].any() and not sel[:, len(pieces) - 1].any()     # [CLS]/[SEP] never
    assert 0.15 < sel.float().mean() < 0.5
    again = WholeWordMaskCollator(tok, mlm_probability=0.3, mask_replace_prob=0.8, random_replace_prob=0.1, seed=1)
    assert torch.equal(again(examples)["input_ids"], batch["input_ids"])     # seeded masks repeat
    masked = sel & (batch["input_ids"] == tok.mask_token_id)
    assert 0.7 < masked.sum() / sel.sum() < 0.9


def test_fast_dropout_reaches_the_masked_lm(compose, tmp_path, tiny_folder, monkeypatch):
    """trainer.fast_dropout: the MLM that adapts is loaded with it (spy on the swap)."""
    from tunelab.models import dropout

    corpus = tmp_path / "domain.txt"
    corpus.write_text("\n".join(f"the patient took {i} mg of the drug" for i in range(40)) + "\n")
    swapped = []
    real = dropout.use_fast_dropout
    monkeypatch.setattr(dropout, "use_fast_dropout", lambda m: swapped.append(type(m).__name__) or real(m))
    cfg = _cfg(compose, tmp_path, tiny_folder, "adapt=dapt", f"adapt.corpus={corpus}", "adapt.skip_finetune=true",
               "adapt.head_warmup_steps=0", "trainer.fast_dropout=true")
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert rec["status"] == "ok" and swapped == ["BertForMaskedLM"]
