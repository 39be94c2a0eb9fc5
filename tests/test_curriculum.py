"""Curricula (issue 4): R/ACC/BWT/FWT from a hand-built matrix, replay buffers, bad input, and a
tiny two-stage curriculum per strategy (model=tiny, ~48 examples per stage, 1 epoch)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tunelab.errors import ConfigError, DataError

# drug reviews (negative/positive) -> BBC topics (5 classes): two label spaces, two heads.
TWO = "curriculum.stages=[{data: drug_reviews, name: drugs}, {data: bbc_news, name: bbc}]"
FAST = ["model=tiny", "logger=none", "curriculum=custom", "curriculum.max_train_samples=48",
        "curriculum.max_eval_samples=24", "optim.epochs=1", "optim.batch_size=16", "trainer.num_threads=1",
        "trainer.enable_progress_bar=false"]


def _run(compose, tmp_path, *overrides, stages=TWO, name="out"):
    from tunelab.run import RunContext, run

    cfg = compose([*FAST, f"cache_dir={tmp_path}/cache", stages, *overrides])
    return run(cfg, RunContext(out_dir=tmp_path / name, overrides=list(overrides)))


# --------------------------------------------------------------------------- metrics


def test_metrics_from_hand_built_matrix():
    from tunelab.methods.curriculum.metrics import continual_metrics

    R = [[0.9, 0.5, 0.3],
         [0.8, 0.85, 0.4],
         [0.7, 0.8, 0.9]]
    m = continual_metrics(R, alone=[0.9, 0.8, 0.85], initial=[0.5, 0.4, 0.2])
    assert m["ACC"] == pytest.approx(0.8)
    assert m["BWT"] == pytest.approx(((0.7 - 0.9) + (0.8 - 0.85)) / 2)          # -0.125: forgetting
    assert m["FWT"] == pytest.approx(((0.85 - 0.8) + (0.9 - 0.85)) / 2)         # vs each task alone
    assert m["FWT_zeroshot"] == pytest.approx(((0.5 - 0.4) + (0.4 - 0.2)) / 2)  # R[j-1][j] - initial
    assert m["forgetting_per_task"] == pytest.approx([0.2, 0.05])
    assert m["forgetting"] == pytest.approx(0.125)
    # no forgetting at all: BWT 0; a task that improved later has negative forgetting
    m2 = continual_metrics([[0.6, 0.1], [0.7, 0.9]])
    assert m2["BWT"] == pytest.approx(0.1) and m2["forgetting_per_task"] == pytest.approx([-0.1])
    assert "FWT" not in m2
    # joint training: one row, ACC only
    assert continual_metrics([[0.8, 0.6]]) == {"ACC": pytest.approx(0.7), "T": 2}


def test_heatmap_png(tmp_path):
    from tunelab.methods.curriculum.heatmap import plot_matrix

    p = plot_matrix([[0.9, 0.2], [0.5, 0.8]], tmp_path / "R.png", tasks=["a", "b"], title="t")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- replay, routing


def test_replay_buffer_sizes_and_seeding():
    from tunelab.methods.curriculum.replay import replay_sample

    df = pd.DataFrame({"text": [f"t{i}" for i in range(48)], "label": [i % 2 for i in range(48)]})
    assert len(replay_sample(df, size=5, fraction=None, seed=0, stage_index=0)) == 5
    assert len(replay_sample(df, size=None, fraction=0.25, seed=0, stage_index=0)) == 12
    assert len(replay_sample(df, size=500, fraction=None, seed=0, stage_index=0)) == 48
    a = replay_sample(df, size=10, fraction=None, seed=3, stage_index=1)
    assert a.equals(replay_sample(df, size=10, fraction=None, seed=3, stage_index=1))
    assert not a.equals(replay_sample(df, size=10, fraction=None, seed=4, stage_index=1))
    assert not a.equals(replay_sample(df, size=10, fraction=None, seed=3, stage_index=2))
    assert a["text"].is_unique and set(a["text"]) <= set(df["text"])
    for bad in (dict(size=None, fraction=None), dict(size=3, fraction=0.1), dict(size=0, fraction=None),
                dict(size=None, fraction=1.5)):
        with pytest.raises(ConfigError, match="replay"):
            replay_sample(df, seed=0, stage_index=0, **bad)


def _stage(i, name, labels, head_hint=None, n=4):
    from tunelab.methods.curriculum.stages import Stage
    from tunelab.data.splits import Splits

    df = pd.DataFrame({"text": [f"{name}{k}" for k in range(n)], "label": [k % len(labels) for k in range(n)]})
    return Stage(i, name, "x", None, 1, 1e-3, head_hint, Splits(df, df.iloc[:0], df, list(labels)))


def test_heads_shared_by_label_space_and_global_labels():
    from tunelab.methods.curriculum.replay import mixed_frame
    from tunelab.methods.curriculum.stages import assign_heads

    a, b, c = _stage(0, "a", ["neg", "pos"]), _stage(1, "b", ["x", "y", "z"]), _stage(2, "c", ["neg", "pos"])
    heads = assign_heads([a, b, c], per_task=False)
    assert a.head == c.head != b.head and len(heads) == 2
    df, routes = mixed_frame([(b, b.splits.train), (a, a.splits.train), (c, c.splits.train)])
    assert routes == [(b.head, 0, 3), (a.head, 3, 2)]
    assert df["label"].tolist() == [0, 1, 2, 0] + [3, 4, 3, 4] * 2
    assert len(assign_heads([a, b, c], per_task=True)) == 3 and a.head == "task0"


def test_clashing_labels_in_shared_head_name_the_stage():
    from tunelab.methods.curriculum.stages import assign_heads

    a, b = _stage(0, "tweets", ["negative", "positive"]), _stage(1, "flipped", ["positive", "negative"])
    with pytest.raises(ConfigError, match="stage 2 'flipped'.*clash.*stage 1 'tweets'"):
        assign_heads([a, b], per_task=False)
    c = _stage(1, "topics", ["a", "b", "c"], head_hint="shared")
    d = _stage(0, "s", ["negative", "positive"], head_hint="shared")
    with pytest.raises(ConfigError, match="stage 2 'topics'"):
        assign_heads([d, c], per_task=False)


def test_curriculum_selects_its_method_and_ddp_strategy(compose):
    from hydra.utils import get_method
    from omegaconf import OmegaConf

    from tunelab.methods import curriculum
    from tunelab.ops.ddp import is_multiprocess_strategy, requested_devices, strategy_with_unused_parameters

    assert compose([]).method.name == "finetune" and compose([]).curriculum is None
    cfg = compose(["curriculum=related"])
    assert get_method(cfg.method._target_) is curriculum.run and cfg.strategy.name == "sequential"
    assert compose(["curriculum=related", "strategy=replay"]).strategy.name == "replay"
    t = lambda **kw: OmegaConf.create({"strategy": "auto", "devices": 1, "num_nodes": 1, **kw})  # noqa: E731
    ddp_strategy = strategy_with_unused_parameters
    assert ddp_strategy(t(strategy="ddp")) == "ddp_find_unused_parameters_true"
    assert ddp_strategy(t(strategy="ddp_spawn")) == "ddp_spawn_find_unused_parameters_true"
    assert ddp_strategy(t(devices=2)) == "ddp_find_unused_parameters_true"
    assert ddp_strategy(t()) == "auto"
    # the one parser of trainer.devices both helpers use (Lightning's reading of it)
    assert ddp_strategy(t(devices="0,1")) == ddp_strategy(t(devices=-1)) == "ddp_find_unused_parameters_true"
    assert ddp_strategy(t(num_nodes=2)) == "ddp_find_unused_parameters_true"
    assert ddp_strategy(t(devices="1,")) == ddp_strategy(t(devices="auto")) == ddp_strategy(t(devices=[3])) == "auto"
    assert [requested_devices(t(devices=d)) for d in (2, "2", "-1", "0,1", "1,", [0, 1], "auto")] == \
        [2, 2, -1, 2, 1, 2, None]
    # ranks re-launched by running this script again: ddp (and auto over several devices), not spawn
    assert is_multiprocess_strategy(t(strategy="ddp", devices=2))
    assert is_multiprocess_strategy(t(strategy="ddp_find_unused_parameters_true", devices="auto"))
    assert is_multiprocess_strategy(t(devices=2))
    assert not is_multiprocess_strategy(t(strategy="ddp_spawn", devices=2))
    assert not is_multiprocess_strategy(t(strategy="ddp", devices=1))
    assert not is_multiprocess_strategy(t(devices="auto"))


# --------------------------------------------------------------------------- bad input


def test_bad_stages(compose, tmp_path):
    from tunelab.methods.curriculum.stages import load_stages, stage_specs

    with pytest.raises(ConfigError, match="no stages"):
        stage_specs(compose(["curriculum=custom"]))
    with pytest.raises(ConfigError, match="curriculum stage 2 is empty"):
        stage_specs(compose(["curriculum=custom", "curriculum.stages=[{data: drug_reviews}, {}]"]))
    with pytest.raises(ConfigError, match="stage 1 'nope'.*no data config named 'nope'.*drug_reviews"):
        load_stages(compose(["curriculum=custom", "curriculum.stages=[{data: nope}]"]))
    with pytest.raises(ConfigError, match="stage 1 'drug_reviews'.*bogus"):
        load_stages(compose(["curriculum=custom", "curriculum.stages=[{data: drug_reviews, bogus: 1}]"]))
    # a stage's data keys get the ranges the schema declares, like data= itself
    with pytest.raises(ConfigError, match=r"stage 1 'drug_reviews'.*data.val_size=2(\.0)? must be in \[0, 1\)"):
        load_stages(compose(["curriculum=custom", "curriculum.stages=[{data: drug_reviews, val_size: 2}]"]))
    # a domain filter that leaves nothing: the stage is empty
    with pytest.raises(DataError, match="stage 2 'empty'.*no rows"):
        load_stages(compose(["curriculum=custom", "curriculum.max_train_samples=20",
                             "curriculum.stages=[{data: drug_reviews}, {data: drug_reviews, domain: coachella, name: empty}]"]))


def test_adapters_cannot_wrap_unsupported_model():
    from transformers import SqueezeBertConfig, SqueezeBertModel

    from tunelab.models.peft import init_bottleneck

    m = SqueezeBertModel(SqueezeBertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=64, embedding_size=32, vocab_size=100))
    with pytest.raises(ConfigError, match="curriculum stage 1 'tweets'.*squeeze.*not support"):
        init_bottleneck(m, "curriculum stage 1 'tweets'", "squeezebert-tiny")


# --------------------------------------------------------------------------- two-stage runs


def _check_record(rec, out: Path, n_rows=2):
    c = rec["extra"]["curriculum"]
    assert rec["status"] == "ok"
    assert len(c["R"]) == n_rows and all(len(r) == 2 for r in c["R"])
    assert all(0 <= v <= 1 for r in c["R"] for v in r)
    m = rec["metrics"]
    assert m["test/ACC"] == pytest.approx(sum(c["R"][-1]) / 2)
    assert m["params/trainable"] > 0 and m["params/bytes_per_task"] > 0
    assert (out / "R_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.json").exists()
    return c


def test_sequential_two_stages_with_baselines(compose, tmp_path):
    rec = _run(compose, tmp_path)
    c = _check_record(rec, tmp_path / "out")
    m = rec["metrics"]
    assert {"test/BWT", "test/FWT", "test/FWT_zeroshot", "test/forgetting"} <= set(m)
    assert m["test/BWT"] == pytest.approx(c["R"][1][0] - c["R"][0][0])
    assert m["test/FWT"] == pytest.approx(c["R"][1][1] - c["alone"][1])
    assert len(c["alone"]) == 2 and len(c["baseline_runs"]) == 2
    # different label spaces: one head each; every evaluation uses its task's head
    assert c["stages"][0]["head"] != c["stages"][1]["head"]
    for row in c["eval_routes"]:
        assert [e["head"] for e in row] == [s["head"] for s in c["stages"]]
    # full fine-tuning stores the whole encoder per task
    assert c["bytes_per_task_each"][0] > 4 * 500_000
    assert rec["n_examples"]["train"] == 96


def test_joint(compose, tmp_path):
    rec = _run(compose, tmp_path, "strategy=joint")
    c = _check_record(rec, tmp_path / "out", n_rows=1)
    assert "test/BWT" not in rec["metrics"] and c["alone"] is None
    assert c["runs"][0]["train_examples"] == 96


def test_replay_mixes_past_stages(compose, tmp_path):
    rec = _run(compose, tmp_path, "strategy=replay", "strategy.replay_size=10", "strategy.replay_fraction=null",
               "curriculum.baselines=false")
    c = _check_record(rec, tmp_path / "out")
    assert [r["replayed_examples"] for r in c["runs"]] == [0, 10]
    assert [r["train_examples"] for r in c["runs"]] == [48, 58]


@pytest.mark.parametrize("strategy", ["adapters", "lora"])
def test_parameter_efficient_strategies(compose, tmp_path, strategy):
    rec = _run(compose, tmp_path, f"strategy={strategy}", "curriculum.baselines=false")
    c = _check_record(rec, tmp_path / "out")
    # the base encoder is bit-identical after both stages
    assert c["checks"]["base_weights_unchanged"] is True
    # each task: its own adapter and head; not-yet-trained tasks are evaluated without theirs
    assert c["eval_routes"][0][0] == {"task": "drugs", "head": "task0", "adapter": "task0"}
    assert c["eval_routes"][1][1] == {"task": "bbc", "head": "task1", "adapter": "task1"}
    if strategy == "adapters":
        assert c["eval_routes"][0][1]["adapter"] is None
    # training task 1 cannot touch task 0: its accuracy is exactly the same -> BWT = 0
    assert c["R"][1][0] == c["R"][0][0] and rec["metrics"]["test/BWT"] == 0
    # saved adapter + head reload (from a fresh base) to the same predictions
    for task, chk in c["checks"]["reload"].items():
        assert chk["same_predictions"] and chk["max_abs_diff"] < 1e-5, task
    for t in ("task0", "task1"):
        assert (tmp_path / "out" / "task_adapters" / t / "head.pt").exists()
    # far fewer trainable parameters and bytes than the whole encoder
    assert c["trainable_per_stage"][0] < 60_000
    assert 0 < c["bytes_per_task_each"][0] < 400_000


def test_adapters_train_only_own_adapter_and_head(compose):
    """A backward pass for task 1 gives gradients to task 1's adapter and head only."""
    import torch

    from tunelab.methods.curriculum.adapters import prepare_stage, stage_parameters
    from tunelab.methods.curriculum.model import MultiHeadClassifier
    from tunelab.models.loading import load_model
    from tunelab.models.peft import add_bottleneck, init_bottleneck
    from tunelab.models.plan import Route, make_plan
    from tunelab.models.policy import policy_of

    cfg = compose(["model=tiny"])
    enc, _ = load_model(cfg.model, "encoder")
    init_bottleneck(enc, "stage 1", "tiny")
    for name in ("task0", "task1"):
        add_bottleneck(enc, name, 4, "stage", "tiny")
    model = MultiHeadClassifier(enc, {"task0": 2, "task1": 5}, head_seeds={"task0": 1, "task1": 2})
    prepare_stage(model, "adapters", "task1")
    plan = make_plan(Route.direct(policy_of(cfg), "seq_cls"), model, cfg.optim,
                     restrict_to=stage_parameters(model, "adapters", {"task1"}, "task1"))
    assert plan.trainable_params == sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.train()
    model.active = "task1"
    out = model(input_ids=torch.randint(5, 1000, (3, 7)), labels=torch.tensor([0, 4, 2]))
    out.loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(("adapters.task1." in n) or n.startswith("heads.h1.") for n in with_grad)
    assert any(n.startswith("heads.h1.") for n in with_grad)
    assert not any(p.requires_grad for n, p in model.named_parameters()
                   if "adapters." not in n and not n.startswith("heads."))


def test_sweep_summary_mean_sd_heatmap(tmp_path):
    import json

    from tunelab.methods.curriculum.summary import sweep_summary

    for k, (seed, r00) in enumerate([(0, 0.8), (1, 0.6)]):
        d = tmp_path / str(k)
        d.mkdir()
        cur = {"tasks": ["a", "b"], "rows": ["after a", "after b"], "R": [[r00, 0.5], [0.7, 0.9]],
               "ACC": 0.8, "BWT": 0.7 - r00, "FWT_zeroshot": 0.1 * (k + 1), "trainable_params": 100,
               "bytes_per_task": 400}
        (d / "results.json").write_text(json.dumps({
            "schema_version": 1, "status": "ok", "seed": seed, "metrics": {"test/ACC": 0.8},
            "overrides": ["strategy=sequential", f"seed={seed}"], "extra": {"curriculum": cur}}))
    out = sweep_summary(tmp_path)
    (group, e), = out.items()
    assert e["n"] == 2 and e["R_mean"][0][0] == pytest.approx(0.7)
    assert e["R_sd"][0][0] == pytest.approx(0.1414, abs=1e-3)
    assert e["BWT"]["mean"] == pytest.approx(0.0) and e["BWT"]["sd"] == pytest.approx(0.1414, abs=1e-3)
    assert Path(e["heatmap"]).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "curriculum_summary.md").read_text()
    # No baselines ran: FWT is n/a; the zero-shot FWT is the mean of 0.1 and 0.2 (sd 0.0707).
    assert "| FWT | FWT (zero-shot) |" in md
    assert "| n/a | 0.150 ± 0.071 |" in md


def test_parameter_efficient_strategies_give_their_heads_a_probe_rate(compose):
    # At the stage lr a head on a frozen encoder stayed at its class prior (measured: README);
    # the strategy's head_lr and epochs reach the config every stage trains with.
    from tunelab.methods.curriculum.env import stage_cfg

    for strategy, lr in (("adapters", 1e-3), ("lora", 2e-3)):
        cfg = compose(["curriculum=related", f"strategy={strategy}"])
        c = stage_cfg(cfg, epochs=6, lr=lr, validate=False)
        assert (c.optim.lr, c.optim.head_lr) == (lr, 1e-2)
    for strategy in ("adapters", "lora"):
        assert compose(["curriculum=related", f"strategy={strategy}"]).strategy.epochs == 6
    seq = compose(["curriculum=related", "strategy=sequential"])
    assert stage_cfg(seq, epochs=3, lr=1e-4, validate=False).optim.head_lr is None


def test_fast_dropout_reaches_the_curriculum_encoder(compose, tmp_path, monkeypatch):
    """trainer.fast_dropout: the encoder every stage trains is loaded with it (spy on the swap)."""
    from tunelab.models import dropout

    swapped = []
    real = dropout.use_fast_dropout
    monkeypatch.setattr(dropout, "use_fast_dropout", lambda m: swapped.append(type(m).__name__) or real(m))
    rec = _run(compose, tmp_path, "strategy=joint", "trainer.fast_dropout=true")
    assert rec["status"] == "ok" and swapped and set(swapped) == {"BertModel"}
