"""freeze=all's probe (tunelab.methods.shared.probe) and the degenerate-run warning (tunelab.degenerate)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, load_results

# 160 training texts: enough for 5-fold CV of C with both classes in every fold.
OVR = FAST + ["data.max_train_samples=160", "data.max_eval_samples=60"]


def _run(compose, tmp_path: Path, name: str, overrides: list[str]) -> dict:
    from tunelab.run import RunContext, run

    run(compose(overrides), RunContext(out_dir=tmp_path / name))
    return load_results(tmp_path / name / "results.json")


def test_freeze_all_is_method_features_with_the_same_pooling(compose, tmp_path):
    probe = _run(compose, tmp_path, "probe", OVR + ["freeze=all", "seed=4"])
    feats = _run(compose, tmp_path, "features", OVR + ["method=features", "method.pooling=mean", "seed=4"])
    assert probe["method"] == "finetune" and feats["method"] == "features"
    for k in ("test/acc", "test/f1", "test/f1_macro", "test/loss", "val/acc"):
        assert probe["metrics"][k] == feats["metrics"][k], k
    assert probe["extra"]["features"]["C"] == feats["extra"]["features"]["C"]
    # the record counts the frozen encoder: trainable (the classifier) < total
    assert probe["params"]["trainable"] < probe["params"]["total"]


def test_probe_matches_an_independent_sklearn_fit(compose, tmp_path):
    """The same features through a pipeline built here from scikit-learn's parts alone."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, log_loss
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits
    from tunelab.models.cache import features as F

    ovr = OVR + ["freeze=all", "seed=2"]
    res = _run(compose, tmp_path, "probe", ovr)
    cfg = compose(ovr)
    splits = make_splits(load_raw(cfg.data, "seq_cls"), cfg.data, "seq_cls")
    X = {s: F.extract(getattr(splits, s)["text"].tolist(), model="tiny", pooling="mean",
                      max_length=int(cfg.model.max_length), seed=0) for s in ("train", "test")}
    y = {s: getattr(splits, s)["label"].to_numpy() for s in ("train", "test")}
    Cs = list(cfg.freeze.probe.Cs)
    # GridSearchCV over plain LogisticRegression: the same choice rule (5-fold, seeded, log loss).
    grid = GridSearchCV(make_pipeline(StandardScaler(), LogisticRegression(solver="newton-cholesky", max_iter=2000)),
                        {"logisticregression__C": Cs}, scoring="neg_log_loss",
                        cv=StratifiedKFold(5, shuffle=True, random_state=2)).fit(X["train"], y["train"])
    pred = grid.predict(X["test"])
    assert res["extra"]["features"]["C"] == pytest.approx(grid.best_params_["logisticregression__C"])
    assert res["metrics"]["test/acc"] == pytest.approx(accuracy_score(y["test"], pred), abs=1e-12)
    assert res["metrics"]["test/loss"] == pytest.approx(log_loss(y["test"], grid.predict_proba(X["test"])), rel=1e-3)


def test_head_fit_trains_the_head_with_its_own_lr_and_epochs(compose, tmp_path):
    res = _run(compose, tmp_path, "head", OVR + ["freeze=all", "freeze.probe.fit=head", "freeze.probe.epochs=3",
                                                 "freeze.probe.lr=0.01", "optim.early_stopping_patience=null"])
    assert res["status"] == "ok" and res["extra"]["feature_cache"]["pooling"] == "mean"
    # 160 training rows / batch 16 = 10 steps per epoch, three epochs (optim.epochs=1 is the encoder's)
    assert res["extra"]["steps_run"] == 30 and res["extra"]["epochs_run"] == 3


def test_probe_rules(compose):
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    validate(compose(OVR + ["freeze=all"]))
    from omegaconf import OmegaConf

    from tunelab.models.policy import check_policy, policy_of

    last2 = OmegaConf.merge(compose(OVR + ["freeze=last2"]), {"freeze": {"probe": {"fit": "head"}}})
    with pytest.raises(ConfigError, match="freeze.probe fits a classifier on a fully frozen encoder"):
        check_policy(policy_of(last2), method="finetune", task="seq_cls", strategy=None, augment="none")
    with pytest.raises(ConfigError, match="pooling=cls|mean|pooler"):
        validate(compose(OVR + ["freeze=all", "freeze.probe.fit=head", "freeze.probe.pooling=concat_last4"]))
    with pytest.raises(ConfigError, match="freeze.probe.fit=paper"):
        validate(compose(["model=tiny", "curriculum=related", "freeze=all"]))
    validate(compose(["model=tiny", "curriculum=related", "freeze=all", "freeze.probe.fit=paper"]))
    with pytest.raises(ConfigError, match="augment=eda adds training texts"):
        validate(compose(OVR + ["freeze=all", "augment=eda"]))
    with pytest.raises(ConfigError, match="freeze.probe.fit"):
        validate(compose(OVR + ["freeze=all", "freeze.probe.fit=sgd"]))


def test_too_few_examples_for_cv_is_one_sentence(compose, tmp_path):
    from tunelab.errors import DataError

    with pytest.raises(DataError, match=r"freeze.probe.cv=5-fold CV .* lower freeze.probe.cv"):
        _run(compose, tmp_path, "small", FAST + ["data.max_train_samples=6", "freeze=all"])


# ----------------------------------------------------------------------------- degenerate runs


def test_degenerate_reasons_on_hand_made_records():
    from tunelab.degenerate import reasons

    ok = {"metrics": {"test/acc": 0.80}, "majority_rate": 0.70, "pred_class_counts": {"neg": 700, "pos": 300}}
    assert reasons(ok) == []
    prior = {"metrics": {"test/acc": 0.70}, "majority_rate": 0.70, "pred_class_counts": {"neg": 1000, "pos": 0}}
    assert reasons(prior) == ["predicts only class 'neg'", "test/acc 0.7000 <= majority rate 0.7000"]
    tagger = {"task": "token_cls", "metrics": {"test/f1": 0.0}}
    assert reasons(tagger) == ["test entity F1 is 0 (every token tagged O)"]
    cur = {"extra": {"curriculum": {"R": [[0.9, 0.5], [0.8, 0.55]],
                                    "stages": [{"name": "a", "majority_rate": 0.6}, {"name": "b", "majority_rate": 0.6}]}}}
    assert reasons(cur) == ["stage b: test acc 0.5500 after training it <= its majority rate 0.6000"]


def test_likely_cause_names_the_size_key_the_run_reads():
    from omegaconf import OmegaConf

    from tunelab.degenerate import likely_cause

    base = {"optim": {"lr": 1e-4, "epochs": 3}, "data": {"max_train_samples": 2000}}
    assert "data.max_train_samples=2000" in likely_cause(OmegaConf.create(base))
    # A curriculum's stages are subsampled by curriculum.max_train_samples, not data.*
    cur = likely_cause(OmegaConf.create(dict(base, curriculum={"max_train_samples": 600})))
    assert "curriculum.max_train_samples=600" in cur and "data.max_train_samples" not in cur
    assert "optim.lr=0.0001" in cur
    # With a strategy that sets its own rate and epochs (lora), those are what the stages used.
    lora = {"lr": 2e-3, "epochs": None, "head_lr": 1e-2}
    cur = likely_cause(OmegaConf.create(dict(base, curriculum={"max_train_samples": 600}, strategy=lora)))
    assert "strategy.lr=0.002" in cur and "optim.epochs=3" in cur and "strategy.head_lr=0.01" in cur
    assert "optim.lr" not in cur


def test_a_degenerate_run_says_so_in_one_line(compose, tmp_path, caplog):
    # The paper's frozen recipe on a tiny random encoder: lr 5e-5, one epoch -> the class prior.
    caplog.set_level(logging.WARNING, logger="tunelab")
    res = _run(compose, tmp_path, "paper", OVR + ["freeze=all", "freeze.probe.fit=paper",
                                                  "data.max_train_samples=64"])
    lines = [r.getMessage() for r in caplog.records if "learned nothing usable" in r.getMessage()]
    if res["degenerate"]:
        assert len(lines) == 1 and "freeze.probe.fit=logreg" in lines[0], lines
        counts = np.array(list(res["pred_class_counts"].values()))
        assert (counts == 0).any() or res["metrics"]["test/acc"] <= res["majority_rate"]
    else:
        assert lines == []
