"""report.md's out-of-domain section: in-domain vs out-of-domain per arm, and the paired OOD tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.report.formatting import fmt, fmt_pm, md_table
from tunelab.report.render_study import paired_table

if TYPE_CHECKING:
    from tunelab.report.model import Report

OOD_SCORES = ("test_ood/acc", "test_ood/f1", "test_ood/f1_macro")
COLUMNS = ("acc_id", "acc_ood", "acc_drop", "f1_macro_id", "f1_macro_ood", "f1_macro_drop")


def ood_section(report: Report) -> str:
    sec = report.ood
    if sec is None:
        return ""
    rows = [(f"`{g}`", a.n_runs, *(fmt_pm(a.mean.get(k), a.sd.get(k)) for k in COLUMNS)) for g, a in sec.arms.items()]
    base = {tuple(b.get(k) for k in COLUMNS if not k.endswith("drop")) for b in sec.baseline.values()}
    cells = (lambda b: (fmt(b.get("acc_id")), fmt(b.get("acc_ood")), "", fmt(b.get("f1_macro_id")),
                        fmt(b.get("f1_macro_ood")), ""))
    if len(base) == 1:
        rows.append(("majority-class baseline", "", *cells(next(iter(sec.baseline.values())))))
    else:
        rows += [(f"majority-class baseline (`{g}`)", "", *cells(b)) for g, b in sec.baseline.items()]
    out = ["## Out-of-domain tests", "",
           "Every run was also scored, with the weights of its in-domain test, on an out-of-domain split "
           "(`data.ood_domains`: topics held out of training, validation and the in-domain test; or "
           "`data.ood_test_path`: another file with the same labels). Per arm, mean ± sd over its ok runs of "
           "the in-domain (**ID**, `test/`) and out-of-domain (**OOD**, `test_ood/`) scores, and the **drop** "
           "ID − OOD taken per run (positive: the arm does worse away from its training domain).", "",
           md_table(["group", "runs", "ID acc", "OOD acc", "drop acc", "ID macro F1", "OOD macro F1",
                     "drop macro F1"], rows), ""]
    pooled = [r for r in sec.pairs if r.seeds.startswith("pooled")]
    if pooled:
        out += [f"Paired tests between arms on the same {sec.n_examples} out-of-domain examples (as in the "
                "example-level section: the sign-flip test with the example as the unit, counts as means per seed "
                "pair, Holm over the pooled rows; Δ = A − B of the "
                f"OOD scores with a {report.percent}% paired-bootstrap CI):", "",
                paired_table(pooled, holm=True, keys=OOD_SCORES), ""]
    out += [f"- {n}" for n in sec.notes] + ([""] if sec.notes else [])
    return "\n".join(out)
