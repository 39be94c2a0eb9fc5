"""experiment=hart2020: the seed paper's design, composed and run end to end (tiny)."""

from __future__ import annotations

import pytest
import json

import pandas as pd

from test_baselines import make_csv
from tunelab.run import RunContext, run

# arm -> (method, freeze, sparse features); every arm predicts the same task (seq_cls)
ARMS = {
    "bert_all": ("finetune", "all", None),
    "bert_none": ("finetune", "none", None),
    "bert_last2": ("finetune", "last2", None),
    "sparse_tfidf": ("sparse", None, "tfidf"),
    "sparse_count": ("sparse", None, "count"),
    "sparse_hash": ("sparse", None, "hash"),
}


def _sweep_values(spec: str) -> list:
    """The values a Hydra sweep override expands to (range(...) and a,b,c)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    ov = OverridesParser.create().parse_overrides([f"k={spec}"])[0]
    return [v for v in ov.sweep_iterator()] if ov.is_sweep_override() else [ov.value()]


def test_composed_config_matches_the_paper(compose):
    cfg = compose(["experiment=hart2020", "data=csv", "data.path=x"], return_hydra_config=True)
    assert cfg.optim.lr == 5e-5 and cfg.optim.batch_size == 32 and cfg.optim.epochs == 3
    assert cfg.optim.warmup_ratio == 0.1 and cfg.optim.early_stopping_patience is None
    assert cfg.model.max_length == 128 and cfg.model.name == "bert-base-uncased"
    d = cfg.data
    assert (d.name, d.path, d.text_column, d.label_column) == ("csv", "x", "text", "target")
    assert list(d.labels) == ["0", "1"] and d.positive_label == "1"
    assert d.test_size == 0.1 and d.val_size == 0.0 and d.split_seed == 1234
    params = cfg.hydra.sweeper.params
    assert _sweep_values(params.seed) == list(range(10))
    assert sorted(_sweep_values(params.arm)) == sorted(ARMS)
    for arm, (method, freeze, features) in ARMS.items():
        c = compose(["experiment=hart2020", "data=csv", "data.path=x", f"arm={arm}"])
        assert c.task.name == "seq_cls" and c.method.name == method, arm
        if freeze:
            assert c.freeze.name == freeze, arm
        if features:
            assert c.method.features == features and c.method.cv == 10, arm
        # Arms change the method only, never the data, the split or the BERT hyperparameters.
        assert c.data.test_size == 0.1 and c.optim.lr == 5e-5 and c.data.split_seed == 1234


def test_separate_test_file_layout(compose, tmp_path):
    train = make_csv(tmp_path / "train.csv", n=150, seed=1)
    test = make_csv(tmp_path / "test.csv", n=40, seed=2)
    cfg = compose(["experiment=hart2020", "data=csv", f"data.path={train}", f"data.test_path={test}",
                   "arm=sparse_count", "logger=none", f"cache_dir={tmp_path}/cache"])
    rec = run(cfg, RunContext(out_dir=tmp_path / "out", overrides=["arm=sparse_count"]))
    assert rec["status"] == "ok" and rec["method"] == "sparse" and rec["task"] == "seq_cls"
    # The whole train file trains (val_size 0), the whole test file tests.
    assert rec["n_examples"] == {"train": 150, "val": 0, "test": 40}
    assert len(rec["extra"]["cv"]["folds"]) == 10
    assert sum(rec["pred_class_counts"].values()) == 40


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_tiny_sweep_end_to_end_report_by_arm(cli, tmp_path):
    data = make_csv(tmp_path / "tweets.csv", n=200)
    r = cli("-m", "experiment=hart2020", "data=csv", f"data.path={data}", "model=tiny", "logger=none",
            "arm=sparse_tfidf,sparse_count,sparse_hash,bert_none", "seed=0,1", "optim.epochs=1",
            "optim.batch_size=16", "trainer.enable_progress_bar=false",
            "data.max_train_samples=64", "trainer.enable_checkpointing=false",
            timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = tmp_path / "sweep"
    results = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert len(results) == 8  # the command-line sweep replaced the experiment's 6 arms x 10 seeds
    assert all(x["status"] == "ok" for x in results), [x["error"] for x in results]
    by_arm = {}
    for x in results:
        arm = next(o.split("=", 1)[1] for o in x["overrides"] if o.startswith("arm="))
        by_arm.setdefault(arm, []).append(x)
        assert x["n_examples"] == {"train": 64, "val": 0, "test": 20}
        assert x["majority_rate"] is not None and "majority_label" in x["extra"]
    assert sorted(by_arm) == ["bert_none", "sparse_count", "sparse_hash", "sparse_tfidf"]
    assert {x["method"] for x in by_arm["bert_none"]} == {"finetune"}
    assert {x["method"] for x in by_arm["sparse_hash"]} == {"sparse"}
    # Every arm scored the same test split.
    assert len({json.dumps(x["extra"]["test_label_counts"], sort_keys=True) for x in results}) == 1
    for name in ("report.md", "report.csv", "report.json", "boxplot_test_acc.png", "boxplot_test_f1.png"):
        assert (sweep / name).exists(), name
    md = (sweep / "report.md").read_text()
    assert "Grouped by: `arm`" in md
    for arm in by_arm:
        assert f"`arm={arm}`" in md
    assert "Welch" in md and "Majority-class baseline" in md
    csv = pd.read_csv(sweep / "report.csv")
    assert {f"arm={a}" for a in by_arm} <= set(csv.astype(str).stack().unique())
