"""The README's fair-fight Pareto figure is drawn from its table (docs/figures/fair_fight_pareto.py,
since the study's files are gone): the script's numbers must be the table's, and the fronts it
draws must be the ones a hand check of the table finds (the README's bullet names them)."""

from __future__ import annotations

import importlib.util
import re

from conftest import ROOT

# The script's arm -> the start of its README table row.
ROWS = {"full FT": "| full fine-tuning", "layer-wise decay": "| layer-wise lr decay", "LoRA": "| LoRA",
        "gradual": "| gradual unfreezing, in stages", "last2": "| `last2`", "adapters": "| adapters",
        "LP-FT": "| LP-FT", "BitFit": "| BitFit", "probe": "| frozen probe", "TF-IDF": "| TF-IDF"}


def _script():
    spec = importlib.util.spec_from_file_location("fair_fight_pareto", ROOT / "docs" / "figures" / "fair_fight_pareto.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _number(cell: str) -> tuple[float, float]:
    """'**0.910 ± 0.006**' -> (0.910, 0.006); '0.883' -> (0.883, nan)."""
    m = re.match(r"\*{0,2}([0-9.]+)(?: ± ([0-9.]+))?", cell.strip())
    return float(m.group(1)), float(m.group(2)) if m.group(2) else float("nan")


def _params(cell: str) -> float:
    cell = cell.strip()
    return float(cell[:-2]) * 1e6 if cell.endswith(" M") else float(cell.replace(",", ""))


def test_the_pareto_script_holds_the_readme_tables_numbers():
    table = _script().TABLE
    lines = (ROOT / "README.md").read_text().splitlines()
    first = lines.index(next(line for line in lines if line.startswith("| arm (chosen values) | ID acc | OOD acc")))
    end = first + next(i for i, line in enumerate(lines[first:]) if not line.startswith("|"))
    lines = lines[first + 2:end]  # the fair fight's table, without its header
    assert set(table) == set(ROWS)
    for arm, start in ROWS.items():
        row = [line for line in lines if line.startswith(start)]
        assert len(row) == 1, (arm, row)
        cells = row[0].split("|")[2:]  # ID acc, OOD acc, ID F1, OOD F1, ECE, params, bytes, CPU s, jobs
        (idm, ids), (oodm, oods) = _number(cells[0]), _number(cells[1])
        want_id, want_ood, params, cpu = table[arm]
        assert (idm, oodm) == (want_id[0], want_ood[0]), arm
        assert ids == want_id[1] or (ids != ids and want_id[1] != want_id[1]), arm
        assert oods == want_ood[1] or (oods != oods and want_ood[1] != want_ood[1]), arm
        assert _params(cells[5]) == params, arm
        assert int(re.match(r"\s*([0-9,]+)", cells[7]).group(1).replace(",", "")) == cpu, arm


def test_the_fronts_are_the_hand_checked_ones():
    from tunelab.report.pareto import fronts

    mod = _script()
    report = mod.table_report(mod.TABLE)
    assert fronts(report, "test/acc") == {
        "params": ["probe", "BitFit", "adapters", "LoRA", "full FT"],
        "cpu_s": ["TF-IDF", "probe", "last2", "LoRA", "layer-wise decay", "full FT"]}
    assert fronts(report, "test_ood/acc") == {
        "params": ["probe", "BitFit", "adapters", "full FT"],
        "cpu_s": ["TF-IDF", "probe", "last2", "BitFit", "LoRA", "adapters", "layer-wise decay", "full FT"]}
