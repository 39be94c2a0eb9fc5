"""Checkpoints as the hub ships them: no ``tokenizer.json``, weights in ``pytorch_model.bin``.

``microsoft/deberta-v3-*`` ships only ``spm.model``; ``albert-base-v2`` ``spiece.model``;
``xlm-roberta-base`` ``sentencepiece.bpe.model``; ``roberta-base`` and ``microsoft/deberta-base``
GPT-2's ``vocab.json`` + ``merges.txt`` (``tests/hub_formats.py`` builds each, tiny). transformers
converts those files to a fast tokenizer; for a SentencePiece model that needs ``sentencepiece`` and
``protobuf`` (tunelab dependencies). Checked against independent references: ``sentencepiece``'s
own ``encode``, the saved weights, each word tokenised alone; and, without the libraries, the one
sentence and exit 2 a user sees instead of transformers' ``AttributeError``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import unicodedata

import pandas as pd
import pytest
import torch

import hub_formats
from families import config, training_texts
from hub_formats import BYTE_LEVEL, HUB_FORMATS, SPM_FILE, SPM_FORMATS, TOKENIZER_FILES

# Tweets the SentencePiece models were not trained on, and hand-made edge cases (accents, runs of
# spaces, LaTeX quotes, a comma between digits, a word the vocabulary lacks).
HELD_OUT = training_texts(600)[402:600] + [
    "the cat sat on the mat", "Héllo   wörld!! 9,9 ``quoted''", "visit Timbuktuville now", "a", "ÀÉÎ über café"]


@pytest.fixture(scope="session")
def hub_dirs(tmp_path_factory):
    """One folder per hub layout, built once per session (about 6 s, mostly the model saves)."""
    return hub_formats.build_all(tmp_path_factory.mktemp("hub"))


def _tokenizer(compose, hub_dirs, fmt):
    from tunelab.models.loading import load_tokenizer

    return load_tokenizer(config(compose, hub_dirs, fmt).model)


def _sp(hub_dirs, fmt):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(hub_dirs[fmt].path / SPM_FILE[fmt]))


def _albert_text(t: str) -> str:
    """ALBERT's own preprocessing before its SentencePiece model: collapse spaces, LaTeX quotes to
    ", accents stripped (NFKD), lower case (``AlbertTokenizer.preprocess_text``)."""
    t = " ".join(t.split()).replace("``", '"').replace("''", '"')
    return "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c)).lower()


def _reference(fmt: str, sp, text: str) -> list[int]:
    """The ids the checkpoint's own SentencePiece model gives ``text``, with the family's specials."""
    if fmt == "deberta_v3":  # [CLS] A [SEP], the pieces' own ids; [CLS]/[SEP] are pieces 1 and 2
        return [sp.piece_to_id("[CLS]"), *sp.encode(text), sp.piece_to_id("[SEP]")]
    if fmt == "albert":
        return [sp.piece_to_id("[CLS]"), *sp.encode(_albert_text(text)), sp.piece_to_id("[SEP]")]
    # XLM-R: fairseq's <s>=0 <pad>=1 </s>=2 <unk>=3 first, every other piece one further on
    return [0, *(3 if i == sp.unk_id() else i + 1 for i in sp.encode(text)), 2]


def test_the_folders_hold_only_what_the_hub_ships(hub_dirs):
    for fmt, folder in hub_dirs.items():
        names = {p.name for p in folder.path.iterdir()}
        assert names == TOKENIZER_FILES[fmt] | {"config.json", "pytorch_model.bin"}, fmt


@pytest.mark.parametrize("fmt", SPM_FORMATS)
def test_converted_tokenizer_gives_the_sentencepiece_model_s_own_ids(compose, hub_dirs, fmt):
    tok, sp = _tokenizer(compose, hub_dirs, fmt), _sp(hub_dirs, fmt)
    assert tok.is_fast
    exact, ties = 0, []
    for text in HELD_OUT:
        ids, ref = tok(text)["input_ids"], _reference(fmt, sp, text)
        if ids == ref:
            exact += 1
            continue
        # Else only a Viterbi tie may differ: the same characters cut into pieces of equal total score
        # (ALBERT's "soooo": so+o+oo and so+oo+o; the two libraries break such ties differently).
        mine, theirs = tok.convert_ids_to_tokens(ids[1:-1]), [sp.id_to_piece(i) for i in ref[1:-1]]
        assert "".join(mine) == "".join(theirs), (text, mine, theirs)
        score = lambda pieces: sum(sp.get_score(sp.piece_to_id(p)) for p in pieces)  # noqa: E731
        assert score(mine) == pytest.approx(score(theirs), abs=1e-4), (text, mine, theirs)
        ties.append(text)
    assert exact >= 0.97 * len(HELD_OUT), ties
    # DeBERTa-v3: a word after a space starts with ▁, as in the model; [MASK] follows the pieces.
    if fmt == "deberta_v3":
        pieces = tok.tokenize("the airline lost my bag")
        assert pieces == sp.encode("the airline lost my bag", out_type=str)
        assert sum(p.startswith("▁") for p in pieces) == 5 and pieces[0].startswith("▁")
        assert tok.mask_token_id == sp.get_piece_size() and tok.pad_token_id == sp.piece_to_id("[PAD]") == 0
    if fmt == "xlmr":
        assert tok.mask_token_id == sp.get_piece_size() + 1 and tok.pad_token_id == 1


@pytest.mark.parametrize("fmt", HUB_FORMATS)
def test_the_encoder_is_the_saved_weights_and_covers_every_id(compose, hub_dirs, fmt):
    """``pytorch_model.bin`` is read (only the task head is new), and every token id has an
    embedding row, [MASK] and XLM-R's shifted pieces included."""
    from tunelab.models.loading import load_model

    cfg = config(compose, hub_dirs, fmt)
    model, report = load_model(cfg.model, "seq_cls", num_labels=2)
    saved = torch.load(hub_dirs[fmt].path / "pytorch_model.bin", weights_only=True)
    base = getattr(model, model.base_model_prefix).state_dict()
    # RoBERTa's and XLM-R's classification heads read no pooler: its weights are the only ones unused
    assert set(base) <= set(saved) and {k.split(".")[0] for k in set(saved) - set(base)} <= {"pooler"}, fmt
    assert sorted(report.unexpected) == sorted(set(saved) - set(base))
    assert all(torch.equal(saved[k], base[k]) for k in base), fmt
    assert report.missing and all(not k.startswith(model.base_model_prefix + ".") for k in report.missing), report.missing
    tok = _tokenizer(compose, hub_dirs, fmt)
    assert len(tok) <= model.config.vocab_size and tok.pad_token_id == model.config.pad_token_id
    ids = tok(HELD_OUT + [tok.mask_token])["input_ids"]
    assert max(max(row) for row in ids) < model.get_input_embeddings().num_embeddings


@pytest.mark.parametrize("fmt", HUB_FORMATS)
def test_token_classification_labels_each_word_s_first_piece(compose, hub_dirs, fmt):
    """Where a word's pieces start is computed from each word tokenised alone, as running text spells
    it (``▁word``; byte-level BPE ``Ġword``), and for SentencePiece checked against the model's own
    pieces of the word: not from the tokenizer's ``word_ids``."""
    from tunelab.data.datamodule import TextDataModule
    from tunelab.data.splits import Splits

    cfg = config(compose, hub_dirs, fmt, "task=token_cls", "data=wnut_ner")
    tok = _tokenizer(compose, hub_dirs, fmt)
    words = ["visit", "Timbuktuville", "now", "with", "the", "cat"]
    names, tags = ["O", "B-loc", "I-loc"], [0, 1, 0, 0, 0, 1]
    df = pd.DataFrame({"tokens": [words], "tags": [[names[t] for t in tags]], "labels": [tags]})
    dm = TextDataModule(cfg.data, cfg.task, tok, max_length=32, batch_size=1, eval_batch_size=1, seed=0,
                        cache_dir=None, splits=Splits(train=df, val=df.iloc[:0], test=df, label_names=names))
    dm.setup()
    ids, labels = dm.tokenized["train"][0]["input_ids"], dm.tokenized["train"][0]["labels"]
    if fmt in BYTE_LEVEL:
        spelled = [tok.tokenize(" " + w) for w in words]
        assert all(s[0].startswith("Ġ") for s in spelled), spelled
    else:
        sp = _sp(hub_dirs, fmt)
        spelled = [sp.encode(_albert_text(w) if fmt == "albert" else w, out_type=str) for w in words]
        assert all(s[0].startswith("▁") for s in spelled), spelled
    starts = [1 + sum(len(s) for s in spelled[:j]) for j in range(len(words))]
    assert len(ids) == 2 + sum(len(s) for s in spelled)
    assert tok.convert_ids_to_tokens(ids)[1:-1] == [p for s in spelled for p in s]
    assert [i for i, x in enumerate(labels) if x != -100] == starts
    assert [labels[s] for s in starts] == tags


RUN = ("data.max_train_samples=48", "data.max_eval_samples=24", "optim.batch_size=8", "optim.lr=1e-3",
       "optim.epochs=2", "seed=0", "trainer.keep_checkpoints=none")


@pytest.mark.parametrize("task", ["seq_cls", "token_cls"])
@pytest.mark.parametrize("fmt", HUB_FORMATS)
def test_a_run_on_each_hub_folder_finishes_with_finite_metrics(compose, hub_dirs, fmt, task, tmp_path):
    """A whole job (tokenised splits, the model from pytorch_model.bin, two epochs, test), as
    ``train.py model.path=<folder>`` runs it."""
    from tunelab.run import RunContext, run

    extra = ("task=token_cls", "data=wnut_ner") if task == "token_cls" else ()
    cfg = config(compose, hub_dirs, fmt, *RUN, *extra)
    cfg.cache_dir = str(tmp_path / "cache")
    rec = run(cfg, RunContext(out_dir=tmp_path / "run"))
    assert rec["status"] == "ok", rec.get("error")
    assert rec["extra"]["steps_run"] == 2 * 48 // 8  # every batch of both epochs
    # only the task head (and a pooler the checkpoint may lack) is new: the encoder came from the .bin
    assert {k.split(".")[0] for k in rec["extra"]["model_load"]["missing"]} <= {"classifier", "pooler"}, rec["extra"]
    metric = "test/f1" if task == "token_cls" else "test/acc"
    assert metric in rec["metrics"] and all(math.isfinite(v) for v in rec["metrics"].values()), rec["metrics"]


def test_the_hub_layout_runs_as_the_same_checkpoint_saved_by_save_pretrained(compose, hub_dirs, tmp_path):
    """DeBERTa-v3 from spm.model + pytorch_model.bin, and the same tokenizer and weights re-saved with
    ``save_pretrained`` (tokenizer.json, model.safetensors: the layout tests/families.py uses): one
    job on each gives the same metrics, so nothing in the hub layout's path trains differently."""
    from transformers import AutoModel

    from tunelab.run import RunContext, run

    saved = tmp_path / "resaved"
    _tokenizer(compose, hub_dirs, "deberta_v3").save_pretrained(str(saved))
    AutoModel.from_pretrained(str(hub_dirs["deberta_v3"].path)).save_pretrained(str(saved), safe_serialization=True)
    assert (saved / "tokenizer.json").exists() and (saved / "model.safetensors").exists()
    recs = {}
    for name, folder in (("hub", hub_dirs["deberta_v3"]), ("resaved", hub_formats.HubFolder("deberta_v3", saved))):
        cfg = config(compose, {"deberta_v3": folder}, "deberta_v3", *RUN)
        cfg.cache_dir = str(tmp_path / f"cache_{name}")
        recs[name] = run(cfg, RunContext(out_dir=tmp_path / name))
    assert recs["hub"]["metrics"] == pytest.approx(recs["resaved"]["metrics"], abs=1e-6)


def test_tokenizer_identity_tells_two_sentencepiece_models_apart(compose, hub_dirs, tmp_path):
    """Two DeBERTa-v3 folders that differ only in ``spm.model`` (trained on other tweets, as many
    pieces) key their tokenised splits apart; the same files give the same key. Fast (the converted
    JSON) and slow (``_slow_tokenizer_state``: the SentencePiece model's bytes) alike."""
    from transformers import DebertaV2Tokenizer

    from tunelab.caching import tokenizer_identity

    a = hub_dirs["deberta_v3"].path
    b, same = tmp_path / "other_spm", tmp_path / "same"
    shutil.copytree(a, b), shutil.copytree(a, same)
    hub_formats.train_spm(training_texts(900)[500:900], b / "spm.model", **hub_formats.SPM_SPECIALS["deberta_v3"])
    assert (b / "spm.model").read_bytes() != (a / "spm.model").read_bytes()
    fast = {k: _tokenizer(compose, {"deberta_v3": hub_formats.HubFolder("deberta_v3", p)}, "deberta_v3")
            for k, p in (("a", a), ("b", b), ("same", same))}
    assert len(fast["a"]) == len(fast["b"])
    assert fast["a"]("the airline lost my bag")["input_ids"] != fast["b"]("the airline lost my bag")["input_ids"]
    assert tokenizer_identity(fast["a"]) != tokenizer_identity(fast["b"])
    assert tokenizer_identity(fast["a"]) == tokenizer_identity(fast["same"])
    slow = {k: DebertaV2Tokenizer.from_pretrained(str(p)) for k, p in (("a", a), ("b", b), ("same", same))}
    assert tokenizer_identity(slow["a"]) != tokenizer_identity(slow["b"])
    assert tokenizer_identity(slow["a"]) == tokenizer_identity(slow["same"])


# A user's environment without the converter's libraries: the import of each made to fail (as if not
# installed) before transformers looks for it.
_BLOCKED_RUN = "import sys, runpy; [sys.modules.__setitem__(m, None) for m in {blocked!r}]; " \
               "sys.argv = {argv!r}; runpy.run_path(sys.argv[0], run_name='__main__')"


@pytest.mark.parametrize("blocked, named", [(["sentencepiece"], "sentencepiece"),
                                            (["google.protobuf"], "protobuf")])
def test_without_the_converter_s_libraries_a_run_says_what_to_install(hub_dirs, tmp_path, blocked, named):
    from conftest import ROOT

    argv = [str(ROOT / "train.py"), "model=minilm", f"model.path={hub_dirs['deberta_v3'].path}", "logger=none",
            "data.max_train_samples=8", "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path}/run"]
    code = _BLOCKED_RUN.format(blocked=blocked, argv=argv)
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    errors = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].endswith("pip install sentencepiece protobuf."), p.stderr[-3000:]
    assert f"needs {named} to convert" in errors[0] and "spm.model" in errors[0]


def test_an_unrelated_tokenizer_error_keeps_its_own_message(monkeypatch):
    """With a library missing, only an error of the converter (its module in the traceback, or a
    message naming the library) becomes the install sentence: an unknown model type does not."""
    import transformers.utils

    from tunelab.models.loading import converter_libraries_missing

    monkeypatch.setattr(transformers.utils, "is_sentencepiece_available", lambda: False)
    assert converter_libraries_missing(ValueError("Unrecognized model in /x. Should have a model_type key")) == []
    assert converter_libraries_missing(ValueError("You need to have sentencepiece or tiktoken installed")) == \
        ["sentencepiece"]
    monkeypatch.setattr(transformers.utils, "is_sentencepiece_available", lambda: True)
    assert converter_libraries_missing(ValueError("You need to have sentencepiece installed")) == []
