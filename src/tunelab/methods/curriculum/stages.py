"""The stages of a curriculum: what each one trains on, and which head it uses.

A stage names a data config (``conf/data/<name>.yaml``, composed by Hydra through
:func:`tunelab.config.compose_option`, so the job's config search path applies) plus keys that
override it (``domain``...) and optional ``epochs``/``lr``/``head``/``name``. Every stage gets its
own train/val/test split. Stages with the same label names share a head; ``head:`` names one
explicitly; the per-task strategies (adapters, lora) give every stage its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from tunelab.errors import ConfigError, DataError, TunelabError

log = logging.getLogger("tunelab")

# Keys of a stage that are not data-config overrides.
STAGE_KEYS = {"data", "name", "epochs", "lr", "head", "overrides"}


@dataclass
class Stage:
    index: int
    name: str
    data: str
    data_cfg: Any
    epochs: int
    lr: float
    head_hint: Optional[str] = None
    splits: Any = None
    head: str = ""
    eval_dm: Any = None

    @property
    def where(self) -> str:
        return f"curriculum stage {self.index + 1} '{self.name}'"

    @property
    def labels(self) -> list[str]:
        return list(self.splits.label_names)

    @property
    def adapter(self) -> str:
        return f"task{self.index}"


def stage_specs(cfg: DictConfig) -> list[dict]:
    """``curriculum.stages`` as plain dicts (a bare name is ``{data: name}``), each with a ``data``."""
    cur = cfg.curriculum
    raw = cur.stages
    if raw is None or len(raw) == 0:
        raise ConfigError(
            f"curriculum={cur.name} has no stages: give curriculum.stages a list such as "
            f"[{{data: tweets_sentiment, domain: apple}}, {{data: drug_reviews}}], or use curriculum=related|unrelated.")
    specs = []
    for i, st in enumerate(raw):
        st = OmegaConf.to_container(st, resolve=True) if OmegaConf.is_config(st) else st
        if isinstance(st, str) and st.strip():
            st = {"data": st}
        if not isinstance(st, dict) or not st.get("data"):
            raise ConfigError(
                f"curriculum stage {i + 1} is empty ({st!r}): each stage needs a data config, e.g. "
                f"{{data: tweets_sentiment, domain: apple}} or {{data: drug_reviews, epochs: 2}}.")
        specs.append(dict(st))
    return specs


def data_config(spec: dict, cfg: DictConfig, where: str):
    """The stage's DataConfig: the composed ``data=<name>`` option <- curriculum sizes <- stage keys.

    Unknown names, unknown keys, wrong types, missing values and out-of-range values are a
    ConfigError naming the stage."""
    from tunelab.config import compose_option
    from tunelab.schemas.checks import check_node

    over = {k: v for k, v in spec.items() if k not in STAGE_KEYS}
    over.update(spec.get("overrides") or {})
    sizes = {k: cfg.curriculum[k] for k in ("max_train_samples", "max_eval_samples")
             if cfg.curriculum[k] is not None and k not in over}
    try:
        base = compose_option("data", str(spec["data"]))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        d = OmegaConf.merge(base, sizes, over)
        OmegaConf.to_container(d, resolve=True, throw_on_missing=True)
    except Exception as e:  # omegaconf: unknown key, wrong type, missing value
        raise ConfigError(f"{where}: data config '{spec['data']}' with {over}: {e}") from None
    try:
        check_node(d, "data")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return d


def load_stages(cfg: DictConfig) -> list[Stage]:
    """Every stage with its data config and train/val/test split (sequence classification)."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    stages, seen = [], set()
    for i, spec in enumerate(stage_specs(cfg)):
        name = str(spec.get("name") or (f"{spec['data']}:{spec['domain']}" if spec.get("domain") else spec["data"]))
        if name in seen:
            name = f"{name}#{i + 1}"
        seen.add(name)
        where = f"curriculum stage {i + 1} '{name}'"
        dcfg = data_config(spec, cfg, where)
        epochs = int(spec.get("epochs") or cfg.strategy.get("epochs") or cfg.optim.epochs)
        lr = float(spec.get("lr") or cfg.strategy.lr or cfg.optim.lr)
        if epochs < 1 or lr <= 0:
            raise ConfigError(f"{where}: epochs={epochs} must be >= 1 and lr={lr} > 0.")
        try:
            raw = load_raw(dcfg, "seq_cls")
            splits = make_splits(raw, dcfg, "seq_cls")
        except TunelabError as e:
            raise type(e)(f"{where}: {e}") from None
        if len(splits.train) == 0 or len(splits.test) == 0:
            raise DataError(f"{where}: the stage is empty ({splits.sizes()}).")
        stages.append(Stage(i, name, str(spec["data"]), dcfg, epochs, lr, spec.get("head"), splits))
        log.info(f"[tunelab] {where}: " + ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items())
                 + f"; labels {splits.label_names}")
    return stages


def assign_heads(stages: list[Stage], per_task: bool) -> dict[str, list[str]]:
    """Head key per stage: one per task (adapters/lora), else shared by label names or by ``head:``.

    Stages that share a head must have the same label names in the same order, else ConfigError."""
    heads: dict[str, list[str]] = {}
    owner: dict[str, Stage] = {}
    for s in stages:
        if per_task:
            key = s.adapter
        elif s.head_hint:
            key = str(s.head_hint)
        else:
            key = "/".join(sorted(s.labels))
        if key in heads and heads[key] != s.labels:
            o = owner[key]
            raise ConfigError(
                f"{s.where}: its labels {s.labels} clash with those of stage {o.index + 1} '{o.name}' "
                f"{heads[key]}, which shares its head '{key}': a shared head needs the same label "
                f"names in the same order (set data.labels in the stage), or give the stage its own head (head: <name>).")
        if key not in heads:
            heads[key], owner[key] = list(s.labels), s
        s.head = key
    return heads


def stage_record(s: Stage) -> dict:
    """What results.json says about one stage."""
    from tunelab.data.splits import majority_rate

    d = s.data_cfg
    return {"name": s.name, "data": s.data, "domain": d.domain, "labels": s.labels, "head": s.head,
            "epochs": s.epochs, "lr": s.lr, "n_examples": s.splits.sizes(), "majority_rate": majority_rate(s.splits),
            "dropped_rows": s.splits.dropped}
