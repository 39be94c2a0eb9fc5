"""Calibration: ECE, Brier, NLL and temperature scaling per job, and the report's calibration section.

References: a hand-computed ECE case and torchmetrics' calibration error (its own binning code),
scikit-learn's brier_score_loss and log_loss, a temperature recovered from labels drawn at a known
temperature, and the job's own results.json numbers recomputed from its predictions.npz.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss
from torchmetrics.functional.classification import multiclass_calibration_error

from conftest import FAST
from tunelab import calibration as C
from tunelab import predictions as P
from tunelab.models.kept_val import KeptValidation
from tunelab.run import RunContext, run


def _random_probs(n, k, seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (n, k))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return p, rng.integers(0, k, n)


def test_ece_hand_computed_case():
    # confidences .90 (right) and .91 (wrong) share bin (13/15, 14/15]; .78 wrong; .62 right; .95 right
    probs = np.array([[0.10, 0.90], [0.91, 0.09], [0.22, 0.78], [0.62, 0.38], [0.95, 0.05]])
    gold = np.array([1, 1, 0, 0, 0])
    # 2/5*|0.5-0.905| + 1/5*|0-0.78| + 1/5*|1-0.62| + 1/5*|1-0.95|
    assert C.ece(probs, gold) == pytest.approx(0.404, abs=1e-12)
    r = C.reliability(probs, gold)
    assert r.count.tolist() == [0] * 9 + [1, 0, 1, 0, 2, 1] and r.count.sum() == 5
    assert C.ece(np.array([[0.3, 0.7]] * 10), np.array([1] * 7 + [0] * 3)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [2, 4])
def test_ece_brier_nll_against_independent_implementations(k):
    p, y = _random_probs(500, k, seed=k)
    tm = multiclass_calibration_error(torch.tensor(p), torch.tensor(y), num_classes=k, n_bins=15, norm="l1")
    assert C.ece(p, y) == pytest.approx(float(tm), abs=1e-6)  # torchmetrics computes in float32
    assert C.brier(p, y) == pytest.approx(brier_score_loss(y, p, labels=list(range(k)), scale_by_half=False),
                                          abs=1e-12)
    assert C.nll(p, y) == pytest.approx(log_loss(y, p, labels=list(range(k))), abs=1e-9)


def test_temperature_is_recovered_and_keeps_predictions():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (20000, 3))
    true_t = 2.0  # labels drawn from softmax(z / 2): probs softmax(z) are over-confident by T = 2
    q = np.exp(z / true_t) / np.exp(z / true_t).sum(1, keepdims=True)
    y = (q.cumsum(1) > rng.random((len(z), 1))).argmax(1)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    t = C.fit_temperature(p, y)
    assert t == pytest.approx(true_t, rel=0.05)
    grid = np.linspace(1.0, 3.0, 201)  # the fitted T is (within the grid step) the grid's best
    nll = [-np.mean(z[np.arange(len(y)), y] / g - np.log(np.exp(z / g).sum(1))) for g in grid]
    best = grid[np.argmin(nll)]
    assert abs(t - best) <= 0.011
    assert (C.scaled(p, t).argmax(1) == p.argmax(1)).all()
    assert C.ece(C.scaled(p, t), y) < C.ece(p, y) / 3


def test_kept_validation_follows_the_loaded_checkpoint(tmp_path):
    keep = KeptValidation()
    preds = {s: P.for_classes([1, 0], [0, 1], [0, 0], ["a", "b"], [[0.9, 0.1], [0.6 + s / 100, 0.4 - s / 100]])
             for s in (5, 9)}
    for s, p in preds.items():
        keep.add(s, p)
    ckpt = {"global_step": 5}
    keep.save(ckpt, 5)
    torch.save(ckpt, tmp_path / "c.ckpt")
    fresh = KeptValidation()  # a resumed process: only the checkpoint knows step 5's predictions
    fresh.load(torch.load(tmp_path / "c.ckpt", weights_only=True))
    got = fresh.of_tested(global_step=9)
    assert got is not None and np.allclose(got.probs, preds[5].probs) and got.index.tolist() == [0, 1]
    fresh.weights_moved()
    assert fresh.of_tested(global_step=9) is None and keep.of_tested(9) is preds[9]


def _job(compose, tmp_path, *overrides):
    cfg = compose(FAST + [f"cache_dir={tmp_path}/cache", *overrides])
    out = tmp_path / "job"
    rec = run(cfg, RunContext(out_dir=out, overrides=list(overrides)))
    return rec, P.read(out / "predictions.npz")


def test_finetune_job_records_calibration_of_its_tested_weights(compose, tmp_path):
    # lr 1e-2 overshoots: the val loss is lowest before the last epoch, so the tested (best)
    # checkpoint is not the last weights, and neither are the validation predictions to keep
    rec, p = _job(compose, tmp_path, "optim.epochs=3", "optim.lr=1e-2", "task.monitor=val/loss",
                  "task.monitor_mode=min")
    m = rec["metrics"]
    assert m["val/loss"] - m["val/loss_best"] > 1e-3
    assert m["test/nll"] == pytest.approx(m["test/loss"], abs=1e-4)  # the module's own cross-entropy
    probs = p.probs.astype(np.float64)
    assert m["test/ece"] == pytest.approx(float(multiclass_calibration_error(
        torch.tensor(probs), torch.tensor(p.gold.astype(np.int64)), num_classes=2, n_bins=15)), abs=3e-3)
    val = p.other["val"]  # the validation predictions of the tested (best) checkpoint
    assert log_loss(val.gold, val.probs.astype(np.float64), labels=[0, 1]) == pytest.approx(m["val/loss_best"], abs=3e-4)
    refit = C.fit_temperature(val.probs.astype(np.float64), val.gold)
    assert m["calibration/temperature"] == pytest.approx(refit, rel=0.02)
    assert m["test/ece_ts"] == pytest.approx(C.ece(C.scaled(probs, m["calibration/temperature"]), p.gold), abs=3e-3)


def test_sparse_job_records_calibration(compose, tmp_path):
    rec, p = _job(compose, tmp_path, "method=sparse")
    m = rec["metrics"]
    assert m["test/nll"] == pytest.approx(m["test/loss"], abs=1e-6)  # sklearn's log loss (probs kept as float32)
    probs = p.probs.astype(float) / p.probs.astype(float).sum(1, keepdims=True)
    assert m["test/brier"] == pytest.approx(brier_score_loss(p.gold, probs, labels=[0, 1],
                                                             scale_by_half=False), abs=2e-3)
    assert set(p.other) == {"val"} and "calibration/temperature" in m and "test/ece_ts" in m


def test_report_calibration_section(tmp_path):
    from tunelab import report as rp

    sweep = tmp_path / "sweep"
    rng = np.random.default_rng(3)
    gold, vgold = rng.integers(0, 3, 200), rng.integers(0, 3, 100)
    runs = {}
    for idx, (arm, sharp) in enumerate((a, s) for a, s in (("none", 1.0), ("all", 3.0)) for _ in range(3)):
        d = sweep / str(idx)
        d.mkdir(parents=True)
        z, vz = rng.normal(0, 1, (200, 3)) + 2 * np.eye(3)[gold], rng.normal(0, 1, (100, 3)) + 2 * np.eye(3)[vgold]
        pr = np.exp(sharp * z) / np.exp(sharp * z).sum(1, keepdims=True)
        vpr = np.exp(sharp * vz) / np.exp(sharp * vz).sum(1, keepdims=True)
        p = P.for_classes(np.arange(200), gold, pr.argmax(1), ["a", "b", "c"], pr).with_split(
            "val", P.for_classes(np.arange(100), vgold, vpr.argmax(1), ["a", "b", "c"], vpr))
        P.write(d, p)
        metrics = {"test/acc": float((pr.argmax(1) == gold).mean()), "test/ece": C.ece(pr, gold),
                   "test/brier": C.brier(pr, gold), "test/nll": C.nll(pr, gold)}
        runs.setdefault(arm, []).append((metrics, P.read(d / "predictions.npz")))
        res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": idx % 3, "metrics": metrics,
               "overrides": [f"freeze={arm}", f"seed={idx % 3}"], "label_names": ["a", "b", "c"]}
        (d / "results.json").write_text(json.dumps(res))
    report = rp.build_report(sweep, n_boot=200, paired_boot=10)
    cal = json.loads((sweep / "report.json").read_text())["calibration"]["arms"]
    for arm, rows in runs.items():
        eces = [m["test/ece"] for m, _ in rows]
        got = cal[f"freeze={arm}"]
        assert got["mean"]["ece"] == pytest.approx(np.mean(eces)) and got["sd"]["ece"] == pytest.approx(np.std(eces, ddof=1))
        mean_p = np.mean([q.probs.astype(np.float64) for _, q in rows], axis=0)
        mean_p /= mean_p.sum(1, keepdims=True)
        assert got["ensemble"]["ece"] == pytest.approx(float(multiclass_calibration_error(
            torch.tensor(mean_p), torch.tensor(gold), num_classes=3, n_bins=15)), abs=1e-6)
        assert got["ensemble"]["nll"] == pytest.approx(log_loss(gold, mean_p, labels=[0, 1, 2]), abs=1e-6)
        assert (sweep / f"reliability_freeze_{arm}.png").stat().st_size > 1000
        mean_v = np.mean([q.other["val"].probs.astype(np.float64) for _, q in rows], axis=0)
        grid = np.exp(np.linspace(-3, 3, 601))  # the ensemble's T: the best of a fine grid on val NLL
        logp = np.log(mean_v)
        nll = [-np.mean(logp[np.arange(100), vgold] / t - np.log(np.exp(logp / t).sum(1))) for t in grid]
        best = grid[np.argmin(nll)]
        assert got["ensemble"]["temperature"] == pytest.approx(best, rel=0.012)
    assert cal["freeze=all"]["ensemble"]["temperature"] > 2 * cal["freeze=none"]["ensemble"]["temperature"]
    md = (sweep / "report.md").read_text()
    assert "## Calibration" in md and "](reliability_freeze_all.png)" in md
    assert report.calibration.arms["freeze=all"].n_ensemble == 3


def test_report_ensemble_temperature_needs_the_seeds_on_one_validation_split(tmp_path):
    """Seeds validated on other examples (their own split, equal row numbers) give no ensemble
    temperature: the mean of their probabilities scored against the first seed's gold fits
    nothing. The ensemble's test ECE stays (the test examples are shared), checked against
    torchmetrics; with the validation split shared the temperature is there."""
    from tunelab import report as rp

    rng = np.random.default_rng(11)
    gold = rng.integers(0, 2, 120)
    shared_v = rng.integers(0, 2, 60)

    def sweep(root, own_val):
        kept = []
        for seed in range(3):
            d = root / str(seed)
            d.mkdir(parents=True)
            vg = rng.integers(0, 2, 60) if own_val else shared_v
            pr, vpr = (np.clip(rng.normal(0.5 + 0.3 * (2 * g - 1), 0.2), 0.02, 0.98) for g in (gold, vg))
            pr, vpr = np.stack([1 - pr, pr], 1), np.stack([1 - vpr, vpr], 1)
            P.write(d, P.for_classes(np.arange(120), gold, pr.argmax(1), ["neg", "pos"], pr).with_split(
                "val", P.for_classes(np.arange(60), vg, vpr.argmax(1), ["neg", "pos"], vpr)))
            kept.append(P.read(d / "predictions.npz").probs.astype(np.float64))
            res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": seed,
                   "metrics": {"test/acc": float((pr.argmax(1) == gold).mean()), "test/ece": C.ece(pr, gold)},
                   "overrides": ["freeze=none", f"seed={seed}"], "label_names": ["neg", "pos"]}
            (d / "results.json").write_text(json.dumps(res))
        return rp.build_report(root, n_boot=50, paired_boot=10, write=False).calibration, kept

    cal, kept = sweep(tmp_path / "own", own_val=True)
    arm = next(iter(cal.arms.values()))
    assert "temperature" not in arm.ensemble and "ece_ts" not in arm.ensemble
    assert any("validated on other examples" in n for n in cal.notes)
    mean_p = np.mean(kept, axis=0)
    mean_p /= mean_p.sum(1, keepdims=True)
    assert arm.ensemble["ece"] == pytest.approx(float(multiclass_calibration_error(
        torch.tensor(mean_p), torch.tensor(gold), num_classes=2, n_bins=15)), abs=1e-6)
    shared, _ = sweep(tmp_path / "shared", own_val=False)
    assert "temperature" in next(iter(shared.arms.values())).ensemble and not shared.notes
