"""tunelab.report on a synthetic sweep with every kind of trouble a real one has."""

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from tunelab import report as rp
from tunelab.io import jsonable
from tunelab.report import analysis

SRC = str(Path(__file__).resolve().parents[1] / "src")

# group -> test/acc per seed; freeze=all seed 2 is degenerate (predicts only 'negative', acc = majority)
ACC = {"none": [0.80, 0.82, 0.84], "last2": [0.85, 0.86, 0.88], "all": [0.70, 0.72, 0.60]}
F1 = {"none": [0.75, 0.78, 0.80], "last2": [0.82, 0.83, 0.85], "all": [0.62, 0.65, 0.0]}
F1M = {"none": [0.79, 0.81, 0.83], "last2": [0.84, 0.85, 0.87], "all": [0.69, 0.71, 0.375]}


def _result(freeze, seed, acc, f1, f1m, **kw):
    degenerate = f1 == 0.0
    res = {
        "schema_version": 1, "status": "ok", "error": None, "task": "seq_cls", "model": "minilm",
        "data": "sst2_tiny", "freeze": freeze, "seed": seed,
        "metrics": {"test/acc": acc, "test/f1": f1, "test/f1_macro": f1m, "test/loss": 1.0 - acc},
        "majority_rate": 0.6,
        "pred_class_counts": {"negative": 100, "positive": 0} if degenerate else {"negative": 55, "positive": 45},
        "label_names": ["negative", "positive"],
        "n_examples": {"train": 400, "val": 50, "test": 100},
        "overrides": [f"freeze={freeze}", f"seed={seed}", "model=minilm"],
        "extra": {"majority_label": "negative"},
    }
    res.update(kw)
    return res


def _job(root: Path, idx: int, overrides, result=None, raw: str | None = None) -> Path:
    d = root / str(idx)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if result is not None:
        (d / "results.json").write_text(json.dumps(result))
    if raw is not None:
        (d / "results.json").write_text(raw)
    return d


def make_sweep(root: Path) -> Path:
    """3 freeze settings x 3 seeds, plus a failed run, a dead job, a corrupt file; one degenerate run."""
    sweep = root / "multirun_outputs" / "2025-01-01" / "12-00-00"
    sweep.mkdir(parents=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    idx = 0
    for freeze in ("none", "last2", "all"):
        for seed in range(3):
            r = _result(freeze, seed, ACC[freeze][seed], F1[freeze][seed], F1M[freeze][seed])
            _job(sweep, idx, r["overrides"], r)
            idx += 1
    failed = _result("all", 3, 0, 0, 0, status="failed", metrics={},
                     error={"type": "RuntimeError", "message": "CUDA out of memory"})
    _job(sweep, 9, failed["overrides"], failed)
    _job(sweep, 10, ["freeze=last2", "seed=3", "model=minilm"])                      # died: no results.json
    _job(sweep, 11, ["freeze=none", "seed=3", "model=minilm"], raw='{"status": "ok", "metr')  # corrupt
    return sweep


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_files_rows_and_values(sweep):
    rep = rp.build_report(sweep)
    for name in ("report.md", "report.csv", "report.json", "boxplot_test_acc.png",
                 "boxplot_test_f1.png", "boxplot_test_f1_macro.png"):
        assert (sweep / name).is_file(), name
    assert not list(sweep.glob(".*.tmp")), "temp files left behind"
    assert (sweep / "boxplot_test_acc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert isinstance(rep, rp.Report)
    assert rep.swept_keys == ["freeze"]
    assert list(rep.groups) == ["freeze=all", "freeze=last2", "freeze=none"]
    assert rep.reference == "freeze=all"
    assert rep.to_dict()["counts"] == {"jobs": 12, "ok": 9, "failed": 1, "interrupted": 0, "missing": 1,
                                         "corrupt": 1, "degenerate": 1, "running": 0}

    rows = _csv_rows(sweep / "report.csv")
    assert len(rows) == 3 * 3  # groups x default metrics; test/loss is not a default
    by = {(r["group"], r["metric"]): r for r in rows}
    none_acc = by[("freeze=none", "test/acc")]
    assert float(none_acc["mean"]) == pytest.approx(np.mean(ACC["none"]))
    assert float(none_acc["sd"]) == pytest.approx(np.std(ACC["none"], ddof=1))
    assert none_acc["n_ok"] == "3" and none_acc["n_failed"] == "1"  # the corrupt job 11
    assert float(none_acc["majority_baseline"]) == pytest.approx(0.6)
    all_acc = by[("freeze=all", "test/acc")]
    assert all_acc["n_failed"] == "1" and all_acc["n_degenerate"] == "1"
    assert float(all_acc["mean_non_degenerate"]) == pytest.approx(0.71)
    assert all_acc["diff_vs_reference"] == ""  # the reference itself

    ref = st.ttest_ind(ACC["none"], ACC["all"], equal_var=False)
    assert float(none_acc["t"]) == pytest.approx(ref.statistic)
    assert float(none_acc["p"]) == pytest.approx(ref.pvalue)
    assert float(none_acc["diff_vs_reference"]) == pytest.approx(np.mean(ACC["none"]) - np.mean(ACC["all"]))

    # Holm: two tests vs reference per metric, three pairs
    comp = rep.metrics["test/acc"].comparisons
    ps = [r.p for r in comp.vs_reference]
    assert [r.p_holm for r in comp.vs_reference] == pytest.approx(
        [min(1, max(2 * min(ps), p if p == max(ps) else 2 * p)) for p in ps])
    assert len(comp.all_pairs) == 3

    # majority baseline: acc 0.6; majority is the negative class -> positive F1 0; macro = (2*60/160)/2
    base = rep.baseline["freeze=none"]
    assert base.acc == pytest.approx(0.6) and base.f1 == 0.0 and base.f1_macro == pytest.approx(0.375)

    data = json.loads((sweep / "report.json").read_text())
    assert data["counts"]["jobs"] == 12 and "test/acc" in data["metrics"]
    assert data == jsonable(rep.to_dict()) and list(data) == list(rep.to_dict())  # the file is to_dict()


def test_problems_and_degenerate_runs_are_named(sweep):
    rp.build_report(sweep)
    md = (sweep / "report.md").read_text()
    runs = {r["name"]: r for r in json.loads((sweep / "report.json").read_text())["runs"]}
    assert runs["9"]["state"] == "failed" and "CUDA out of memory" in runs["9"]["problem"]
    assert runs["10"]["state"] == "missing" and runs["10"]["group"] == "freeze=last2"
    assert runs["11"]["state"] == "corrupt" and runs["11"]["group"] == "freeze=none"
    assert runs["8"]["degenerate"] and not runs["0"]["degenerate"]
    for text in ("| `9` | `freeze=all` | 3 | RuntimeError: CUDA out of memory |",
                 "| `10` | `freeze=last2` |", "| `11` | `freeze=none` |", "results.json unreadable",
                 "predicts only class 'negative'", "test/acc 0.6000 <= majority rate 0.6000",
                 "F1 (positive class)", "macro F1", "Welch", "Holm", "majority-class baseline",
                 "Without the 1 degenerate run(s)", "![test/acc box plot](boxplot_test_acc.png)"):
        assert text in md, text


def test_metric_selection_all_and_missing(sweep):
    rep = rp.build_report(sweep, metrics=["all"])
    assert list(rep.metrics) == ["test/acc", "test/f1", "test/f1_macro", "test/loss"]
    assert (sweep / "boxplot_test_loss.png").is_file()
    rep = rp.build_report(sweep, metrics=["test/loss"])
    assert list(rep.metrics) == ["test/loss"]
    assert len(_csv_rows(sweep / "report.csv")) == 3
    # a metric no ok run has is a typo or the wrong sweep: an error, not an empty section
    with pytest.raises(rp.ReportError, match="test/BWT"):
        rp.build_report(sweep, metrics=["test/loss", "test/BWT"])


def test_reference_option_and_unknown_reference(sweep):
    rep = rp.build_report(sweep, reference="freeze=none", write=False)
    assert [r.a for r in rep.metrics["test/acc"].comparisons.vs_reference] == ["freeze=all", "freeze=last2"]
    with pytest.raises(rp.ReportError, match="freeze=bogus"):
        rp.build_report(sweep, reference="freeze=bogus", write=False)


def test_single_group_and_multiple_swept_keys(tmp_path):
    one = tmp_path / "one"
    for s in range(2):
        r = _result("none", s, 0.8 + s / 100, 0.7, 0.75)
        _job(one, s, r["overrides"], r)
    rep = rp.build_report(one)
    # One group, named by what every job shared (not "all runs"): the report says what ran.
    assert list(rep.groups) == ["freeze=none,model=minilm"] and rep.swept_keys == []
    assert rep.metrics["test/acc"].comparisons.all_pairs == []
    assert rep.header.fixed_overrides == ["freeze=none", "model=minilm"]
    only_seeds = tmp_path / "only_seeds"
    for s in range(2):
        _job(only_seeds, s, [f"seed={s}"], _result("none", s, 0.8, 0.7, 0.75, overrides=[f"seed={s}"]))
    assert list(rp.build_report(only_seeds, write=False).groups) == [rp.SINGLE_GROUP]

    two = tmp_path / "two"
    for i, (method, feat) in enumerate([("sparse", "tfidf"), ("sparse", "count"), ("features", "none")]):
        ov = [f"method={method}", f"method.features={feat}", "seed=0"]
        _job(two, i, ov, _result("none", 0, 0.8, 0.7, 0.75, overrides=ov))
    rep = rp.build_report(two, write=False)
    assert "method=sparse,method.features=tfidf" in rep.groups  # the order the keys were given


def test_aso_and_missing_deepsig(sweep, monkeypatch):
    calls = []

    def fake_aso(a, b, **kw):
        calls.append((list(a), list(b), kw))
        return 0.1

    monkeypatch.setattr(analysis, "load_aso", lambda: (fake_aso, ""))
    rep = rp.build_report(sweep, metrics=["test/acc"], aso=True, write=False)
    rows = rep.metrics["test/acc"].aso
    assert len(rows) == 3 and all(r.eps_min == 0.1 for r in rows)
    last2_vs_all = next(r for r in rows if {r.a, r.b} == {"freeze=all", "freeze=last2"})
    assert last2_vs_all.better == "freeze=last2"  # higher mean is tested as the better one
    assert calls[0][2]["num_comparisons"] == 3

    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "deepsig", None)  # import deepsig -> ImportError
    rep = rp.build_report(sweep, metrics=["test/acc"], aso=True)
    assert rep.metrics["test/acc"].aso is None
    assert "ASO skipped: deepsig could not be imported" in (sweep / "report.md").read_text()


def test_baseline_from_label_counts():
    three = {"task": "seq_cls", "majority_rate": 0.5, "label_names": ["a", "b", "c"],
             "extra": {"train_label_counts": {"a": 10, "b": 200, "c": 5},
                       "test_label_counts": {"a": 30, "b": 50, "c": 20}}}
    b = rp.run_baseline(three)
    assert b.acc == 0.5 and b.f1 is None and "not binary" in b.note
    assert b.f1_macro == pytest.approx((2 * 50 / 150) / 3)
    pos_major = {"task": "seq_cls", "majority_rate": 0.7, "label_names": ["neg", "pos"],
                 "n_examples": {"test": 10}, "extra": {"majority_label": 1}}  # index -> 'pos'
    b = rp.run_baseline(pos_major)
    assert b.f1 == pytest.approx(2 * 7 / 17) and b.f1_macro == pytest.approx(7 / 17)
    b = rp.run_baseline({"task": "seq_cls", "majority_rate": 0.7})
    assert b.acc == 0.7 and b.f1 is None and "extra.majority_label" in b.note


def test_real_deepsig_aso(sweep):
    pytest.importorskip("deepsig")
    rep = rp.build_report(sweep, metrics=["test/acc"], aso=True, aso_iterations=5, write=False)
    rows = rep.metrics["test/acc"].aso
    assert len(rows) == 3 and all(0.0 <= r.eps_min <= 1.0 for r in rows), rows


def test_cli_errors_exit_2(tmp_path, capsys):
    assert rp.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tunelab report: error:") and "does not exist" in err and "\n" not in err
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert rp.main([str(tmp_path / "empty")]) == 2
    assert "no runs" in capsys.readouterr().err


def test_cli_and_console_entry(sweep, capsys):
    from tunelab import cli

    assert cli.main(["report", str(sweep), "--metric", "test/acc", "--reference", "freeze=last2"]) == 0
    out = capsys.readouterr().out
    assert "12 job dirs: 9 ok, 1 failed" in out and out.strip().endswith("report.md")
    assert json.loads((sweep / "report.json").read_text())["reference"] == "freeze=last2"


def test_hydra_callback_writes_report_after_multirun(tmp_path):
    app = tmp_path / "app"
    (app / "conf").mkdir(parents=True)
    (app / "conf" / "config.yaml").write_text("seed: 0\nfreeze: none\n")
    (app / "my_app.py").write_text(textwrap.dedent("""
        import json, os
        import hydra
        from hydra.core.hydra_config import HydraConfig

        @hydra.main(version_base=None, config_path="conf", config_name="config")
        def main(cfg):
            out = HydraConfig.get().runtime.output_dir
            acc = 0.7 + 0.1 * (cfg.freeze == "last2") + 0.01 * cfg.seed
            res = {"schema_version": 1, "status": "ok", "seed": cfg.seed, "task": "seq_cls",
                   "metrics": {"test/acc": acc}, "majority_rate": 0.5,
                   "overrides": list(HydraConfig.get().overrides.task)}
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump(res, f)

        if __name__ == "__main__":
            main()
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "my_app.py", "-m", "freeze=none,last2", "seed=0,1",
         f"hydra.sweep.dir={sweep}",
         # '+' because hydra.callbacks has no 'report' key yet; in a YAML config no '+' is needed
         "+hydra.callbacks.report._target_=tunelab.hydra_callbacks.ReportCallback",
         '+hydra.callbacks.report.reference="freeze=last2"'],
        cwd=app, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert (sweep / "report.md").is_file(), proc.stdout + proc.stderr
    assert str(sweep / "report.md") in proc.stdout
    rows = _csv_rows(sweep / "report.csv")
    assert {r["group"] for r in rows} == {"freeze=none", "freeze=last2"}
    assert {r["reference"] for r in rows} == {"freeze=last2"}  # constructor kwarg reached the report


def test_hydra_callback_never_raises(tmp_path, caplog):
    from omegaconf import OmegaConf

    from tunelab.hydra_callbacks import ReportCallback

    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "missing")}}})
    ReportCallback().on_multirun_end(cfg)  # no such dir: logged, not raised
    assert "report" in caplog.text.lower()


def test_hydra_callback_reports_despite_a_configured_metric_no_run_has(sweep):
    # experiment=forgetting lists test/FWT, which runs have only with curriculum baselines: the
    # sweep's report must still be written (with a note), not lost to the CLI's typo check.
    from omegaconf import OmegaConf

    from tunelab.hydra_callbacks import ReportCallback

    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    ReportCallback(metrics=["test/acc", "test/FWT"]).on_multirun_end(cfg)
    md = (sweep / "report.md").read_text()
    assert "metric test/FWT was asked for but no ok run has it" in md
    assert {r["metric"] for r in _csv_rows(sweep / "report.csv")} == {"test/acc"}


def test_unknown_metric_or_reference_exits_2_and_leaves_the_report_alone(sweep, capsys):
    assert rp.main([str(sweep), "--metric", "test/acc"]) == 0
    before = {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file()}
    assert rp.main([str(sweep), "--metric", "test/acc", "test/acx"]) == 2
    err = capsys.readouterr().err
    assert "test/acx" in err and "test/f1_macro" in err and "\n" not in err.strip()
    assert rp.main([str(sweep), "--reference", "freeze=typo"]) == 2
    assert {p.name: p.read_bytes() for p in sweep.iterdir() if p.is_file()} == before


def test_a_new_report_removes_the_plots_of_metrics_it_no_longer_has(sweep):
    rp.build_report(sweep)  # the three default metrics
    assert len(list(sweep.glob("boxplot_*.png"))) == 3
    rep = rp.build_report(sweep, metrics=["test/f1"])
    assert sorted(p.name for p in sweep.glob("boxplot_*.png")) == ["boxplot_test_f1.png"]
    assert "boxplot_test_acc.png" not in (sweep / "report.md").read_text() and rep.files["plot:test/f1"]


def test_a_job_left_running_by_a_kill_is_interrupted_not_corrupt(sweep):
    r = _result("none", 7, 0, 0, 0, status="running", metrics={})
    _job(sweep, 12, r["overrides"], r)
    rep = rp.build_report(sweep)
    c = rep.to_dict()["counts"]
    assert c["interrupted"] == 1 and c["corrupt"] == 1  # job 11's truncated file stays corrupt
    run = next(x for x in rep.to_dict()["runs"] if x["name"] == "12")
    assert run["state"] == "interrupted" and "still says running" in run["problem"]
    assert "Interrupted runs (stopped by Ctrl-C/SIGTERM, or killed: results.json still says running): 1" in (
        sweep / "report.md").read_text()


def test_a_job_still_running_is_neither_a_result_nor_a_failure(sweep):
    """A report read while the sweep goes on: a job whose process runs on this host (here: this
    very process, which started before the record said so) is counted running, not failed or
    interrupted; a record naming a live pid that started after it was written is another process
    (the pid was reused), and the job was killed."""
    import datetime as dt
    import os
    import socket

    now = dt.datetime.now(dt.timezone.utc).isoformat()
    here = {"host": socket.gethostname(), "pid": os.getpid()}
    r = _result("none", 7, 0, 0, 0, status="running", metrics={}, started_at=now, environment=here)
    _job(sweep, 12, r["overrides"], r)
    rep = rp.build_report(sweep)
    c = rep.to_dict()["counts"]
    assert (c["running"], c["interrupted"], c["failed"]) == (1, 0, 1)  # job 9's failure stays the only one
    assert rep.to_dict()["groups"]["freeze=none"]["running"] == 1
    text = (sweep / "report.md").read_text()
    assert "**still running 1**" in text and "Interrupted runs (stopped by Ctrl-C/SIGTERM, or killed: results.json " \
        "still says running): 0" in text
    # the same pid in a record written before this process started: a reused pid, the job was killed
    r["started_at"] = "2020-01-01T00:00:00+00:00"
    (sweep / "12" / "results.json").write_text(json.dumps(r))
    c = rp.build_report(sweep).to_dict()["counts"]
    assert (c["running"], c["interrupted"]) == (0, 1)


def test_report_files_honour_the_umask(sweep):
    import os

    old = os.umask(0o022)
    try:
        rp.build_report(sweep)
    finally:
        os.umask(old)
    for name in ("report.md", "report.csv", "report.json", "boxplot_test_acc.png"):
        assert (sweep / name).stat().st_mode & 0o777 == 0o644, name
    os.umask(0o077)
    try:
        rp.build_report(sweep)
    finally:
        os.umask(old)
    assert (sweep / "report.md").stat().st_mode & 0o777 == 0o600


def test_seeds_run_later_with_resume_or_another_logger_join_their_arm(tmp_path):
    # A study extended with `resume=auto` (or logged to W&B) computed the same arms: bookkeeping
    # keys (tunelab.ops.identity.BOOKKEEPING) are not groups. Before, freeze=none split into
    # "resume=<unset>" and "resume=auto" halves, and replay/report compared an arm with itself.
    root, acc = tmp_path / "study", {"none": [0.80, 0.82, 0.84, 0.83], "last2": [0.85, 0.86, 0.88, 0.87]}
    i = 0
    for freeze, values in acc.items():
        for seed, a in enumerate(values):
            later = ["resume=auto", "resume.name=ext", "logger=wandb"] if seed >= 2 else []
            r = _result(freeze, seed, a, 0.7, a)
            r["overrides"] = [*r["overrides"], *later]
            _job(root, i, r["overrides"], r)
            i += 1
    rep = rp.build_report(root, write=False)
    assert rep.swept_keys == ["freeze"] and sorted(rep.groups) == ["freeze=last2", "freeze=none"]
    (row,) = rep.metrics["test/acc"].comparisons.all_pairs
    want = st.ttest_ind(acc["last2"], acc["none"], equal_var=False).pvalue
    assert (row.n_a, row.n_b, row.p) == (4, 4, pytest.approx(want, rel=1e-9))
