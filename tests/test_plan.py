"""The plan: what trains, decided once, recorded in results.json, refused when it cannot be honoured.

Parameter counts are checked against the tiny BERT's architecture counted by hand (hidden 32,
intermediate 64, 2 layers, 2 heads, vocabulary 30,522, 512 positions, 2 token types), not
against the code's own counting.
"""

from __future__ import annotations

import pytest

from conftest import FAST

H, I, V, P, T = 32, 64, 30522, 512, 2
EMB = V * H + P * H + T * H + 2 * H                        # word, position, type, LayerNorm
LAYER = 4 * (H * H + H) + 2 * H + (H * I + I) + (I * H + H) + 2 * H
POOLER = H * H + H
HEAD = H * 2 + 2                                            # classifier, 2 labels
TOTAL = EMB + 2 * LAYER + POOLER + HEAD


def _run(compose, tmp_path, *extra):
    from tunelab.context import RunContext
    from tunelab.run import run

    return run(compose(FAST + list(extra)), RunContext(out_dir=tmp_path / "job"))


@pytest.mark.parametrize("extra,trainable,runner", [
    ([], TOTAL, "encoder"),
    (["freeze=last_n", "freeze.n=1"], LAYER + POOLER + HEAD, "prefix"),
    (["freeze=first_n", "freeze.n=1"], LAYER + POOLER + HEAD, "prefix"),
    (["freeze=embeddings"], 2 * LAYER + POOLER + HEAD, "encoder"),
    (["freeze=all", "freeze.probe.fit=head"], HEAD, "features"),
])
def test_recorded_plan_counts_what_trains(compose, tmp_path, extra, trainable, runner):
    rec = _run(compose, tmp_path, *extra)
    plan = rec["plan"]
    assert {"trainable_params", "total_params", "peft", "cache", "runner", "blocks"} <= set(plan)
    assert (plan["trainable_params"], plan["total_params"]) == (trainable, TOTAL)
    assert plan["runner"] == runner and plan["cache"] == ("none" if runner == "encoder" else runner)
    assert sum(b["trainable"] for b in plan["blocks"]) == trainable
    assert rec["params"] == {"trainable": trainable, "total": TOTAL}


def test_logreg_probe_plan_is_the_classifier_alone(compose, tmp_path):
    rec = _run(compose, tmp_path, "freeze=all")
    plan = rec["plan"]
    # Logistic regression on mean-pooled features: one weight per feature and class (binary: one
    # row) plus the intercept; the encoder (no classifier head) is fixed.
    assert plan["runner"] == "logreg" and plan["trainable_params"] == H + 1
    assert plan["total_params"] == EMB + 2 * LAYER + POOLER + H + 1


def test_gradual_plan_starts_with_the_head_and_ends_with_everything(compose, tmp_path):
    rec = _run(compose, tmp_path, "freeze=gradual", "optim.epochs=4")
    assert rec["plan"]["trainable_params"] == HEAD          # at the start
    assert rec["params"]["trainable"] == TOTAL               # after 3 thaws: layer.1+pooler, layer.0, emb


def test_staged_gradual_thaws_everything_even_in_one_epoch(compose, tmp_path):
    # Per epoch, one epoch thaws nothing: the run ends with the head alone.
    rec = _run(compose, tmp_path / "epoch", "freeze=gradual", "freeze.unfreeze_every=epoch")
    assert rec["params"]["trainable"] == HEAD
    # In stages (freeze=gradual's default; 3 thaw groups -> 4 stages of the run's 8 steps) the
    # last stage trains everything.
    rec = _run(compose, tmp_path / "stage", "freeze=gradual", "optim.batch_size=8")
    assert rec["plan"]["trainable_params"] == HEAD and rec["params"]["trainable"] == TOTAL


def test_a_fixed_n_preset_with_another_n_is_refused(compose):
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    with pytest.raises(ConfigError, match=r"freeze=last2 fixes freeze.n=2, but freeze.n=1 .*freeze=last_n freeze.n=1"):
        validate(compose(FAST + ["freeze=last2", "freeze.n=1"]))
    validate(compose(FAST + ["freeze=last_n", "freeze.n=1"]))   # named by its n: fine


def test_a_too_deep_policy_is_refused_before_any_data_loads(compose, tmp_path, monkeypatch):
    import tunelab.data.sources as sources
    from tunelab.errors import ConfigError

    def boom(*a, **k):
        raise AssertionError("data loaded before the plan refused the policy")

    monkeypatch.setattr(sources, "load_raw", boom)
    with pytest.raises(ConfigError, match="freeze.n=3 but the model has only 2 encoder layers"):
        _run(compose, tmp_path, "freeze=last_n", "freeze.n=3")


def test_a_checkpoint_of_another_plan_is_not_resumed():
    from tunelab.errors import ConfigError
    from tunelab.ops.resume import ResumeStateCallback

    cb = ResumeStateCallback(identity="abc")
    cb.plan = "1111"
    with pytest.raises(ConfigError, match="another plan"):
        cb.load_state_dict({"identity": "abc", "plan": "2222", "rng": {}})
    cb.load_state_dict({"identity": "abc", "plan": "1111", "rng": {}})  # the same plan resumes


def test_a_reworded_reason_does_not_block_a_resume_and_what_trains_does(compose):
    """The digest a checkpoint carries covers what trains, not ``cache_why`` (prose for the reader):
    rewording that sentence in a new tunelab used to make every in-flight job refuse to resume.
    Checkpoints written before carry the hash of the whole record and still resume."""
    import dataclasses
    import hashlib
    import json
    from types import SimpleNamespace

    from transformers import AutoModelForSequenceClassification

    from tunelab.errors import ConfigError
    from tunelab.models.loading import load_config
    from tunelab.models.plan import make_plan, route_of
    from tunelab.ops.resume import ResumeStateCallback

    cfg = compose(FAST + ["freeze=embeddings"])
    route = route_of(cfg)

    def plan_of(route, lr=None):
        model = AutoModelForSequenceClassification.from_config(load_config(cfg.model))
        plan = make_plan(route, model, cfg.optim)
        if lr is not None:
            plan.lrs = {k: lr for k in plan.lrs}
        return plan

    plan = plan_of(route)
    reworded = plan_of(dataclasses.replace(route, why="said another way"))
    assert reworded.record()["cache_why"] != plan.record()["cache_why"]
    assert reworded.digest == plan.digest
    assert plan_of(route, lr=1.0).digest != plan.digest          # another learning rate trains otherwise
    before = hashlib.sha256(json.dumps(plan.record(), sort_keys=True, default=str).encode()).hexdigest()[:16]

    cb = ResumeStateCallback(identity="abc")
    cb.setup(None, SimpleNamespace(plan=reworded), "fit")
    cb.load_state_dict({"identity": "abc", "plan": plan.digest, "rng": {}})
    cb.setup(None, SimpleNamespace(plan=plan), "fit")
    cb.load_state_dict({"identity": "abc", "plan": before, "rng": {}})  # written by an older tunelab
    with pytest.raises(ConfigError, match="another plan"):
        cb.load_state_dict({"identity": "abc", "plan": plan_of(route, lr=1.0).digest, "rng": {}})


def test_plan_rules_are_part_of_the_identity(compose, monkeypatch):
    import tunelab.ops.identity as identity

    cfg = compose(FAST)
    before = identity.job_identity(cfg)
    monkeypatch.setattr(identity, "PLAN_RULES", identity.PLAN_RULES + 1)
    assert identity.job_identity(cfg) != before


BIASES = 2 * H + 2 * (4 * H + 2 * H + I + H) + H          # embeddings/layer LayerNorms, q k v o, FFN; pooler


def test_bitfit_trains_the_biases_and_the_head(compose, tmp_path):
    rec = _run(compose, tmp_path, "freeze=bitfit")
    assert rec["plan"]["trainable_params"] == BIASES - H + HEAD == 706   # embeddings: its LayerNorm bias only
    assert rec["plan"]["runner"] == "encoder" and "biases" in rec["plan"]["cache_why"]


def test_lpft_probes_then_fine_tunes_from_the_probed_head(compose, tmp_path):
    """With a vanishing fine-tuning lr, LP-FT's test scores are those of the probe alone: the
    head freeze=all fit=head trains on what the head reads, from the same init and batches."""
    common = ["freeze.probe.epochs=3", "freeze.probe.lr=0.05", "optim.early_stopping_patience=null",
              "trainer.enable_checkpointing=false"]
    lpft = _run(compose, tmp_path / "a", "freeze=lpft", "optim.lr=1e-12", *common)
    probe = _run(compose, tmp_path / "b", "freeze=all", "freeze.probe.fit=head", "freeze.probe.pooling=head", *common)
    assert [p["trainable_params"] for p in lpft["plan"]["phases"]] == [HEAD, TOTAL]
    assert lpft["plan"]["runner"] == "lpft" and probe["plan"]["runner"] == "features"
    assert lpft["metrics"]["test/acc"] == probe["metrics"]["test/acc"]
    assert lpft["metrics"]["test/loss"] == pytest.approx(probe["metrics"]["test/loss"], abs=1e-4)
    assert probe["metrics"]["test/loss"] < 0.69  # the probe moved the head off its random start


def test_lpft_and_bitfit_refusals(compose):
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    with pytest.raises(ConfigError, match="freeze.probe.pooling=head"):
        validate(compose(FAST + ["freeze=lpft", "freeze.probe.pooling=mean"]))
    with pytest.raises(ConfigError, match="freeze=lpft fits a classifier head first"):
        validate(compose(FAST + ["freeze=lpft", "task=mlm"]))
    with pytest.raises(ConfigError, match="strategy=lora trains only its own"):
        validate(compose(["model=tiny", "curriculum=related", "strategy=lora", "freeze=bitfit"]))
