"""The report's cost section: per-arm wall time, CPU seconds and samples/s, hand-computed."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tunelab.report import build_report


def _job(sweep: Path, i: int, freeze: str, seed: int, result: dict) -> None:
    d = sweep / str(i)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(f"- freeze={freeze}\n- seed={seed}\n")
    (d / "results.json").write_text(json.dumps(result))


def _result(freeze, seed, *, status="ok", duration, cpu=None, epochs=3, train=400):
    return {"schema_version": 1, "status": status, "error": None, "task": "seq_cls", "method": "finetune",
            "freeze": freeze, "seed": seed, "metrics": {"test/acc": 0.8 + seed / 100},
            "majority_rate": 0.5, "pred_class_counts": {"a": 5, "b": 5}, "label_names": ["a", "b"],
            "n_examples": {"train": train, "val": 10, "test": 10}, "duration_s": duration,
            "overrides": [f"freeze={freeze}", f"seed={seed}"],
            "cost": {"cpu_s": cpu, "threads": 2} if cpu is not None else None,
            "extra": {"epochs_run": epochs} if epochs else {}}


def test_cost_per_arm(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, "none", 0, _result("none", 0, duration=100.0, cpu=190.0))
    _job(sweep, 1, "none", 1, _result("none", 1, duration=300.0, cpu=410.0))
    _job(sweep, 2, "none", 2, _result("none", 2, status="failed", duration=5.0, cpu=1.0))  # not counted
    _job(sweep, 3, "last2", 0, {**_result("last2", 0, duration=40.0, cpu=70.0), "params": {"trainable": 3000},
                                "plan": {"trainable_bytes": 12 * 2**10}})
    _job(sweep, 4, "last2", 1, _result("last2", 1, duration=60.0))                      # old file: no cost
    rep = build_report(sweep)
    none, last2 = rep.cost["freeze=none"], rep.cost["freeze=last2"]
    assert none.n == 2 and none.wall_s_mean == 200.0 and none.wall_s_total == 400.0
    assert none.cpu_s_mean == 300.0
    # 400 examples x 3 epochs over 100 s and 300 s: 12 and 4 samples/s
    assert math.isclose(none.samples_per_s_mean, (12.0 + 4.0) / 2)
    assert last2.n == 2 and last2.cpu_s_mean == 70.0 and last2.wall_s_mean == 50.0
    md = (sweep / "report.md").read_text()
    assert "## Cost per arm" in md and "| `freeze=none` | 2 | 200.0 | 400.0 | 300.0 | 8.0 | n/a | n/a | 2 |" in md
    assert json.loads((sweep / "report.json").read_text())["cost"]["freeze=last2"]["cpu_s_mean"] == 70.0
    # 1,200 samples in 40 s and 60 s: 30 and 20 samples/s; trained parameters and bytes per task
    # from the one run that records them (the plan's bytes).
    assert "| `freeze=last2` | 2 | 50.0 | 100.0 | 70.0 | 25.0 | 3,000 | 12.0 kB | 2 |" in md
    # checklist.md's compute table sums the same runs: the failed run and the missing CPU seconds
    # are left out of CPU and wall alike (190 + 410 + 70 CPU s; 100 + 300 + 40 + 60 wall s)
    compute = (sweep / "checklist.md").read_text()
    assert "| `freeze=none` | 2 | 600.0 | 300.0 | 400.0 | 0.0 |" in compute
    assert "| `freeze=last2` | 2 | 70.0 | 70.0 | 100.0 | 0.0 |" in compute
    assert "| **all** | 4 | 670.0 |  | 500.0 | 0.0 |" in compute


def test_a_resumed_run_is_priced_over_every_attempt(tmp_path):
    """cost.wall_s (every attempt of a run resumed after a kill) over duration_s (its last attempt)."""
    sweep = tmp_path / "sweep"
    _job(sweep, 0, "none", 0, _result("none", 0, duration=100.0, cpu=190.0))       # before wall_s was recorded
    resumed = _result("none", 1, duration=60.0, cpu=400.0)
    resumed["cost"].update(wall_s=300.0, wall_s_before_resume=240.0)
    _job(sweep, 1, "none", 1, resumed)
    none = build_report(sweep).cost["freeze=none"]
    assert none.wall_s_total == 400.0 and none.wall_s_mean == 200.0
    # 1,200 samples in 100 s and in 300 s (not in the last attempt's 60 s): 12 and 4 samples/s
    assert math.isclose(none.samples_per_s_mean, 8.0)
    compute = (sweep / "checklist.md").read_text()
    assert "| `freeze=none` | 2 | 590.0 | 295.0 | 400.0 | 0.0 |" in compute


def test_pareto_front_by_hand():
    """(score, price): b beats a on both; c is cheaper but worse than b; d is the best and dearest."""
    from tunelab.report.pareto import front

    pts = {"a": (0.80, 100.0), "b": (0.85, 50.0), "c": (0.70, 10.0), "d": (0.90, 1000.0),
           "e": (0.85, 60.0), "nan": (float("nan"), 1.0)}
    assert front(pts) == ["c", "b", "d"]          # cheapest first; a and e are dominated by b
    assert front({"x": (0.5, 1.0), "y": (0.5, 1.0)}) == ["x", "y"]  # ties dominate nothing


def test_trained_parameters_and_bytes_come_from_the_plan():
    from tunelab.report.cost import trained

    assert trained({"params": {"trainable": 10}, "plan": {"trainable_bytes": 40}}) == (10.0, 40.0)
    assert trained({"params": {"trainable": 10}}) == (10.0, 40.0)       # 4 bytes a parameter
    # gradual unfreezing: the plan is the start (the head, 770 fp32 parameters); the run ended with
    # 3,697,538 trained (two layers and the pooler thawed): a task keeps those, 14,790,152 bytes
    gradual = {"params": {"trainable": 3_697_538}, "plan": {"trainable_params": 770, "trainable_bytes": 3080}}
    assert trained(gradual) == (3_697_538.0, 4.0 * 3_697_538)
    p, b = trained({})
    assert p != p and b != b


def test_pareto_front_out_of_domain_by_hand(tmp_path):
    """Where runs scored an OOD split, the fronts are listed again for test_ood/acc: `none` is on
    the in-domain front (best, dearest) and off the out-of-domain one (`last2` beats it there for
    less), and the plot gets a second row of panels."""
    from matplotlib.image import imread

    sweep = tmp_path / "sweep"
    arms = {"all": (10, 10.0, 0.85, 0.60), "last2": (300, 50.0, 0.88, 0.80), "none": (1000, 100.0, 0.90, 0.70)}
    for i, (arm, (params, cpu, acc, ood)) in enumerate((a, v) for a, v in arms.items() for _ in range(2)):
        res = _result(arm, i % 2, duration=cpu, cpu=cpu)
        res.update(metrics={"test/acc": acc + (i % 2) / 1000, "test_ood/acc": ood}, params={"trainable": params})
        _job(sweep, i, arm, i % 2, res)
    build_report(sweep, metrics=["test/acc"])
    md = (sweep / "report.md").read_text()
    assert "- `test/acc` vs parameters trained per task: `freeze=all`, `freeze=last2`, `freeze=none`" in md
    assert ("- `test_ood/acc` vs parameters trained per task (out of domain): `freeze=all`, `freeze=last2`\n"
            in md)
    assert "- `test_ood/acc` vs CPU seconds per run (out of domain): `freeze=all`, `freeze=last2`\n" in md
    height, width = imread(sweep / "pareto_test_acc.png").shape[:2]
    assert height > 0.8 * width  # two rows of two panels (one row: about 0.4)


def test_pareto_labels_do_not_overlap():
    """Seven arms within a factor 1.3 of CPU seconds and 0.01 of accuracy (the fine-tuning arms of
    the fair fight): every label inside the axes, no two labels' boxes overlapping, none over a
    marker; the shared `arm=` is left off the labels."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from tunelab.report.pareto import place_labels, short_labels

    rng = np.random.default_rng(0)
    groups = [f"arm=bert_{n}" for n in ("none", "lpft", "last2", "gradual", "adapters", "lora", "layer_decay")]
    names = short_labels(groups)
    assert names["arm=bert_lora"] == "bert_lora"
    assert short_labels(["arm=a,seed=1", "arm=b,seed=1"])["arm=a,seed=1"] == "arm=a,seed=1"
    xs, ys = rng.uniform(500, 650, 7), rng.uniform(0.89, 0.90, 7)
    fig = Figure(figsize=(5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.errorbar(xs, ys, yerr=0.002, fmt="o")
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.12)
    fig.canvas.draw()
    ax.set_xlim(ax.get_xlim()), ax.set_ylim(ax.get_ylim())
    anns = place_labels(ax, [(x, y, 0.002, names[g]) for x, y, g in zip(xs, ys, groups)])
    renderer = fig.canvas.get_renderer()
    for a in anns:
        a.update_positions(renderer)
    boxes = [Text.get_window_extent(a, renderer) for a in anns]  # the text alone, not its leader line
    assert sorted(a.get_text() for a in anns) == sorted(g.split("=")[1] for g in groups)
    frame = ax.get_window_extent(renderer)
    for i, box in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:])
        for mx, my in ax.transData.transform(np.c_[xs, ys]):
            assert not box.contains(mx, my)
