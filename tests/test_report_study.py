"""The study sections of a report on synthetic sweeps with predictions files: merging sweep dirs,
the crossed-seed decomposition, paired tests, ensembles and expected-max curves.

References: McNemar via scipy's binomtest on counts computed here, accuracy via scikit-learn,
the decomposition via the hand-computed table of test_variance, and the merged report against
the report of one dir holding all the jobs.
"""

import json
import shutil

import numpy as np
import pytest
from scipy import stats as st
from sklearn.metrics import accuracy_score

from tunelab import predictions as P
from tunelab import report as rp

N = 120
GOLD = np.random.default_rng(1).integers(0, 2, N)
# freeze -> table[init][order] of per-run flip rates: arm "none" is better than "all"
RATE = {"none": [[0.10, 0.20, 0.15], [0.12, 0.25, 0.18]], "all": [[0.30, 0.35, 0.32], [0.28, 0.40, 0.33]]}


def _pred(freeze, i, o):
    rng = np.random.default_rng([i, o, freeze == "all"])
    flip = rng.random(N) < RATE[freeze][i][o]
    pred = np.where(flip, 1 - GOLD, GOLD)
    probs = np.stack([1 - pred, pred], 1) * 0.8 + 0.1
    return P.for_classes(np.arange(N), GOLD, pred, ["neg", "pos"], probs)


def _write_job(sweep, idx, freeze, i, o):
    d = sweep / str(idx)
    (d / ".hydra").mkdir(parents=True)
    ov = [f"freeze={freeze}", f"init_seed={i}", f"order_seed={o}", "model=tiny"]
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {x}\n" for x in ov))
    p = _pred(freeze, i, o)
    P.write(d, p)
    acc = accuracy_score(p.gold, p.pred)
    res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "method": "finetune", "model": "tiny",
           "data": "tweets_sentiment", "freeze": freeze, "seed": 0, "init_seed": i, "order_seed": o,
           "metrics": {"test/acc": acc, "val/acc": acc - 0.01}, "majority_rate": 0.5,
           "label_names": ["neg", "pos"], "overrides": ov, "git_commit": "abc", "versions": {"torch": "2.5"},
           "pred_class_counts": {"neg": int((p.pred == 0).sum()), "pos": int((p.pred == 1).sum())}}
    (d / "results.json").write_text(json.dumps(res))


def _sweep(root, cells):
    root.mkdir(parents=True)
    for idx, (freeze, i, o) in enumerate(cells):
        _write_job(root, idx, freeze, i, o)
    return root


CELLS = [(f, i, o) for f in ("none", "all") for i in range(2) for o in range(3)]


def test_paired_ensemble_variance_and_expected_max(tmp_path):
    sweep = _sweep(tmp_path / "s", CELLS)
    rep = rp.build_report(sweep, metrics=["test/acc"], paired_boot=200)
    assert rep.swept_keys == ["freeze"] and set(rep.groups) == {"freeze=none", "freeze=all"}
    ex = rep.examples
    pooled = next(r for r in ex.pairs if r.seeds.startswith("pooled"))
    assert (pooled.a, pooled.b, pooled.n_pairs) == ("freeze=all", "freeze=none", 6)
    b = sum(int(np.sum((_pred("all", i, o).pred == GOLD) & (_pred("none", i, o).pred != GOLD)))
            for i in range(2) for o in range(3))
    c = sum(int(np.sum((_pred("all", i, o).pred != GOLD) & (_pred("none", i, o).pred == GOLD)))
            for i in range(2) for o in range(3))
    assert (pooled.a_right_b_wrong, pooled.a_wrong_b_right) == pytest.approx((b / 6, c / 6))
    assert pooled.p < 1e-6 and pooled.diffs["test/acc"]["high"] < 0
    one = next(r for r in ex.pairs if r.seeds == "1/2")
    b1 = int(np.sum((_pred("all", 1, 2).pred == GOLD) & (_pred("none", 1, 2).pred != GOLD)))
    c1 = int(np.sum((_pred("all", 1, 2).pred != GOLD) & (_pred("none", 1, 2).pred == GOLD)))
    if b1 + c1 < 25:
        assert one.p == pytest.approx(st.binomtest(b1, b1 + c1).pvalue)
    else:
        assert one.p == pytest.approx(st.chi2.sf((abs(b1 - c1) - 1) ** 2 / (b1 + c1), 1))
    votes = np.stack([_pred("none", i, o).pred for i in range(2) for o in range(3)])
    assert ex.arms["freeze=none"].n_seeds == 6
    assert ex.arms["freeze=none"].vote["test/acc"] >= ex.arms["freeze=none"].mean_single["test/acc"]
    assert ex.arms["freeze=none"].agreement == pytest.approx(
        np.mean([np.mean(votes[x] == votes[y]) for x in range(6) for y in range(x + 1, 6)]))
    entry = rep.metrics["test/acc"]
    d = entry.variance["freeze=none"]
    assert (d.n_init, d.n_order, d.reps) == (2, 3, 1)
    assert d.share_init + d.share_order + d.share_rest == pytest.approx(1.0)
    accs = [accuracy_score(GOLD, _pred("none", i, o).pred) for i in range(2) for o in range(3)]
    curve = entry.expected_max["freeze=none"]["test"]
    assert curve.mean[0] == pytest.approx(np.mean(accs)) and curve.mean[-1] == pytest.approx(max(accs))
    assert entry.expected_max["freeze=none"]["val"].metric == "val/acc"
    row = entry.comparisons.all_pairs[0]
    assert row.g < 0 and row.seeds_needed >= 2
    md = (sweep / "report.md").read_text()
    for title in ("## What ran", "Variance decomposition", "Expected best score", "Seed ensembles and agreement",
                  "Paired tests between groups", "Hedges' g"):
        assert title in md, title
    assert (sweep / "expected_max_test_acc.png").is_file()
    assert "`tiny`" in md and "`model=tiny`" in md and "torch 2.5" in md


def test_report_of_two_dirs_equals_report_of_one(tmp_path):
    whole = _sweep(tmp_path / "whole", CELLS)
    a = _sweep(tmp_path / "a", CELLS[:7])
    b = _sweep(tmp_path / "b", CELLS[7:])
    one = rp.build_report(whole, metrics=["test/acc"], paired_boot=100, write=False).to_dict()
    two = rp.build_report([a, b], metrics=["test/acc"], paired_boot=100, write=False).to_dict()
    for key in ("swept_keys", "reference", "counts", "baseline", "metrics", "examples"):
        assert two[key] == one[key], key
    assert {g: len(v["jobs"]) for g, v in two["groups"].items()} == {g: len(v["jobs"]) for g, v in one["groups"].items()}
    assert two["header"]["sources"] == [str(a.resolve()), str(b.resolve())]

    # The same job in both dirs is counted once; a rerun that differs is named as a conflict.
    shutil.copytree(a / "0", b / "99")
    again = rp.build_report([a, b], metrics=["test/acc"], paired_boot=50)
    assert again.counts.jobs == len(CELLS) and any("counted once" in n for n in again.notes)
    assert again.files["md"] == str(a / "merged_report" / "report.md")
    res = json.loads((b / "99" / "results.json").read_text())
    res["metrics"]["test/acc"] += 0.01
    (b / "99" / "results.json").write_text(json.dumps(res))
    clash = rp.build_report([a, b], metrics=["test/acc"], paired_boot=50, write=False)
    assert clash.counts.jobs == len(CELLS)
    assert any(n.startswith("conflict: a/0 and b/99") for n in clash.notes)


def test_paired_tests_refuse_arms_whose_gold_ids_name_other_labels(tmp_path):
    """Equal example indices and gold ids are not the same test set when the ids index another
    label order (data.labels=[pos,neg]): gold 0 is 'neg' in one arm and 'pos' in the other, so
    these are different examples. No paired row; with the same order the rows are there."""
    def sweep(root, names_all):
        for idx, (freeze, names) in enumerate((f, n) for f, n in (("none", ["neg", "pos"]), ("all", names_all))
                                              for _ in range(2)):
            _write_job(root, idx, freeze, 0, idx % 2)
            p = _pred(freeze, 0, idx % 2)
            P.write(root / str(idx), P.for_classes(p.index, p.gold, p.pred, names, p.probs))
        return root

    same = rp.build_report(sweep(tmp_path / "same", ["neg", "pos"]), metrics=["test/acc"], paired_boot=20, write=False)
    assert len([r for r in same.examples.pairs if r.seeds.startswith("pooled")]) == 1
    other = rp.build_report(sweep(tmp_path / "other", ["pos", "neg"]), metrics=["test/acc"], paired_boot=20,
                            write=False)
    assert other.examples.pairs == []
    assert sum("other examples or labels (or label order)" in n for n in other.examples.notes) == 2


def test_merged_sweeps_on_other_data_are_refused(tmp_path):
    """Two sweeps with the same overrides whose configs chose other test rows (data.split_seed 1
    in one, 2 in the other, set in a config file): merged, each group would pool scores on two test
    sets. Refused, naming the key; with the same value in both the merge goes ahead."""
    from tunelab.errors import TunelabError

    def with_split_seed(root, cells, split_seed):
        _sweep(root, cells)
        for res_path in root.glob("*/results.json"):
            res = json.loads(res_path.read_text())
            res["config"] = {"data": {"name": "tweets_sentiment", "split_seed": split_seed}}
            res_path.write_text(json.dumps(res))
        return root

    a = with_split_seed(tmp_path / "a", CELLS[:7], 1)
    b = with_split_seed(tmp_path / "b", CELLS[7:], 2)
    with pytest.raises(TunelabError, match=r"data\.split_seed: 1 in a, 2 in b"):
        rp.build_report([a, b], metrics=["test/acc"], paired_boot=20, write=False)
    c = with_split_seed(tmp_path / "c", CELLS[7:], 1)
    merged = rp.build_report([a, c], metrics=["test/acc"], paired_boot=20, write=False)
    assert sum(g.n_ok for g in merged.metrics["test/acc"].summary.values()) == len(CELLS)
