"""The report's text formatters: numbers, p-values, intervals and markdown tables.

One module below every renderer (``render``, ``render_study``, ``cost`` and the study sections),
so each formats numbers the same way and none imports another for it.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def fmt(x, digits: int = 4) -> str:
    """A number for the tables; NaN/None -> n/a, infinities as "inf"/"-inf"."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.{digits}f}"


def fmt_p(p) -> str:
    """p-values: 4 decimals, scientific below 1e-4; "< 1e-300" for a p that underflowed to 0.

    No test of the report gives p = 0 as a result (a statistic without a null distribution, such as
    Welch on two deterministic arms, gives NaN: "n/a"), but a tail below the smallest double does:
    McNemar's χ² or the sign-flip test over thousands of discordant examples (2000 to 0 is 2^-1999).
    Printed as 0.0000 it read as "impossible under the null"; every value that rounds to 0 is below
    1e-300 (the smallest normal double is 2.2e-308)."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p == 0:
        return "< 1e-300"
    return f"{p:.2e}" if 0 < p < 1e-4 else f"{p:.4f}"


def fmt_pm(mean, sd) -> str:
    """``mean ± sd``; the mean alone when sd is unknown (one run), n/a without a mean."""
    if fmt(mean) == "n/a":
        return "n/a"
    return f"{fmt(mean)} ± {fmt(sd)}" if fmt(sd) != "n/a" else fmt(mean)


def fmt_count(x: float) -> str:
    """A count with thousands separators (parameters, CPU seconds); n/a when unknown."""
    return "n/a" if x != x else f"{x:,.0f}"


def fmt_size(x: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1 (105.0 kB, 14.1 MB)."""
    if x != x:
        return "n/a"
    for unit, k in (("GB", 2**30), ("MB", 2**20), ("kB", 2**10)):
        if x >= k:
            return f"{x / k:.1f} {unit}"
    return f"{x:.0f} B"


def fmt_ci(lo, hi) -> str:
    return "n/a" if fmt(lo) == "n/a" else f"[{fmt(lo)}, {fmt(hi)}]"


def md_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A GitHub markdown table ('|' inside cells escaped)."""
    def cell(x):
        return str(x).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
