"""freeze=all fast path: cached and uncached runs give the same metrics for the same seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FAST

# Dropout on, so equality also needs the same dropout masks (same RNG stream) in both paths.
OVR = FAST + ["freeze=all", "freeze.probe.fit=paper", "seed=3", "model.dropout=0.3", "optim.epochs=2", "optim.lr=1e-2",
              "trainer.enable_checkpointing=true"]


def _run(compose, tmp_path: Path, name: str, *extra):
    from tunelab.run import RunContext, run

    cfg = compose(OVR + list(extra))
    return run(cfg, RunContext(out_dir=tmp_path / name)), cfg


def test_cached_route_taken_only_when_it_applies(compose):
    from tunelab.models.plan import route_of

    assert route_of(compose(OVR)).runner == "features"
    for extra, runner, why in ((["trainer.feature_cache=false"], "encoder", "feature_cache=false"),
                               (["freeze=last2"], "encoder", "only the embeddings"),  # tiny: 2 layers
                               (["task=token_cls", "data=wnut_ner"], "encoder", "task=token_cls"),
                               (["augment=eda"], "encoder", "augmented texts"),
                               (["ckpt_path=/nonexistent.ckpt"], "encoder", "ckpt_path")):
        base = [o for o in OVR if not o.startswith("freeze.probe")] if "freeze=last2" in extra else OVR
        route = route_of(compose(base + extra))
        assert (route.runner, route.cache) == (runner, "none"), extra
        assert why in route.why, extra


def test_cached_and_uncached_runs_agree(compose, tmp_path):
    slow, _ = _run(compose, tmp_path, "uncached", "trainer.feature_cache=false")
    first, _ = _run(compose, tmp_path, "cached1")
    again, _ = _run(compose, tmp_path, "cached2")
    assert slow["status"] == first["status"] == again["status"] == "ok"
    assert "feature_cache" not in slow["extra"]
    assert set(first["extra"]["feature_cache"]["hits"].values()) == {False}
    assert set(again["extra"]["feature_cache"]["hits"].values()) == {True}
    assert set(slow["metrics"]) == set(first["metrics"]) and "test/acc" in slow["metrics"]
    for rec in (first, again):
        for k, v in slow["metrics"].items():
            assert rec["metrics"][k] == pytest.approx(v, abs=1e-5), k
        for key in ("pred_class_counts", "params", "n_examples", "label_names", "majority_rate"):
            assert rec[key] == slow[key], key
        assert rec["extra"]["steps_run"] == slow["extra"]["steps_run"]
        assert set(rec) == set(slow)
        assert set(rec["extra"]) - set(slow["extra"]) == {"feature_cache"}
    # The head-only checkpoint holds no frozen encoder weights.
    import torch

    sd = torch.load(tmp_path / "cached2" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert sd and all(k.startswith("model.classifier") for k in sd)
    # A different seed is a different random-init encoder: not a hit.
    other, _ = _run(compose, tmp_path, "seed4", "seed=4")
    assert set(other["extra"]["feature_cache"]["hits"].values()) == {False}


def test_pretrained_features_shared_across_seeds(compose, tmp_path, monkeypatch):
    """A pretrained encoder's features do not depend on the seed: seed 2 reuses seed 1's."""
    extra = ["model=minilm", "data.max_train_samples=32", "data.max_eval_samples=16", "optim.epochs=1"]
    a, _ = _run(compose, tmp_path, "s1", *extra, "seed=1")
    b, _ = _run(compose, tmp_path, "s2", *extra, "seed=2")
    assert set(a["extra"]["feature_cache"]["hits"].values()) == {False}
    assert set(b["extra"]["feature_cache"]["hits"].values()) == {True}


@pytest.mark.parametrize("blocker", [["trainer.feature_cache=false"], ["task=token_cls", "data=wnut_ner"],
                                     ["augment=eda"], ["ckpt_path=/nonexistent.ckpt"]],
                         ids=["no_cache", "token_cls", "augment", "ckpt_path"])
def test_a_probe_pooling_no_cache_can_compute_is_refused(compose, blocker):
    """fit=head with pooling=mean|cls|pooler trains the head on that pooled vector, which only the
    feature cache computes; the full forward pass feeds the head what the HF model hands it (BERT:
    the pooler). Without a cache the run used to take the full pass anyway and record pooling=mean
    while training on the pooler (its metrics were pooling=head's to the last digit, and
    trainer.feature_cache is not part of the identity): refused at start-up instead, also before
    an adaptation's MLM stage."""
    from tunelab.errors import ConfigError
    from tunelab.methods import adapt
    from tunelab.models.plan import route_of

    probe = ["freeze=all", "freeze.probe.fit=head", "freeze.probe.epochs=1"]
    for pooling in ("mean", "cls", "pooler"):
        with pytest.raises(ConfigError, match=rf"freeze.probe.pooling={pooling} .*use freeze.probe.pooling=head"):
            route_of(compose(FAST + probe + [f"freeze.probe.pooling={pooling}"] + blocker))
    with pytest.raises(ConfigError, match="use freeze.probe.pooling=head"):
        adapt.run(compose(FAST + probe + ["adapt=tapt"] + blocker), None)
    # What the head reads itself needs no cache; with the cache every pooling is computed.
    assert route_of(compose(FAST + probe + ["freeze.probe.pooling=head"] + blocker)).runner == "encoder"
    assert route_of(compose(FAST + probe + ["freeze.probe.pooling=mean"])).runner == "features"


def test_a_taggers_frozen_probe_is_recorded_as_the_head_it_trains(compose, tmp_path, caplog):
    """freeze=all's default probe is logistic regression on one pooled vector per text; a tagger
    predicts at every token, so its own head trains (Lightning, freeze.probe.lr/epochs). The plan
    used to record fit=logreg for that run, and the degenerate-run advice then named optim.lr and
    optim.epochs (the task's 2e-4 and 6) though the head trained at the probe's 1e-3 for 1 epoch."""
    import json
    import logging

    from tunelab.models.plan import route_of
    from tunelab.run import RunContext, run

    tagger = FAST + ["task=token_cls", "data=wnut_ner", "freeze=all", "freeze.probe.epochs=1",
                     "freeze.probe.lr=1e-7"]  # a step no head can learn from: the advice must show
    route = route_of(compose(tagger))
    assert (route.runner, route.policy.fit, route.pooling) == ("encoder", "head", None)
    assert route.optim == {"lr": 1e-7, "head_lr": 1e-7, "epochs": 1}
    assert "freeze.probe.fit=logreg" in route.why and "task=token_cls" in route.why
    # Sequence classification keeps its logistic regression.
    assert route_of(compose(FAST + ["freeze=all"])).runner == "logreg"

    caplog.set_level(logging.WARNING, logger="tunelab")
    res = run(compose(tagger), RunContext(out_dir=tmp_path / "tagger"))
    plan = json.loads((tmp_path / "tagger" / "results.json").read_text())["plan"]
    assert (plan["fit"], plan["runner"], plan["optim"]["lr"]) == ("head", "encoder", 1e-7)
    # Only the token head trains: hidden x labels + labels, counted here by hand.
    labels = len(res["label_names"])
    hidden = compose(FAST).model.config_overrides.hidden_size
    assert plan["trainable_params"] == hidden * labels + labels
    assert res["degenerate"], res["metrics"]
    line = next(r.getMessage() for r in caplog.records if "learned nothing usable" in r.getMessage())
    assert "lr 1e-07 for 1 epochs" in line and "freeze.probe.lr" in line, line
    assert "optim.lr" not in line and "fit=logreg" not in line, line
