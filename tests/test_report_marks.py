"""Report problems and plot marks (issue 23): a run whose metric is no number is a problem, not
an ok run; a group without results is marked in every plot; group labels are never cut off."""

from __future__ import annotations

from pathlib import Path

from test_report import _job, _result
from tunelab import report as rp
from tunelab.report.merge import collect_dirs


def _sweep(root: Path, groups: dict[str, list[str]], overrides=()) -> Path:
    """``{freeze: [status per seed]}`` -> a sweep dir of synthetic results (ok: acc 0.8 + seed/100)."""
    root.mkdir(parents=True)
    n = 0
    for freeze, states in groups.items():
        for seed, state in enumerate(states):
            kw = {"overrides": [f"freeze={freeze}", f"seed={seed}", *overrides]}
            if state != "ok":
                kw.update(status="failed", metrics={}, error={"type": "RuntimeError", "message": "boom"})
            r = _result(freeze, seed, 0.8 + seed / 100, 0.7, 0.7, **kw)
            _job(root, n, r["overrides"], r)
            n += 1
    return root


def test_a_run_with_a_metric_that_is_not_a_number_is_a_problem_not_an_ok_run(tmp_path):
    sweep = _sweep(tmp_path / "s", {"none": ["ok", "ok", "ok"]})
    bad = _result("none", 3, 0.9, 0.7, 0.7, overrides=["freeze=none", "seed=3"])
    bad["metrics"]["test/acc"] = "0.9"  # a string accuracy
    _job(sweep, 3, bad["overrides"], bad)
    lacking = _result("none", 4, 0.8, 0.7, 0.7, overrides=["freeze=none", "seed=4"])
    del lacking["metrics"]["test/f1"]
    _job(sweep, 4, lacking["overrides"], lacking)
    rep = rp.build_report(sweep)
    counts = rep.to_dict()["counts"]
    assert counts["ok"] == 4 and counts["corrupt"] == 1
    md = (sweep / "report.md").read_text()
    assert "| `3` | `freeze=none` | 3 | results.json says ok, but its metric test/acc is '0.9', not a number |" in md
    assert "### Ok runs without a value for a reported metric: 1" in md
    assert "| `4` | `freeze=none` | 4 | no test/f1 in results.json" in md


def test_a_group_without_results_is_marked_in_every_plot(tmp_path):
    from tunelab.report.plots import box_figure, no_result

    sweep = _sweep(tmp_path / "s", {"all": ["failed", "failed"], "last2": ["ok", "failed"], "none": ["ok", "ok"]})
    rep = rp.build_report(sweep)
    _, groups, _, _ = collect_dirs([sweep])
    marks = no_result(groups, "test/acc")
    assert marks == {"freeze=all": "no result (2 failed)", "freeze=last2": "1 failed"}
    ax = box_figure("test/acc", rep, groups).axes[0]
    shown = {t.get_text().replace("\n", " ") for t in ax.texts}
    assert {"no result (2 failed)", "1 failed"} <= shown
    assert (sweep / "expected_max_test_acc.png").is_file()


def test_a_single_group_with_a_long_label_is_not_cut_off(tmp_path):
    from tunelab.report.plots import box_figure

    fixed = ["model=minilm", "data=drug_reviews", "optim.lr=3e-5", "trainer=cpu_bf16", "optim.batch_size=32"]
    sweep = _sweep(tmp_path / "s", {"last2": ["ok", "ok", "ok"]}, overrides=fixed)
    rep = rp.build_report(sweep)
    _, groups, _, _ = collect_dirs([sweep])
    (label,) = groups  # one group, named by every override the jobs share
    assert len(label) > 60
    fig = box_figure("test/acc", rep, groups)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    for tick in fig.axes[0].get_xticklabels():
        box = tick.get_window_extent(renderer)
        assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, (tick.get_text(), box, page)
    assert "".join(t.get_text() for t in fig.axes[0].get_xticklabels()).replace("\n", "") == label
