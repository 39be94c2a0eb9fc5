"""Per-example predictions (predictions.npz) and the decomposed seeds (init_seed, order_seed).

References are independent of the code under test: scikit-learn / seqeval scores recomputed from
the saved predictions must equal the job's results.json, the saved gold labels must be the test
split rebuilt with ``make_splits``, and the seeds are checked where they are consumed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score

from conftest import FAST
from tunelab import predictions as P
from tunelab.run import RunContext, run


def _run(compose, tmp_path, name, *overrides):
    cfg = compose(FAST + [f"cache_dir={tmp_path}/cache", *overrides])
    rec = run(cfg, RunContext(out_dir=tmp_path / name, overrides=list(overrides)))
    return rec, cfg, tmp_path / name


def _test_split(cfg):
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    return make_splits(load_raw(cfg.data, cfg.task.name), cfg.data, cfg.task.name).test


def test_roundtrip_sorts_rows_by_example(tmp_path):
    p = P.for_classes([2, 0, 1], [1, 0, 1], [1, 1, 0], ["a", "b"], [[0.1, 0.9], [0.4, 0.6], [0.8, 0.2]])
    P.write(tmp_path, p)
    back = P.read(tmp_path / P.PREDICTIONS_FILE)
    assert back.index.tolist() == [0, 1, 2] and back.gold.tolist() == [0, 1, 1] and back.pred.tolist() == [1, 0, 1]
    assert back.probs.astype(float) == pytest.approx(np.array([[0.4, 0.6], [0.8, 0.2], [0.1, 0.9]]), abs=1e-3)
    t = P.for_tags([1, 0], [["B-x", "O"], ["O"]], [["O", "O"], ["B-x"]], ["O", "B-x"])
    assert t.offsets.tolist() == [0, 1, 3] and t.gold.tolist() == [0, 1, 0] and t.pred.tolist() == [1, 0, 0]


PAPER = ["freeze=all", "freeze.probe.fit=paper"]  # the HF head through Lightning (cached, then not)


@pytest.mark.parametrize("extra", [[], PAPER, PAPER + ["trainer.feature_cache=false"], ["freeze=all"]])
def test_finetune_predictions_match_results(compose, tmp_path, extra):
    rec, cfg, out = _run(compose, tmp_path, "job", *extra)
    assert rec["status"] == "ok" and rec["extra"]["predictions_file"] == "predictions.npz"
    assert ("feature_cache" in rec["extra"]) == (extra == PAPER)
    assert ("features" in rec["extra"]) == (extra == ["freeze=all"])  # the logistic-regression probe
    p = P.read(out / "predictions.npz")
    test = _test_split(cfg)
    assert p.index.tolist() == list(range(len(test)))
    assert p.gold.tolist() == test["label"].tolist()
    assert accuracy_score(p.gold, p.pred) == pytest.approx(rec["metrics"]["test/acc"], abs=1e-6)
    assert f1_score(p.gold, p.pred, average="macro") == pytest.approx(rec["metrics"]["test/f1_macro"], abs=1e-6)
    probs = p.probs.astype(np.float64)
    assert probs.shape == (len(test), 2) and probs.sum(1) == pytest.approx(1.0, abs=2e-3)


def test_token_cls_predictions_give_entity_f1(compose, tmp_path):
    from seqeval.metrics import f1_score as seqeval_f1

    rec, cfg, out = _run(compose, tmp_path, "ner", "data=wnut_ner", "task=token_cls")
    p = P.read(out / "predictions.npz")
    names = p.label_names
    seqs = [(p.gold[a:b], p.pred[a:b]) for a, b in zip(p.offsets[:-1], p.offsets[1:])]
    y_true = [[names[i] for i in g] for g, _ in seqs]
    y_pred = [[names[i] for i in q] for _, q in seqs]
    assert y_true == [list(t) for t in _test_split(cfg)["tags"]]
    assert seqeval_f1(y_true, y_pred, zero_division=0) == pytest.approx(rec["metrics"]["test/f1"], abs=1e-6)


def test_sparse_predictions(compose, tmp_path):
    rec, cfg, out = _run(compose, tmp_path, "sparse", "method=sparse")
    p = P.read(out / "predictions.npz")
    assert accuracy_score(p.gold, p.pred) == pytest.approx(rec["metrics"]["test/acc"], abs=1e-6)
    assert (p.probs.astype(float).argmax(1) == p.pred).mean() > 0.9  # float16 can tie near 0.5


def test_seeds_null_is_bit_identical_and_each_key_goes_where_documented(compose, tmp_path):
    from tunelab import seeds
    from tunelab.methods.shared.data import build_datamodule
    from tunelab.models.loading import load_tokenizer

    cfg = compose(FAST + ["seed=3", "init_seed=5", "order_seed=7"])
    assert (seeds.init_seed(cfg), seeds.order_seed(cfg)) == (5, 7)
    assert build_datamodule(cfg, load_tokenizer(cfg.model)).seed == 7
    assert (seeds.init_seed(compose(FAST + ["seed=3"])), seeds.order_seed(compose(FAST + ["seed=3"]))) == (3, 3)

    null, _, a = _run(compose, tmp_path, "null", "seed=3", "model.dropout=0.3")
    same, _, b = _run(compose, tmp_path, "same", "seed=3", "init_seed=3", "order_seed=3", "model.dropout=0.3")
    other_order, _, c = _run(compose, tmp_path, "order", "seed=3", "order_seed=4", "model.dropout=0.3")
    _run(compose, tmp_path, "init", "seed=3", "init_seed=4", "model.dropout=0.3")
    assert (null["init_seed"], null["order_seed"]) == (3, 3) and other_order["order_seed"] == 4
    wa, wb, wc = (torch.load(d / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"] for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and null["metrics"] == same["metrics"]
    head = "model.classifier.weight"
    assert not torch.equal(wa[head], wc[head])  # another batch order trains another head...
    init = torch.load(c.parent / "init" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    assert not torch.equal(wa[head], init[head])  # ... and so does another init


def test_seed_keys_refused_where_not_implemented(compose):
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    with pytest.raises(ConfigError, match="init_seed splits the seed of method=finetune only"):
        validate(compose(FAST + ["method=sparse", "init_seed=1"]))
