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
        f.write_text(json.dumps(res))
        (f.parent / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in res["overrides"]))
    rp.build_report(sweep, n_boot=200, paired_boot=10)
    md = (sweep / "checklist.md").read_text()
    assert "Optuna search (TPESampler, 20 trials, maximize" in md and "`optim.lr`: tag(log, interval(1e-5, 3e-4))" in md
    assert re.search(r"\| `freeze=none` \| 3 \| 0 \| 0, 1, 2 \|", md)
    assert "| `freeze=all` | 1e-05, 3e-05, 0.0001 | 16 | all |" in md  # optim.lr, batch size, freeze.name
    for idx, acc in enumerate(ACC["all"] + ACC["none"]):
        assert f"| `{idx}` |" in md and f"{acc - 0.05:.4f} / {acc:.4f}" in md
    cpu, wall = sum(20.0 + i for i in range(6)), sum(10.0 + i for i in range(6))
    assert f"| **all** | 6 | {cpu:.1f} |  | {wall:.1f} | {2 * wall:.1f} |" in md  # GPU s = wall x 2 GPUs
    assert "Test CPU 9000 (16 cores); GPUs: H200, H200" in md
    assert "| torch | 2.13.0 |" in md and "`abc123`" in md
