"""The README's fair-fight Pareto figure is drawn from its table (docs/figures/fair_fight_pareto.py,
since the study's files are gone): the script must read the table's numbers, and the fronts it
draws must be the ones a hand check of the table finds (the README's bullet names them)."""

from __future__ import annotations

import importlib.util
import math

from conftest import ROOT

NAN = math.nan
# Copied by hand from the README's table: arm -> (ID acc, sd), (OOD acc, sd), trained params, CPU s a run.
HAND = {
    "full FT": ((0.910, 0.006), (0.809, 0.025), 22.7e6, 741),
    "layer-wise decay": ((0.901, 0.005), (0.789, 0.029), 22.7e6, 680),
    "LoRA": ((0.900, 0.003), (0.783, 0.016), 74_498, 623),
    "gradual": ((0.900, 0.006), (0.721, 0.026), 22.7e6, 884),
    "last2": ((0.899, 0.004), (0.749, 0.016), 3.7e6, 269),
    "adapters": ((0.898, 0.006), (0.788, 0.027), 58_442, 634),
    "LP-FT": ((0.897, 0.005), (0.756, 0.018), 22.7e6, 754),
    "BitFit": ((0.892, 0.007), (0.757, 0.017), 26_882, 556),
    "probe": ((0.883, NAN), (0.600, NAN), 385, 18),
    "TF-IDF": ((0.849, NAN), (0.448, NAN), 13_569, 13),
}


def _script():
    spec = importlib.util.spec_from_file_location("fair_fight_pareto", ROOT / "docs" / "figures" / "fair_fight_pareto.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_pareto_script_reads_the_readme_tables_numbers():
    import numpy as np

    table = _script().read_table((ROOT / "README.md").read_text())
    assert set(table) == set(HAND)
    for arm, want in HAND.items():
        np.testing.assert_equal(table[arm], want, err_msg=arm)  # NaN (no sd shown) equals NaN


def test_the_fronts_are_the_hand_checked_ones():
    from tunelab.report.pareto import fronts

    report = _script().table_report(HAND)
    assert fronts(report, "test/acc") == {
        "params": ["probe", "BitFit", "adapters", "LoRA", "full FT"],
        "cpu_s": ["TF-IDF", "probe", "last2", "LoRA", "layer-wise decay", "full FT"]}
    assert fronts(report, "test_ood/acc") == {
        "params": ["probe", "BitFit", "adapters", "full FT"],
        "cpu_s": ["TF-IDF", "probe", "last2", "BitFit", "LoRA", "adapters", "layer-wise decay", "full FT"]}
