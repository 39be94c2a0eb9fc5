"""Draw the README's fair-fight Pareto figure from its table (docs/figures/fair_fight_pareto.png).

The fair fight's job files were lost with the machines they ran on (README, *At real size, in
pieces*): its rows come from three records of the same command on the same machine. So this
script feeds the table's means, sds, trained parameters and CPU seconds per run to the report's
own plot (``tunelab.report.pareto.plot_pareto``), through the few attributes it reads. Run it
from the repository root after editing the table: ``python docs/figures/fair_fight_pareto.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

from tunelab.report.pareto import plot_pareto

NAN = math.nan
# arm: (ID acc mean, sd), (OOD acc mean, sd), trained parameters, CPU s per run -- the README's table.
TABLE = {
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
    plot_pareto(out, "test/acc", table_report(TABLE))
    print(f"wrote {out}")
