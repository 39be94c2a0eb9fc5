"""Draw the README's fair-fight Pareto figure from its table (docs/figures/fair_fight_pareto.png).

The fair fight's job files were lost with the machines they ran on (README, *At real size, in
pieces*): its rows come from three records of the same command on the same machine. So this
script reads the table's means, sds, trained parameters and CPU seconds per run from README.md
and feeds them to the report's own plot (``tunelab.report.pareto.plot_pareto``), through the few
attributes it reads. Run it from the repository root after editing the table:
``python docs/figures/fair_fight_pareto.py``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

from tunelab.report.pareto import plot_pareto

README = Path(__file__).resolve().parents[2] / "README.md"
HEADER = "| arm (chosen values) | ID acc | OOD acc"
# The figure's arm label -> the start of its row in the table.
ROWS = {"full FT": "| full fine-tuning", "layer-wise decay": "| layer-wise lr decay", "LoRA": "| LoRA",
        "gradual": "| gradual unfreezing, in stages", "last2": "| `last2`", "adapters": "| adapters",
        "LP-FT": "| LP-FT", "BitFit": "| BitFit", "probe": "| frozen probe", "TF-IDF": "| TF-IDF"}


def _score(cell: str) -> tuple[float, float]:
    """'**0.910 ± 0.006**' -> (0.910, 0.006); '0.883' -> (0.883, nan)."""
    m = re.match(r"\*{0,2}([0-9.]+)(?: ± ([0-9.]+))?", cell.strip())
    return float(m.group(1)), float(m.group(2)) if m.group(2) else math.nan


def _params(cell: str) -> float:
    """'22.7 M' -> 22.7e6; '74,498' -> 74498."""
    cell = cell.strip()
    return float(cell[:-2]) * 1e6 if cell.endswith(" M") else float(cell.replace(",", ""))


def read_table(text: str) -> dict:
    """arm -> ((ID acc mean, sd), (OOD acc mean, sd), trained parameters, CPU s per run), from the
    README's fair-fight table; every arm of ROWS must have exactly one row."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(HEADER))
    end = first + next(i for i, line in enumerate(lines[first:]) if not line.startswith("|"))
    rows = lines[first + 2:end]  # the table without its header and rule
    out = {}
    for arm, start in ROWS.items():
        found = [line for line in rows if line.startswith(start)]
        if len(found) != 1:
            raise SystemExit(f"README.md's fair-fight table has {len(found)} rows starting {start!r}, not 1")
        cells = found[0].split("|")[2:]  # ID acc, OOD acc, ID F1, OOD F1, ECE, params, bytes, CPU s, jobs
        cpu = int(re.match(r"\s*([0-9,]+)", cells[7]).group(1).replace(",", ""))
        out[arm] = (_score(cells[0]), _score(cells[1]), _params(cells[5]), cpu)
    return out


def table_report(table: dict) -> SimpleNamespace:
    """What plot_pareto reads of a report: per group the metric's summary (mean, sd over all
    runs), the OOD section's means and sds, and the cost per run."""
    summary = {g: SimpleNamespace(all=SimpleNamespace(mean=i[0], sd=i[1])) for g, (i, _, _, _) in table.items()}
    ood = {g: SimpleNamespace(mean={"acc_ood": o[0]}, sd={"acc_ood": o[1]}) for g, (_, o, _, _) in table.items()}
    cost = {g: SimpleNamespace(trainable_params=p, cpu_s_mean=c) for g, (_, _, p, c) in table.items()}
    return SimpleNamespace(metrics={"test/acc": SimpleNamespace(summary=summary)},
                           ood=SimpleNamespace(arms=ood), cost=cost)


if __name__ == "__main__":
    out = Path(__file__).with_name("fair_fight_pareto.png")
    plot_pareto(out, "test/acc", table_report(read_table(README.read_text())))
    print(f"wrote {out}")
