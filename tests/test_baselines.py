"""method=sparse and method=features: same splits as the encoder runs, scikit-learn-exact metrics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunelab.errors import ConfigError
from tunelab.run import RunContext, run

POS = ["great", "love", "happy", "awesome", "good", "fine", "nice", "best"]
NEG = ["awful", "hate", "sad", "terrible", "bad", "worst", "poor", "ugly"]
FILL = ["the", "flight", "phone", "game", "today", "was", "my", "this", "really", "so", "and", "a"]


def make_csv(path: Path, n: int = 240, seed: int = 0, pos_rate: float = 0.4) -> Path:
    """Tweets-like text,target CSV: labels 0/1, noisy sentiment words (not separable)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        y = int(rng.random() < pos_rate)
        words = list(rng.choice(FILL, size=rng.integers(4, 10)))
        for _ in range(rng.integers(1, 3)):
            words.append(rng.choice(POS if (rng.random() < 0.75) == bool(y) else NEG))
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "target": y})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def data_csv(tmp_path):
    return make_csv(tmp_path / "tweets.csv")


def _cfg(compose, tmp_path, csv, *overrides):
    return compose(["logger=none", "data=csv", f"data.path={csv}", "data.label_column=target",
                    "data.labels=['0','1']", "data.positive_label='1'", f"cache_dir={tmp_path}/cache",
                    *overrides])


def _run(compose, tmp_path, csv, *overrides, out="out"):
    cfg = _cfg(compose, tmp_path, csv, *overrides)
    return cfg, run(cfg, RunContext(out_dir=tmp_path / out, overrides=list(overrides)))


def _splits(cfg):
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    return make_splits(load_raw(cfg.data, "seq_cls"), cfg.data, "seq_cls")


@pytest.mark.parametrize("features", ["tfidf", "count", "hash"])
def test_sparse_equals_hand_built_sklearn_pipeline(compose, tmp_path, data_csv, features):
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, log_loss
    from sklearn.pipeline import make_pipeline

    # 4096 hash buckets instead of 2**20 keep the test fast; the option is passed through.
    cfg, rec = _run(compose, tmp_path, data_csv, "method=sparse", f"method.features={features}", "seed=3",
                    "method.n_features=4096")
    assert rec["status"] == "ok" and rec["method"] == "sparse"
    # The same split an encoder run of this config uses.
    s = _splits(cfg)
    assert rec["n_examples"] == s.sizes()
    vec = {"tfidf": TfidfVectorizer(), "count": CountVectorizer(), "hash": HashingVectorizer(n_features=4096)}[features]
    pipe = make_pipeline(vec, LogisticRegression(max_iter=1000, random_state=3))
    pipe.fit(s.train["text"], s.train["label"])
    y, pred, proba = s.test["label"], pipe.predict(s.test["text"]), pipe.predict_proba(s.test["text"])
    m = rec["metrics"]
    assert m["test/acc"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert m["test/f1"] == pytest.approx(f1_score(y, pred, pos_label=1), abs=1e-12)
    assert m["test/f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    assert m["test/loss"] == pytest.approx(log_loss(y, proba), rel=1e-9)
    assert "val/acc" in m  # default data.val_size=0.1: scored on val too
    # Record fields the report needs, as run_encoder writes them.
    assert rec["label_names"] == ["0", "1"]
    assert rec["pred_class_counts"] == {"0": int((pred == 0).sum()), "1": int((pred == 1).sum())}
    train_major = int(np.bincount(s.train["label"]).argmax())
    assert rec["majority_rate"] == pytest.approx(float((y == train_major).mean()))
    assert rec["extra"]["majority_label"] == str(train_major)
    assert sum(rec["extra"]["test_label_counts"].values()) == len(y)
    clf = pipe[-1]
    assert rec["params"] == {"trainable": clf.coef_.size + clf.intercept_.size,
                             "total": clf.coef_.size + clf.intercept_.size}
    assert (tmp_path / "out" / "results.json").exists()


def test_sparse_vectoriser_options_and_cv(compose, tmp_path, data_csv):
    from sklearn.model_selection import StratifiedKFold

    cfg, rec = _run(compose, tmp_path, data_csv, "method=sparse", "method.features=tfidf", "method.cv=5",
                    "method.ngram_range=[1,2]", "method.min_df=2", "method.max_features=50", "method.C=0.5")
    assert rec["status"] == "ok"
    assert rec["extra"]["sparse"]["n_features"] == 50
    assert rec["config"]["method"]["C"] == 0.5
    cv = rec["extra"]["cv"]
    assert cv["k"] == 5 and len(cv["folds"]) == 5
    n_train = rec["n_examples"]["train"]
    assert sum(f["n_val"] for f in cv["folds"]) == n_train
    assert all(f["n_train"] + f["n_val"] == n_train for f in cv["folds"])
    for key in ("acc", "f1", "f1_macro", "loss"):
        vals = [f[key] for f in cv["folds"]]
        assert rec["metrics"][f"cv/{key}_mean"] == pytest.approx(np.mean(vals))
        assert rec["metrics"][f"cv/{key}_std"] == pytest.approx(np.std(vals, ddof=1))
    # Folds depend on data.split_seed only: the same stratified folds a user would build.
    y = _splits(cfg).train["label"].to_numpy()
    skf = StratifiedKFold(5, shuffle=True, random_state=cfg.data.split_seed)
    assert [len(va) for _, va in skf.split(np.zeros(len(y)), y)] == [f["n_val"] for f in cv["folds"]]


def test_sparse_rejects_bad_options(compose, tmp_path, data_csv):
    with pytest.raises(ConfigError, match="method.features"):
        _run(compose, tmp_path, data_csv, "method=sparse", "method.features=bogus")
    with pytest.raises(ConfigError, match="method.cv=1"):
        _run(compose, tmp_path, data_csv, "method=sparse", "method.cv=1", out="o2")
    with pytest.raises(ConfigError, match="smallest class"):
        _run(compose, tmp_path, data_csv, "method=sparse", "method.cv=1000", out="o3")
    with pytest.raises(ConfigError, match="ngram_range"):
        _run(compose, tmp_path, data_csv, "method=sparse", "method.ngram_range=[2,1]", out="o4")


def test_features_task_tiny_cache_hit_on_second_seed(compose, tmp_path, data_csv):
    common = ("method=features", "model=tiny", "method.pooling=mean", "data.max_train_samples=120")
    _, r0 = _run(compose, tmp_path, data_csv, *common, "seed=0", out="s0")
    _, r1 = _run(compose, tmp_path, data_csv, *common, "seed=1", out="s1")
    for r in (r0, r1):
        assert r["status"] == "ok" and r["method"] == "features"
        for k in ("test/acc", "test/f1", "test/f1_macro", "test/loss"):
            assert math.isfinite(r["metrics"][k])
        assert sum(r["pred_class_counts"].values()) == r["n_examples"]["test"]
        assert r["majority_rate"] is not None and "majority_label" in r["extra"]
        assert r["extra"]["features"]["dim"] == 32  # tiny: hidden 32
    assert r0["extra"]["feature_cache_hit"] is False
    assert r1["extra"]["feature_cache_hit"] is True
    assert set(r1["extra"]["feature_cache_hits"]) == {"train", "val", "test"}
    assert list((tmp_path / "cache" / "features").glob("*.npy"))
    # Pooling and classifier are options; a dense layer on concatenated last-4 CLS vectors.
    _, r2 = _run(compose, tmp_path, data_csv, *common, "method.pooling=concat_last4",
                 "method.classifier=linear", "method.epochs=5", out="s2")
    assert r2["status"] == "ok" and r2["extra"]["features"]["dim"] == 96
    assert r2["params"]["trainable"] == 96 * 2 + 2
    with pytest.raises(ConfigError, match="method.pooling"):
        _run(compose, tmp_path, data_csv, *common, "method.pooling=max", out="s3")
