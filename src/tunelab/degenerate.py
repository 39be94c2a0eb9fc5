"""Is a finished run a real classifier? One rule, read by the run itself and by the report.

A run that predicts one class for every test example, or whose accuracy does not beat always
guessing the majority class, has learned nothing usable, however good its accuracy looks on
skewed data (70% on the packaged tweets). The report flags such runs and summarises each group
with and without them; the run itself says so in one warning line with the likely cause, so a
user who never builds a report still sees it. A tagger whose test entity F1 is 0 (it tags
everything ``O``) is degenerate in the same sense.
"""

from __future__ import annotations

import math
from typing import Any, Optional


def _num(x) -> Optional[float]:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def reasons(result: dict, task: Optional[str] = None) -> list[str]:
    """Why the run in ``result`` (a results.json record) is not a real classifier; [] if it is."""
    out: list[str] = []
    metrics = result.get("metrics") or {}
    counts = result.get("pred_class_counts")
    if isinstance(counts, dict) and counts:
        used = [k for k, v in counts.items() if (_num(v) or 0) > 0]
        if len(used) == 1:
            out.append(f"predicts only class '{used[0]}'")
    acc, rate = _num(metrics.get("test/acc")), _num(result.get("majority_rate"))
    if acc is not None and rate is not None and acc <= rate + 1e-12:
        out.append(f"test/acc {acc:.4f} <= majority rate {rate:.4f}")
    out += _curriculum_reasons((result.get("extra") or {}).get("curriculum"))
    if (task or result.get("task")) == "token_cls" and _num(metrics.get("test/f1")) == 0.0:
        out.append("test entity F1 is 0 (every token tagged O)")
    return out


def _curriculum_reasons(cur: Optional[dict]) -> list[str]:
    """A curriculum stage that, right after its own training, does not beat its majority class."""
    if not isinstance(cur, dict) or not cur.get("R") or not cur.get("stages"):
        return []
    out = []
    R = cur["R"]
    for i, stage in enumerate(cur["stages"]):
        row = R[i] if len(R) == len(cur["stages"]) else R[-1]  # joint training: one row, after all
        acc, rate = (_num(row[i]) if i < len(row) else None), _num(stage.get("majority_rate"))
        if acc is not None and rate is not None and acc <= rate + 1e-12:
            out.append(f"stage {stage.get('name')}: test acc {acc:.4f} after training it <= its majority rate {rate:.4f}")
    return out


def likely_cause(cfg: Any, plan: Optional[dict] = None) -> str:
    """The usual reason a run of this config ends degenerate, and the knob to turn; ``plan`` is
    the run's recorded plan (results.json ``plan``: what trained, and at which optim.* keys)."""
    plan = plan or {}
    if plan.get("mode") == "all" and plan.get("fit") in ("paper", "head"):
        o = plan.get("optim") or {}
        lr = o.get("lr", cfg.optim.lr)
        # Logistic regression fits one vector per text: no probe for a tagger (tunelab.models.plan).
        if str((cfg.get("task") or {}).get("name", "seq_cls")) != "seq_cls":
            knob = ("freeze.probe.fit=head (its own lr and epochs)" if plan["fit"] == "paper"
                    else "a larger freeze.probe.lr or more freeze.probe.epochs")
            return (f"a frozen encoder's head trained at lr {lr:g} for {o.get('epochs', cfg.optim.epochs)} epochs "
                    f"stays at the class prior: use {knob}")
        return (f"a frozen encoder's head trained at lr {lr:g} stays at the class prior: use "
                f"freeze.probe.fit=logreg (the default) or a larger freeze.probe.lr")
    o = cfg.get("optim")
    if o is None:
        return "check the training data's labels and size"
    # A curriculum subsamples every stage with its own key; data.* is not what its stages read.
    cur = cfg.get("curriculum")
    if cur is not None:
        # Stages train at strategy.lr/epochs when the strategy sets them (adapters, lora), not optim.*.
        st = cfg.get("strategy") or {}
        lr = f"strategy.lr={st.get('lr'):g}" if st.get("lr") is not None else f"optim.lr={o.lr:g}"
        ep = f"strategy.epochs={st.get('epochs')}" if st.get("epochs") is not None else f"optim.epochs={o.epochs}"
        head = f", strategy.head_lr={st.get('head_lr'):g}" if st.get("head_lr") is not None else ""
        return (f"too few steps or an unsuitable lr for this data ({lr}, {ep}{head}, "
                f"curriculum.max_train_samples={cur.get('max_train_samples')}; a stage's own lr/epochs win): "
                f"train longer, on more data, or tune the lr")
    return (f"too few steps or an unsuitable lr for this data (optim.lr={o.lr:g}, optim.epochs={o.epochs}, "
            f"data.max_train_samples={cfg.data.get('max_train_samples')}): train longer, on more data, or tune optim.lr")


def warn_if_degenerate(record: dict, cfg: Any, log) -> list[str]:
    """Log one warning line when the finished run is degenerate; returns the reasons."""
    why = reasons(record, cfg.task.name if "task" in cfg else None)
    if why:
        log.warning(f"[tunelab] warning: this run learned nothing usable ({'; '.join(why)}); likely cause: "
                    f"{likely_cause(cfg, record.get('plan'))}.")
    return why
