"""`tunelab status` on a tuning study: each arm's phase, trials and the jobs it may still run.

The reference is the study itself: the sweeper is killed part-way (a fake launcher: each job writes
its results.json at once), the progress is read from the dir, then the same study is resumed to
its end and the jobs it actually launched are counted per arm."""

from __future__ import annotations

import json

import pytest

from test_tune_sweeper import FakeLauncher, _sweep
from tunelab.status import sweep_rows
from tunelab.tune_progress import arm_progress, progress_lines


def _cut_and_finish(tmp_path, die_after, **kw):
    sweep = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, **kw).run(FakeLauncher(sweep, die_after=die_after), say=lambda s: None)
    state = json.loads((sweep / "tune.json").read_text())
    rows = sweep_rows(sweep, use_sacct=False)
    arms = {a["arm"]: a for a in arm_progress(state, {r.name: r for r in rows})}
    rest = FakeLauncher(sweep)
    analysis = _sweep(tmp_path, **kw).run(rest, say=lambda s: None)
    ran = {arm: sum(1 for j in rest.launched if f"arm={j[0]}" == arm) for arm in arms}
    return state, rows, arms, ran, analysis


@pytest.mark.parametrize("die_after", [3, 9, 14, 17])
def test_jobs_left_is_what_the_resumed_study_runs_without_pruning(tmp_path, die_after):
    # no pruning: every drawn trial runs both seeds, so the bound is exact but for the tests of an
    # arm whose best trial is its default (trial 0 is tested once, not twice) and for trials drawn
    # after the kill that repeat an earlier one's values (arm b's choice of 3: they run nothing)
    state, rows, arms, ran, analysis = _cut_and_finish(tmp_path, die_after, prune_z=None)
    final = json.loads((tmp_path / "sweep" / "tune.json").read_text())["facts"]
    for label, a in arms.items():
        planned = label in state["facts"]["tests"]
        spare = 2 if not planned and analysis["arms"][label]["best"] == 0 else 0  # 2 test seeds
        known = {int(t["trial"]) for t in state["facts"]["trials"].get(label, [])}
        spare += 2 * sum(t["repeat_of"] is not None for t in final["trials"][label] if int(t["trial"]) not in known)
        assert a["left"] == ran[label] + spare, (label, a)
        assert a["phase"] == ("tested" if a["left"] == 0 else "testing" if planned else
                              "tuning" if known else "waiting")
    # the counts of the table, by hand from the state file
    killed = sum(r.state not in ("ok", "skipped", "failed") for r in rows)
    assert killed == 1 and sum(a["jobs"] for a in arms.values()) == die_after
    assert sum(a["left"] for a in arms.values()) >= sum(ran.values())


@pytest.mark.parametrize("die_after", [5, 12])
def test_jobs_left_bounds_a_pruning_study(tmp_path, die_after):
    state, _, arms, ran, _ = _cut_and_finish(tmp_path, die_after)
    for label, a in arms.items():
        trials = state["analysis"]["arms"][label]["trials"]
        assert a["left"] >= ran[label]
        assert a["pruned"] == sum(t["status"] == "pruned" for t in trials)
        assert a["finished"] <= a["budget"] == 5


def test_lines_name_every_arm_and_nothing_for_other_sweeps(tmp_path):
    sweep = tmp_path / "sweep"
    _sweep(tmp_path).run(FakeLauncher(sweep), say=lambda s: None)
    lines = progress_lines(sweep, sweep_rows(sweep, use_sacct=False))
    assert lines[1].endswith("tested 2 of 2 arms; at most 0 jobs left")
    assert [ln.split()[0] for ln in lines[3:]] == ["arm=a", "arm=b"] and all(" tested " in ln for ln in lines[3:])
    (sweep / "tune.json").unlink()
    assert progress_lines(sweep, sweep_rows(sweep, use_sacct=False)) == []


def test_time_left_is_said_only_for_arms_with_a_measured_job(tmp_path):
    # arm a tuned part-way with timed jobs, arm b not started: a's time, and b named as not timed
    sweep = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, arm_order="in_turn").run(FakeLauncher(sweep, die_after=3), say=lambda s: None)
    for f in sweep.glob("*/results.json"):
        rec = json.loads(f.read_text())
        if rec["status"] == "ok":
            f.write_text(json.dumps({**rec, "cost": {"cpu_s": 1.0, "wall_s": 60.0}}))
    rows = sweep_rows(sweep, use_sacct=False)
    arms = {a["arm"]: a for a in arm_progress(json.loads((sweep / "tune.json").read_text()), {r.name: r for r in rows})}
    a = arms["arm=a"]
    assert a["jobs"] == 3 and a["per_job_s"] == 60.0 and a["left_s"] == 60.0 * a["left"]
    summary = progress_lines(sweep, rows)[1]
    h, m = divmod(int(a["left_s"]) // 60, 60)
    assert f"at most {h}:{m:02d}:00 at each arm's mean time per job so far plus 1 arm(s) with jobs left not " \
           f"timed yet (arm=b)" in summary
