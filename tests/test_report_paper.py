"""Paper-ready output: ``tunelab report --latex`` (booktabs tables) and checklist.md.

References: the values the synthetic runs were written with (numpy mean/sd, scipy's Welch test for
the significance mark), and for the checklist the results.json fields and multirun.yaml the test wrote.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import stats as st

from test_report_datasets import _data_sweep
from tunelab import report as rp
from tunelab.report.latex import mark, tex

ACC = {"all": [0.70, 0.72, 0.71], "none": [0.90, 0.92, 0.91]}
MULTIRUN = """hydra:
  sweeper:
    _target_: hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper
    direction: maximize
    n_trials: 20
    sampler:
      _target_: optuna.samplers.TPESampler
    params:
      optim.lr: tag(log, interval(1e-5, 3e-4))
"""


def _sweep(root):
    root.mkdir(parents=True)
    (root / "multirun.yaml").write_text(MULTIRUN)
    idx = 0
    for arm, accs in ACC.items():
        for seed, (acc, lr) in enumerate(zip(accs, (1e-5, 3e-5, 1e-4))):
            d = root / str(idx)
            (d / ".hydra").mkdir(parents=True)
            ov = [f"freeze={arm}", f"optim.lr={lr}", f"seed={seed}"]
            (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
            res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": seed, "overrides": ov,
                   "metrics": {"test/acc": acc, "val/acc": acc - 0.05, "val/f1_macro_best": acc - 0.04},
                   "majority_rate": 0.6, "duration_s": 10.0 + idx, "cost": {"cpu_s": 20.0 + idx, "threads": 2},
                   "config": {"optim": {"lr": lr, "batch_size": 16}, "freeze": {"name": arm},
                              "trainer": {"accelerator": "gpu"}},
                   "environment": {"cpu": "Test CPU 9000", "cpu_count": 16, "gpu": {"count": 2, "names": ["H200", "H200"]}},
                   "versions": {"torch": "2.13.0", "python": "3.11"}, "git_commit": "abc123"}
            (d / "results.json").write_text(json.dumps(res))
            idx += 1
    return root


def test_latex_tables_and_the_cli_flag(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    assert rp.main([str(sweep), "--reference", "freeze=all,optim.lr=1e-05", "--latex", "--paired-boot", "10"]) == 0
    text = (sweep / "tables.tex").read_text()
    assert text.count(r"\begin{table}") == 1 and r"\toprule" in text and r"\bottomrule" in text
    # one group per (freeze, lr): each has one seed -> no sd, no test: rebuild grouped by freeze only
    for f in sweep.glob("*/results.json"):
        res = json.loads(f.read_text())
        res["overrides"] = [o for o in res["overrides"] if not o.startswith("optim.lr")]
        f.write_text(json.dumps(res))
        (f.parent / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in res["overrides"]))
    rp.build_report(sweep, reference="freeze=all", n_boot=200, paired_boot=10, latex=True)
    text = (sweep / "tables.tex").read_text()
    p = st.ttest_ind(ACC["none"], ACC["all"], equal_var=False).pvalue  # one comparison: Holm = p
    stars = "***" if p < 0.001 else "**" if p < 0.01 else "*"
    row = next(line for line in text.splitlines() if line.startswith(r"\texttt{freeze=none}"))
    assert row.startswith(rf"\texttt{{freeze=none}} & 3 & {np.mean(ACC['none']):.3f} $\pm$ "
                          rf"{np.std(ACC['none'], ddof=1):.3f}$^{{{stars}}}$ & [")
    assert r"\texttt{freeze=all} (ref.) & 3 & 0.710 $\pm$ 0.010 & [" in text
    assert "majority class &  & 0.600 &  \\\\" in text
    assert tex("a_b %&$#{}~^\\") == r"a\_b \%\&\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert (mark(0.049), mark(0.0099), mark(0.0009), mark(0.05), mark(float("nan"))) == (
        "$^{*}$", "$^{**}$", "$^{***}$", "", "")
    rp.build_report(sweep, reference="freeze=all", n_boot=200, paired_boot=10)  # without --latex
    assert not (sweep / "tables.tex").exists()


def test_latex_table_of_a_data_sweep(tmp_path):
    sweep = _data_sweep(tmp_path / "sweep")
    report = rp.build_report(sweep, n_boot=200, paired_boot=10, latex=True)
    text = (sweep / "tables.tex").read_text()
    header = next(line for line in text.splitlines() if line.startswith("Arm &"))
    assert header == r"Arm & \texttt{bbc\_news} & \texttt{drug\_reviews} & \texttt{tweets\_sentiment} & avg.\ rank \\"
    row = next(line for line in text.splitlines() if line.startswith(r"\texttt{freeze=last2}"))
    cells = row.rstrip("\\ ").split(" & ")
    means = [report.metrics["test/acc"].summary[f"data={d},freeze=last2"].all.mean
             for d in ("bbc_news", "drug_reviews", "tweets_sentiment")]
    assert [float(c.split(" ")[0]) for c in cells[1:4]] == pytest.approx(means, abs=5e-4)
    assert cells[4] == "2.00"  # its average rank


def test_checklist_from_the_study_files(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    for f in sweep.glob("*/results.json"):  # group by freeze; lr varies within a group
        res = json.loads(f.read_text())
        res["overrides"] = [o for o in res["overrides"] if not o.startswith("optim.lr")]
        if "freeze=all" in res["overrides"]:  # a probe fitted by logistic regression: no block has an lr
            res["plan"] = {"runner": "logreg", "fit": "logreg", "blocks": [{"block": "encoder", "lr": None},
                                                                            {"block": "classifier", "lr": None}]}
            res["extra"] = {"features": {"C": 0.1}}
        f.write_text(json.dumps(res))
        (f.parent / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in res["overrides"]))
    rp.build_report(sweep, n_boot=200, paired_boot=10)
    md = (sweep / "checklist.md").read_text()
    # optim.lr, batch size, freeze.name, the probe's C: the probe's config carried an lr it never used
    assert "| `freeze=all` | not used (logreg) | not used (logreg) | all | 0.1 |" in md
    assert "| `freeze=none` | 1e-05, 3e-05, 0.0001 | 16 | none | not recorded |" in md
    assert "Optuna search (TPESampler, 20 trials, maximize" in md and "`optim.lr`: tag(log, interval(1e-5, 3e-4))" in md
    # the command line replaced the config's search space for a key: the checklist says what ran
    (sweep / "multirun.yaml").write_text(MULTIRUN + "  overrides:\n    task:\n    - optim.lr=tag(log, interval(1e-4, 1e-3))\n"
                                         "    - freeze=none,all\n")
    rp.build_report(sweep, n_boot=200, paired_boot=10)
    md = (sweep / "checklist.md").read_text()
    assert ("`optim.lr`: tag(log, interval(1e-4, 1e-3)) (the command line's; the config's sweeper params said "
            "tag(log, interval(1e-5, 3e-4)))") in md
    assert re.search(r"\| `freeze=none` \| 3 \| 0 \| 0, 1, 2 \|", md)
    for idx, acc in enumerate(ACC["all"] + ACC["none"]):
        assert f"| `{idx}` |" in md and f"{acc - 0.05:.4f} / {acc:.4f}" in md
    cpu, wall = sum(20.0 + i for i in range(6)), sum(10.0 + i for i in range(6))
    assert f"| **all** | 6 | {cpu:.1f} |  | {wall:.1f} | {2 * wall:.1f} |" in md  # GPU s = wall x 2 GPUs
    assert "Test CPU 9000 (16 cores); GPUs: H200, H200" in md
    assert "| torch | 2.13.0 |" in md and "`abc123`" in md


# ----------------------------------------------------------------------------- at a glance
GLANCE = {  # arm: test/acc, test/f1_macro, test_ood/acc, test_ood/f1_macro, test/ece, test/ece_ts per seed; params
    "adapters": ([0.90, 0.92, 0.91], [0.85, 0.86, 0.87], [0.70, 0.72, 0.74], [0.69, 0.70, 0.71],
                 [0.05, 0.04, 0.06], [0.03, 0.03, 0.03], 58_442),
    "probe": ([0.80, 0.80, 0.80], [0.70, 0.70, 0.70], [0.60, 0.60, 0.60], [0.55, 0.55, 0.55],
              [0.02, 0.02, 0.02], [0.04, 0.04, 0.04], 385),
    "last2": ([0.95, 0.93, 0.94], [0.88, 0.90, 0.89], [0.66, 0.64, 0.65], [0.60, 0.62, 0.64],
              [0.06, 0.06, 0.09], [0.02, 0.03, 0.04], 3_700_000),
}


def _glance_sweep(root):
    idx = 0
    for arm, (acc, f1m, oacc, of1m, ece, ece_ts, params) in GLANCE.items():
        for seed in range(3):
            d = root / str(idx)
            (d / ".hydra").mkdir(parents=True)
            ov = [f"arm={arm}", f"seed={seed}"]
            (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in ov))
            res = {"schema_version": 1, "status": "ok", "task": "seq_cls", "seed": seed, "overrides": ov,
                   "metrics": {"test/acc": acc[seed], "test/f1_macro": f1m[seed], "test_ood/acc": oacc[seed],
                               "test_ood/f1_macro": of1m[seed], "test/ece": ece[seed], "test/ece_ts": ece_ts[seed]},
                   "majority_rate": 0.6, "params": {"trainable": params}, "plan": {"trainable_bytes": 4 * params,
                                                                                  "trainable_params": params},
                   "extra": {"majority_label": "neg", "test_label_counts": {"neg": 60, "pos": 40},
                             "test_ood_label_counts": {"neg": 30, "pos": 70}},
                   "duration_s": 10.0, "cost": {"cpu_s": 100.0 * (idx + 1), "threads": 2}}
            (d / "results.json").write_text(json.dumps(res))
            idx += 1
    return root


def test_at_a_glance_puts_each_arms_scores_calibration_and_cost_side_by_side(tmp_path):
    sweep = _glance_sweep(tmp_path / "sweep")
    rp.build_report(sweep, metrics=["test/acc", "test/f1_macro"], n_boot=200, paired_boot=10)
    md = (sweep / "report.md").read_text()
    section = md.split("## At a glance", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert lines[0] == ("| group | runs | ID acc | OOD acc | ID macro F1 | OOD macro F1 | ECE → TS | trained params "
                        "| bytes/task | CPU s/run |")

    def cell(xs, bold=False):
        sd = np.std(xs, ddof=1)
        text = f"{np.mean(xs):.3f}" + (f" ± {sd:.3f}" if f"{sd:.3f}" != "0.000" else "")
        return f"**{text}**" if bold else text

    # best first by in-domain accuracy: last2 (0.94), adapters (0.91), probe (0.80); bold = best mean of a column
    body = {ln.split(" | ")[0][2:]: ln for ln in lines[1:]}
    assert list(body) == ["`arm=last2`", "`arm=adapters`", "`arm=probe`", "majority class"]
    a, p, l2 = GLANCE["adapters"], GLANCE["probe"], GLANCE["last2"]
    assert body["`arm=last2`"] == (
        f"| `arm=last2` | 3 | {cell(l2[0], True)} | {cell(l2[2])} | {cell(l2[1], True)} | {cell(l2[3])} | "
        f"{np.mean(l2[4]):.3f} → {np.mean(l2[5]):.3f} | 3,700,000 | 14.1 MB | {np.mean([700, 800, 900]):,.0f} |")
    assert body["`arm=adapters`"] == (
        f"| `arm=adapters` | 3 | {cell(a[0])} | {cell(a[2], True)} | {cell(a[1])} | {cell(a[3], True)} | "
        f"0.050 → 0.030 | 58,442 | 228.3 kB | 200 |")
    assert body["`arm=probe`"] == "| `arm=probe` | 3 | 0.800 | 0.600 | 0.700 | 0.550 | 0.020 → 0.040 | 385 | 1.5 kB | 500 |"
    # majority class (label counts by hand): ID 60 % "neg": acc 0.6, macro F1 (2*0.6/1.6 + 0)/2 = 0.375;
    # OOD 30 % "neg": acc 0.3, macro F1 (2*0.3/1.3 + 0)/2 = 0.231
    assert body["majority class"] == "| majority class |  | 0.600 | 0.300 | 0.375 | 0.231 |  |  |  |  |"
    # the same rows in tables.tex, first; and no such table where there is neither OOD nor calibration
    rp.build_report(sweep, metrics=["test/acc", "test/f1_macro"], n_boot=200, paired_boot=10, latex=True)
    tex_text = (sweep / "tables.tex").read_text()
    assert tex_text.index("tab:tunelab-glance") < tex_text.index("tab:tunelab-test-acc")
    assert (r"\texttt{arm=probe} & 3 & 0.800 & 0.600 & 0.700 & 0.550 & 0.020 $\to$ 0.040 & 385 & 1.5 kB & 500 \\"
            in tex_text)
    assert rf"\texttt{{arm=last2}} & 3 & \textbf{{0.940 $\pm$ 0.010}} & 0.650 $\pm$ 0.010 &" in tex_text
    assert r"majority class &  & 0.600 & 0.300 & 0.375 & 0.231 &  &  &  &  \\" in tex_text
    for f in sweep.glob("*/results.json"):
        res = json.loads(f.read_text())
        res["metrics"] = {k: v for k, v in res["metrics"].items() if k in ("test/acc", "test/f1_macro")}
        f.write_text(json.dumps(res))
    rp.build_report(sweep, metrics=["test/acc", "test/f1_macro"], n_boot=200, paired_boot=10, latex=True)
    assert "## At a glance" not in (sweep / "report.md").read_text()
    assert "tab:tunelab-glance" not in (sweep / "tables.tex").read_text()
