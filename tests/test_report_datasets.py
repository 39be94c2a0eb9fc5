"""Claims across datasets: partial-conjunction counts (Dror et al. 2017), Friedman + Nemenyi
(Demšar 2006), and a data sweep's report testing within each dataset only.

References: hand-computed partial-conjunction p-values (Fisher's χ² tail in closed form for even
df), Demšar's worked example (his Table 6: average ranks, χ²_F = 9.28, F_F = 3.69, CD = 1.25) and
his Table 5a of Nemenyi critical values.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tunelab.report.friedman import critical_difference, iman_davenport, nemenyi_q, rank_arms
from tunelab.report.replicability import k_hat, partial_conjunction


def _chi2_sf_even(x: float, df: int) -> float:
    """P(χ²_df >= x) for even df: exp(-x/2) Σ_{i < df/2} (x/2)^i / i!."""
    return math.exp(-x / 2) * sum((x / 2) ** i / math.factorial(i) for i in range(df // 2))


def test_partial_conjunction_hand_computed():
    p = [0.04, 0.5, 0.01, 0.02]  # order does not matter
    assert partial_conjunction(p, "bonferroni") == pytest.approx([4 * 0.01, 3 * 0.02, 2 * 0.04, 0.5])
    assert k_hat(p, 0.05, "bonferroni") == 1
    logs = -2 * np.log([0.01, 0.02, 0.04, 0.5])
    fisher = [_chi2_sf_even(logs[u:].sum(), 2 * (4 - u)) for u in range(4)]
    assert fisher[1] < 0.05 < fisher[2]  # so the claim holds on 2 of 4 datasets with Fisher
    assert partial_conjunction(p, "fisher") == pytest.approx(np.maximum.accumulate(fisher), rel=1e-9)
    assert k_hat(p, 0.05, "fisher") == 2
    # 2 * 0.01 = 0.02 > 1 * 0.011: the running maximum keeps the sequence non-decreasing
    assert partial_conjunction([0.01, 0.011], "bonferroni") == pytest.approx([0.02, 0.02])
    assert k_hat([float("nan"), 0.001], 0.05) == 1  # NaN (too few seeds) is no evidence


# Demšar (2006), Table 6: AUC of C4.5 variants on 14 UCI data sets. On voting the printed 0.975 of
# C4.5+cf and C4.5+m+cf are not a tie in the paper's ranks (2 and 3), so cf is 0.97501 here.
DEMSAR = np.array([
    [0.763, 0.768, 0.771, 0.798], [0.599, 0.591, 0.590, 0.569], [0.954, 0.971, 0.968, 0.967],
    [0.628, 0.661, 0.654, 0.657], [0.882, 0.888, 0.886, 0.898], [0.936, 0.931, 0.916, 0.931],
    [0.661, 0.668, 0.609, 0.685], [0.583, 0.583, 0.563, 0.625], [0.775, 0.838, 0.866, 0.875],
    [1.000, 1.000, 1.000, 1.000], [0.940, 0.962, 0.965, 0.962], [0.619, 0.666, 0.614, 0.669],
    [0.972, 0.981, 0.97501, 0.975], [0.957, 0.978, 0.946, 0.970]])


def test_friedman_nemenyi_on_demsar_worked_example():
    arms = ["C4.5", "C4.5+m", "C4.5+cf", "C4.5+m+cf"]
    r = rank_arms(DEMSAR, arms, [f"d{i}" for i in range(14)])
    assert [round(r.avg_ranks[a], 3) for a in arms] == [3.143, 2.000, 2.893, 1.964]
    # scipy corrects χ² for ties; Demšar's 9.28 is the uncorrected statistic: undo the correction
    ties = sum(t ** 3 - t for row in DEMSAR for t in np.unique(row, return_counts=True)[1])
    factor = 1 - ties / (14 * 4 * (4 ** 2 - 1))
    assert r.chi2 * factor == pytest.approx(9.28, abs=0.005)
    assert iman_davenport(9.28, 14, 4)[0] == pytest.approx(3.69, abs=0.005)
    assert r.cd == pytest.approx(1.25, abs=0.005)
    # C4.5 vs C4.5+m+cf: 1.179 < CD, so no pair differs and all four are one group
    assert r.cliques == [["C4.5+m+cf", "C4.5+m", "C4.5+cf", "C4.5"]]
    table_5a = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
    assert [round(nemenyi_q(k), 3) for k in range(2, 11)] == pytest.approx(table_5a, abs=0.0011)
    assert critical_difference(3, 3) == pytest.approx(2.343 * math.sqrt(12 / 18), abs=1e-3)


ARMS = {"none": 0.90, "last2": 0.85, "all": 0.70}


def _data_sweep(root):
    rng = np.random.default_rng(7)
    idx = 0
    for data, shift in (("bbc_news", 0.0), ("drug_reviews", -0.2), ("tweets_sentiment", -0.1)):
        for arm, base in ARMS.items():
            for seed in range(3):
                d = root / str(idx)
                (d / ".hydra").mkdir(parents=True)
                ov = [f"data={data}", f"freeze={arm}", f"seed={seed}"]
                (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
                acc = base + shift + rng.normal(0, 0.005)
                res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "data": data, "seed": seed,
                       "metrics": {"test/acc": acc}, "overrides": ov, "majority_rate": 0.5}
                (d / "results.json").write_text(json.dumps(res))
                idx += 1
    return root


def test_data_sweep_tests_within_datasets_and_counts_claims(tmp_path):
    from tunelab import report as rp

    sweep = _data_sweep(tmp_path / "sweep")
    report = rp.build_report(sweep, reference="data=bbc_news,freeze=none", n_boot=200, paired_boot=10)
    comp = report.metrics["test/acc"].comparisons
    data_of = (lambda g: g.split(",")[0])
    assert len(comp.all_pairs) == 3 * 3 and all(data_of(c.a) == data_of(c.b) for c in comp.all_pairs)
    # the reference arm on each dataset is freeze=none
    assert sorted((c.a, c.b) for c in comp.vs_reference if c.a.startswith("data=drug")) == [
        ("data=drug_reviews,freeze=all", "data=drug_reviews,freeze=none"),
        ("data=drug_reviews,freeze=last2", "data=drug_reviews,freeze=none")]
    sec = report.datasets
    claim = next(c for c in sec.claims if (c.a, c.b) == ("freeze=none", "freeze=all"))
    assert claim.better_in == 3 and claim.k_bonferroni == 3 and claim.k_fisher == 3
    back = next(c for c in sec.claims if (c.a, c.b) == ("freeze=all", "freeze=none"))
    assert back.better_in == 0 and back.k_bonferroni == back.k_fisher == 0
    r = sec.rankings["test/acc"]
    assert r.avg_ranks == {"freeze=all": 3.0, "freeze=last2": 2.0, "freeze=none": 1.0}
    # perfect agreement: χ² = 12N/(k(k+1)) Σ R_j² − 3N(k+1) = 3 · 14 − 36 = 6, p = exp(−3) (2 df)
    assert r.chi2 == pytest.approx(6.0) and r.p == pytest.approx(math.exp(-3))
    assert r.cliques == [["freeze=none", "freeze=last2"], ["freeze=last2", "freeze=all"]]  # CD 1.91
    md = (sweep / "report.md").read_text()
    assert "## Claims across datasets" in md and "](cd_test_acc.png)" in md and (sweep / "cd_test_acc.png").is_file()
    assert "### Example-level statistics on `data=bbc_news`" in md
    assert json.loads((sweep / "report.json").read_text())["datasets"]["claims"][0]["metric"] == "test/acc"


@pytest.mark.parametrize("key, values", [("data.max_eval_samples", ("50", "200")),
                                         ("data.positive_label", ("neg", "pos")),
                                         ("data.labels", ("[neg,pos]", "[neg,pos,neutral]"))])
def test_arms_tested_on_other_test_sets_are_not_compared(tmp_path, key, values):
    """Sweeping data.max_eval_samples (or another key that picks the test rows, or the class
    test/f1 scores) gives each value its own test set: no Welch test across them (scipy's would
    say p < .05 here), only within."""
    from scipy import stats as st

    from tunelab import report as rp

    sweep, acc = tmp_path / "sweep", dict(zip(values, ([0.70, 0.72, 0.71], [0.80, 0.81, 0.82])))
    for idx, (cap, seed) in enumerate((c, s) for c in acc for s in range(3)):
        d = sweep / str(idx)
        (d / ".hydra").mkdir(parents=True)
        ov = [f"{key}={cap}", f"seed={seed}"]
        (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
        res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": seed, "overrides": ov,
               "metrics": {"test/acc": acc[cap][seed]}, "majority_rate": 0.5}
        (d / "results.json").write_text(json.dumps(res))
    assert st.ttest_ind(*acc.values(), equal_var=False).pvalue < 0.05
    report = rp.build_report(sweep, n_boot=100, paired_boot=10, write=False)
    comp = report.metrics["test/acc"].comparisons
    assert comp.all_pairs == [] and comp.vs_reference == []
    assert report.datasets is not None and report.datasets.keys == [key]
    assert any("no test compares them" in n for n in report.datasets.notes)


def test_paired_f1_of_each_dataset_is_of_its_own_positive_class(tmp_path):
    """Two datasets whose positive label ('pos') is at index 1 in one and index 0 in the other:
    each dataset's paired-bootstrap F1 difference is that of its own positive class (sklearn)."""
    from sklearn.metrics import f1_score

    from tunelab import predictions as P
    from tunelab import report as rp

    rng, sweep, want = np.random.default_rng(5), tmp_path / "sweep", {}
    for data, names in (("a", ["neg", "pos"]), ("b", ["pos", "neg"])):
        gold = rng.integers(0, 2, 100)
        preds = {arm: np.where(rng.random(100) < acc, gold, 1 - gold) for arm, acc in (("all", .6), ("none", .9))}
        pos = names.index("pos")
        want[data] = f1_score(gold, preds["all"], pos_label=pos) - f1_score(gold, preds["none"], pos_label=pos)
        for arm, pred in preds.items():
            d = sweep / f"{data}_{arm}"
            (d / ".hydra").mkdir(parents=True)
            ov = [f"data={data}", f"freeze={arm}", "seed=0"]
            (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
            P.write(d, P.for_classes(np.arange(100), gold, pred, names))
            res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": 0, "overrides": ov,
                   "label_names": names, "config": {"data": {"name": data, "positive_label": "pos"}},
                   "metrics": {"test/acc": float(np.mean(pred == gold))}, "majority_rate": 0.5}
            (d / "results.json").write_text(json.dumps(res))
    report = rp.build_report(sweep, n_boot=50, paired_boot=20, write=False)
    for data in ("a", "b"):
        row = next(r for r in report.datasets.examples[f"data={data}"].pairs if r.seeds.startswith("pooled"))
        assert (row.a, row.b) == (f"data={data},freeze=all", f"data={data},freeze=none")
        assert row.diffs["test/f1"]["diff"] == pytest.approx(want[data])


def _experiment_job(sweep, idx, ov, data, acc, **config):
    d = sweep / str(idx)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
    res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": int(ov[-1].split("=")[1]),
           "overrides": ov, "choices": {"data": data}, "config": {"data": {"name": data, **config}},
           "metrics": {"test/acc": acc}, "majority_rate": 0.5}
    (d / "results.json").write_text(json.dumps(res))


def test_arms_whose_own_configs_pick_other_data_are_not_compared(tmp_path):
    """``-m experiment=a,b,c`` where c's experiment trains and tests on other data: no override
    says so, and the report used to run Welch tests between a and c (scipy: p < .05 here). Now the
    configs' data is the dataset: a vs b is tested, c stands alone; a per-seed split is no dataset."""
    from scipy import stats as st

    from tunelab import report as rp

    acc = {"a": ("tweets", [0.80, 0.81, 0.82]), "b": ("tweets", [0.79, 0.83, 0.80]), "c": ("bbc", [0.95, 0.96, 0.97])}
    sweep = tmp_path / "sweep"
    for idx, (exp, seed) in enumerate((e, s) for e in acc for s in range(3)):
        data, scores = acc[exp]
        _experiment_job(sweep, idx, [f"experiment={exp}", f"seed={seed}"], data, scores[seed], split_seed=seed)
    assert st.ttest_ind(acc["a"][1], acc["c"][1], equal_var=False).pvalue < 0.05
    report = rp.build_report(sweep, n_boot=100, paired_boot=10, write=False)
    pairs = [(c.a, c.b) for c in report.metrics["test/acc"].comparisons.all_pairs]
    assert pairs == [("experiment=a,data=tweets", "experiment=b,data=tweets")], pairs
    assert report.datasets is not None and report.datasets.keys == ["data"]
    assert any(n.startswith("data is not swept, but the groups' configs set it otherwise") for n in report.notes)
    # data.split_seed differs from seed to seed inside every group: not a dataset of the report
    assert not any("data.split_seed" in n for n in report.notes)


def test_merged_sweeps_pooling_one_arm_over_two_datasets_are_refused(tmp_path):
    """The same overrides in two sweeps whose configs ran on other data: one group would pool two
    test sets, which no split can undo: refused, naming the key and the fix."""
    from tunelab.report.merge import MergeError, collect_dirs

    for name, data in (("s1", "tweets"), ("s2", "bbc")):
        for seed in range(2):
            _experiment_job(tmp_path / name, seed, ["freeze=none", f"seed={seed + (2 if name == 's2' else 0)}"],
                            data, 0.8)
    with pytest.raises(MergeError, match=r"the sweeps ran on different data \(data: tweets in s1, bbc in s2"):
        collect_dirs([tmp_path / "s1", tmp_path / "s2"])
