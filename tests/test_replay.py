"""tunelab replay on synthetic results.json files with known answers: hand-computed CPU
fractions, agreement, A/A false decisions; bad input is one line and exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tunelab.cli import main


def _study(root, arms, n=10, seed=0):
    """results.json files of a fixed study: arm -> (mean, sd, CPU s per run); sd 0: the same run
    every seed (a convex fit)."""
    rng = np.random.default_rng(seed)
    num = 0
    for arm, (mean, sd, cpu) in arms.items():
        for s in range(n):
            v = mean + sd * rng.standard_normal()
            d = root / str(num)
            d.mkdir(parents=True)
            (d / "results.json").write_text(json.dumps(
                {"status": "ok", "overrides": ["logger=none", f"arm={arm}", f"seed={s}"], "seed": s,
                 "metrics": {"test/acc": v, "test/loss": 1.0 - v if sd else 0.3}, "cost": {"cpu_s": cpu},
                 "duration_s": cpu}))
            num += 1
    return root


def _replay(capsys, *args):
    rc = main(["replay", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_huge_separation_stops_at_the_first_look_and_agrees(tmp_path, capsys):
    # 0.9 vs 0.5 with sd 0.001: decided at the first look of 3 seeds, so the CPU fraction is
    # (3 x 100 + 3 x 20) / (10 x 100 + 10 x 20) = 0.3 -- except in the ~1 % of arm-replays that
    # draw one recorded run three times: tied values are no variance estimate, a 4th seed is run
    d = _study(tmp_path / "s", {"tuned": (0.9, 0.001, 100.0), "probe": (0.5, 0.001, 20.0)})
    rc, out, err = _replay(capsys, d, "--json", "--replays", "200")
    assert rc == 0, err
    res = json.loads(out)
    seeds = {a: x["mean_seeds_run"] for a, x in res["arms"].items()}
    assert all(3 <= s <= 3.05 for s in seeds.values()), seeds
    assert res["cpu_fraction"] == pytest.approx((seeds["arm=tuned"] * 100 + seeds["arm=probe"] * 20) / 1200)
    assert res["cpu_fraction"] == pytest.approx(0.3, abs=0.005) and res["agreement"] == 1.0
    assert res["contrasts"][0]["full_data"] == "less"  # arm=probe vs arm=tuned (sorted groups)
    # A/A: each arm against a resample of itself; the rule's level is 0.05
    assert set(res["aa"]) == {"arm=tuned", "arm=probe"} and 0 <= res["aa_false_rate"] <= 0.1


def test_constant_arms_are_exact_and_have_no_aa_replays(tmp_path, capsys):
    d = _study(tmp_path / "s", {"a": (0.85, 0.0, 10.0), "b": (0.84, 0.0, 10.0), "c": (0.85, 0.0, 10.0)})
    rc, out, err = _replay(capsys, d, "--json", "--replays", "50")
    res = json.loads(out)
    assert rc == 0 and res["aa_false_rate"] is None and res["agreement"] == 1.0
    assert res["cpu_fraction"] == pytest.approx(0.3)
    assert {c["contrast"]: c["full_data"] for c in res["contrasts"]} == {
        "arm=a vs arm=b": "greater", "arm=a vs arm=c": "equivalent", "arm=b vs arm=c": "less"}


def test_an_aa_study_decides_nothing_and_the_text_says_so(tmp_path, capsys):
    # two arms of the same distribution: the full data decide nothing, and the rule rarely does
    d = _study(tmp_path / "s", {"x": (0.8, 0.01, 50.0), "y": (0.8, 0.01, 50.0)}, seed=3)
    rc, out, _ = _replay(capsys, d, "--json", "--replays", "300", "--seed", "1")
    res = json.loads(out)
    assert res["contrasts"][0]["full_data"] == "undecided"
    assert res["agreement"] >= 0.9 and res["aa_false_rate"] <= 0.1
    rc, text, _ = _replay(capsys, d, "--replays", "20")
    assert rc == 0 and "CPU fraction vs the fixed design (10 seeds per arm)" in text and "A/A false-decision" in text


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    d = _study(tmp_path / "s", {"a": (0.9, 0.01, 1.0), "b": (0.8, 0.01, 1.0)}, n=3)
    rc, _, err = _replay(capsys, d, "--metric", "test/acc_typo")
    assert rc == 2 and "--metric test/acc_typo is not in any ok run" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _replay(capsys, tmp_path / "nope")
    assert rc == 2 and "does not exist" in err
    rc, _, err = _replay(capsys, d, "--contrasts", "reference", "--reference", "arm=zz")
    assert rc == 2 and "--reference=arm=zz is not an arm" in err
