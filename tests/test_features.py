"""tunelab.models.cache.features: shapes per pooling, padding-free mean pooling, the disk cache and its key."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tunelab.models.cache import features as F

TEXTS = ["a short text", "another, somewhat longer text about the weather today", "ok"]


@pytest.fixture(scope="module")
def tiny():
    cfg = F.model_config("tiny")
    tok, enc = F.load_encoder(cfg, seed=0)
    return cfg, tok, enc


def test_shapes_for_every_pooling(tiny):
    cfg, tok, enc = tiny
    hidden, layers = enc.config.hidden_size, enc.config.num_hidden_layers
    want = {"cls": hidden, "mean": hidden, "pooler": hidden, "concat_last4": min(4, layers + 1) * hidden}
    assert set(want) == set(F.POOLINGS)
    for pooling, dim in want.items():
        x = F.compute_features(tok, enc, TEXTS, pooling=pooling, max_length=32, batch_size=2)
        assert x.shape == (3, dim) and x.dtype == np.float32, pooling
        assert np.isfinite(x).all()
    # The notebook entry point, a single string, and an empty list.
    assert F.extract("one text", model=cfg, pooling="mean").shape == (1, hidden)
    assert F.extract([], model=cfg, pooling="cls").shape == (0, hidden)
    with pytest.raises(Exception, match="pooling"):
        F.extract(TEXTS, model=cfg, pooling="max")


def test_mean_pooling_ignores_padding_and_keeps_order(tiny):
    cfg, tok, enc = tiny
    short = "short one"
    long = "a much longer text that forces a lot of padding on the short one " * 3
    alone = F.compute_features(tok, enc, [short], pooling="mean", max_length=64)
    mixed = F.compute_features(tok, enc, [long, short], pooling="mean", max_length=64, batch_size=8)
    np.testing.assert_allclose(alone[0], mixed[1], atol=1e-5)
    # Rows come back in input order although batches are sorted by length.
    back = F.compute_features(tok, enc, [short, long], pooling="mean", max_length=64, batch_size=1)
    np.testing.assert_allclose(back[::-1], mixed, atol=1e-5)


def test_random_init_weights_depend_on_seed_only():
    a = F.extract(TEXTS, model="tiny", pooling="cls", seed=1)
    b = F.extract(TEXTS, model="tiny", pooling="cls", seed=1)
    c = F.extract(TEXTS, model="tiny", pooling="cls", seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_cache_hit_then_reuse(tiny, tmp_path):
    cfg, _, _ = tiny
    kw = dict(pooling="mean", max_length=32, cache_dir=tmp_path)
    x, hit = F.cached_features_with_info(cfg, TEXTS, **kw)
    assert not hit
    files = list((tmp_path / "features").glob("*.npy"))
    # Written through a temp file beside it (tunelab.io.atomic_write): none is left behind.
    assert len(files) == 1 and not list((tmp_path / "features").glob(".*"))
    y, hit = F.cached_features_with_info(cfg, TEXTS, **kw)
    assert hit and np.array_equal(x, y)
    np.testing.assert_array_equal(F.cached_features(cfg, TEXTS, **kw), x)
    # A corrupt entry is recomputed, not trusted.
    files[0].write_bytes(b"garbage")
    z, hit = F.cached_features_with_info(cfg, TEXTS, **kw)
    assert not hit and np.allclose(z, x)


def test_key_changes_with_model_data_length_pooling_and_seed(tmp_path):
    from omegaconf import OmegaConf

    from tunelab.models.loading import load_tokenizer

    tiny = F.model_config("tiny")
    base = dict(pooling="mean", max_length=32, tokenizer=load_tokenizer(tiny))
    k0 = F.feature_key(tiny, TEXTS, **base)
    assert k0 == F.feature_key(tiny, list(TEXTS), **base)
    assert k0 != F.feature_key(tiny, TEXTS[:2], **base)                          # data
    assert k0 != F.feature_key(tiny, TEXTS[:2] + ["ok!"], **base)               # data
    assert k0 != F.feature_key(tiny, TEXTS, **{**base, "max_length": 64})       # max length
    assert k0 != F.feature_key(tiny, TEXTS, **{**base, "pooling": "cls"})       # pooling
    assert k0 != F.feature_key(tiny, TEXTS, seed=1, **base)                     # random init: seed
    assert k0 != F.feature_key(F.model_config("minilm"), TEXTS, **base)         # model
    other = OmegaConf.merge(tiny, {"config_overrides": {"num_hidden_layers": 1}})
    assert k0 != F.feature_key(other, TEXTS, **base)                            # architecture
    # Pretrained weights do not depend on the seed...
    mini = F.model_config("minilm")
    assert F.feature_key(mini, TEXTS, seed=0, **base) == F.feature_key(mini, TEXTS, seed=5, **base)
    # ... but on the weight files: a local folder whose weights change gets a new key.
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"0" * 10)
    local = F.model_config(str(folder))
    k1 = F.feature_key(local, TEXTS, **base)
    (folder / "model.safetensors").write_bytes(b"1" * 11)
    assert F.feature_key(local, TEXTS, **base) != k1
    st = (folder / "model.safetensors").stat()
    k2 = F.feature_key(local, TEXTS, **base)
    os.utime(folder / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert F.feature_key(local, TEXTS, **base) != k2
    # A hub id is keyed by its name.
    assert F.feature_key(F.model_config("org/some-model"), TEXTS, **base) != \
        F.feature_key(F.model_config("org/other-model"), TEXTS, **base)
