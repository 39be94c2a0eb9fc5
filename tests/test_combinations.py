"""Every combination of method x task x freeze x strategy x adapt x augment: run as its words
say, or refused at start-up with one sentence — never run while ignoring a key.

The expected verdict comes from the table below, written from the README's Combinations
section (not from tunelab.validation), so a rule dropped or loosened in the code fails here.
Hydra composes one config per way the *method* can be chosen (``method=``, ``curriculum=``,
``adapt=``: they interact through Hydra's overrides) and fully validates it; the option nodes of
the other groups are then swapped into plain copies for the combination table; nothing loads. A pairwise-covering subset of the accepted combinations
then trains for one step on the tiny model, and its record must show each option took effect.
"""

from __future__ import annotations

import itertools
from typing import Optional

import pytest
from omegaconf import open_dict

from conftest import load_results

METHODS = [None, "finetune", "sparse", "features", "zeroshot", "curriculum", "adapt"]
CURRICULA = [None, "related"]
ADAPTS = [None, "none", "tapt", "dapt"]
TASKS = ["seq_cls", "token_cls", "mlm"]
FREEZES = ["none", "all", "last2", "last_n", "first_n", "embeddings", "gradual", "bitfit", "lpft"]
STRATEGIES = [None, "sequential", "joint", "replay", "adapters", "lora"]
AUGMENTS = [None, "none", "eda"]
PEFTS = [None, "lora", "adapters", "ia3"]          # None: the default peft=none

# The README table: method -> tasks it implements.
SUPPORTED_TASKS = {"finetune": {"seq_cls", "token_cls", "mlm"}, "adapt": {"seq_cls", "token_cls"},
                   "sparse": {"seq_cls"}, "features": {"seq_cls"}, "zeroshot": {"seq_cls"},
                   "curriculum": {"seq_cls"}}
TRAINS_ENCODER = {"finetune", "curriculum", "adapt"}     # freeze applies
AUGMENTED = {"finetune", "adapt"}                          # augment applies (seq_cls only)


def resolved_method(c: dict) -> str:
    """Which method Hydra selects: method= on the command line wins; else adapt=tapt|dapt
    (later in the defaults list) over curriculum=; else finetune."""
    if c["method"]:
        return c["method"]
    if c["adapt"] in ("tapt", "dapt"):
        return "adapt"
    return "curriculum" if c["curriculum"] else "finetune"


def expected_refusals(c: dict) -> list[str]:
    """Every rule the combination breaks, as a word its refusal must contain (empty: it runs)."""
    m, task = resolved_method(c), c["task"]
    adapting = c["adapt"] in ("tapt", "dapt")
    strategy = c["strategy"] or ("sequential" if c["curriculum"] else None)
    rules = [
        (task not in SUPPORTED_TASKS[m], f"task={task}"),
        (task == "token_cls" and c.get("data") != "wnut_ner", "task=token_cls"),  # tweets have no tags
        (c["curriculum"] and adapting, "cannot be combined"),
        (c["curriculum"] and m != "curriculum", "curriculum="),
        (strategy and m != "curriculum", f"strategy={strategy}"),
        (adapting and m != "adapt", f"adapt={c['adapt']}"),
        (m == "adapt" and not adapting, "method=adapt"),
        (m == "curriculum" and not c["curriculum"], "method=curriculum"),
        (c["freeze"] != "none" and m not in TRAINS_ENCODER, "freeze="),
        (c["freeze"] != "none" and strategy in ("adapters", "lora"), f"strategy={strategy}"),
        (c["augment"] == "eda" and (m not in AUGMENTED or task != "seq_cls"), "augment=eda"),
        # freeze=all fits a probe (logistic regression by default) on features of the texts as
        # loaded: augmentation would be ignored, and a curriculum trains heads with optim.*
        (c["freeze"] == "all" and c["augment"] == "eda" and task == "seq_cls", "augment=eda"),
        (c["freeze"] == "all" and m == "curriculum", "freeze.probe.fit=paper"),
        # LP-FT fits a classifier head before fine-tuning: one task with a head
        (c["freeze"] == "lpft" and (task == "mlm" or m == "curriculum"), "freeze=lpft"),
        # PEFT modules are trained with one task's head inside a fine-tuned encoder, alone
        (c.get("peft") and (m not in ("finetune", "adapt") or task == "mlm" or c["freeze"] != "none"),
         f"peft={c.get('peft')}"),
    ]
    return [word for broken, word in rules if broken]


class _Node(dict):
    """A plain, fast stand-in for a config node (attribute and .get access)."""

    __getattr__ = dict.__getitem__


def _plain(node):
    from omegaconf import OmegaConf

    if node is None:
        return None
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return _Node({k: _plain(v) if isinstance(v, dict) else v for k, v in data.items()})


def _bases(compose) -> dict:
    """One composed config per (method, curriculum, adapt) as given on the command line."""
    out = {}
    for m, cur, ad in itertools.product(METHODS, CURRICULA, ADAPTS):
        ov = [f"method={m}"] * bool(m) + [f"curriculum={cur}"] * bool(cur) + [f"adapt={ad}"] * bool(ad)
        out[m, cur, ad] = compose(ov)
    return out


def _nodes(compose) -> dict:
    """The node of each other group option, composed on its own."""
    nodes = {("task", t): compose([f"task={t}"]).task for t in TASKS}
    nodes.update({("freeze", f): compose([f"freeze={f}"]).freeze for f in FREEZES})
    nodes.update({("strategy", s): compose([f"strategy={s}"]).strategy for s in STRATEGIES if s})
    nodes.update({("augment", a): compose([f"augment={a}"]).augment for a in AUGMENTS if a})
    nodes.update({("peft", p): compose([f"peft={p or 'none'}"]).peft for p in PEFTS})
    return nodes


@pytest.mark.long  # kills and resumes, or a whole sweep in subprocesses: make test-long (CI)
def test_every_combination_is_run_or_refused_at_start_up(compose):
    """All 108,864 command-line combinations. The full validation (schema walk included) runs on
    each composed base config; the combination table on every combination, on plain copies."""
    from tunelab.errors import ConfigError
    from tunelab.validation import check_combination, validate

    bases, nodes = _bases(compose), _nodes(compose)
    plain_nodes = {k: _plain(v) for k, v in nodes.items()}
    counts = {"accepted": 0, "refused": 0}
    for (m, cur, ad), base in bases.items():
        c0 = dict(method=m, curriculum=cur, adapt=ad, task="seq_cls", freeze="none", strategy=None, augment=None)
        if expected_refusals(c0):
            with pytest.raises(ConfigError):
                validate(base)
        else:
            validate(base)
        plain = _plain(base)
        for task, freeze, strategy, augment, peft in itertools.product(TASKS, FREEZES, STRATEGIES, AUGMENTS, PEFTS):
            c = dict(c0, task=task, freeze=freeze, strategy=strategy, augment=augment, peft=peft)
            cfg = _Node(plain, task=plain_nodes["task", task], freeze=plain_nodes["freeze", freeze],
                        strategy=plain_nodes["strategy", strategy] if strategy else plain["strategy"],
                        augment=plain_nodes["augment", augment] if augment else None,
                        peft=plain_nodes["peft", peft])
            want = expected_refusals(c)
            if not want:
                check_combination(cfg)  # must not raise
                counts["accepted"] += 1
                continue
            with pytest.raises(ConfigError) as info:
                check_combination(cfg)
            msg = str(info.value)
            assert any(w in msg for w in want), (c, msg)
            assert "\n" not in msg and msg.endswith("."), msg  # one sentence
            counts["refused"] += 1
    n = (len(METHODS) * len(CURRICULA) * len(ADAPTS) * len(TASKS) * len(FREEZES) * len(STRATEGIES) * len(AUGMENTS)
         * len(PEFTS))
    assert counts["accepted"] + counts["refused"] == n
    assert counts["accepted"] > 100 and counts["refused"] > 1000, counts


# --------------------------------------------------------------------------- one step each

# The option values a run can differ in. The method is given explicitly (how Hydra selects it is
# covered above); a curriculum comes with its stages, token classification with tagged data.
# What trains is one axis: a freeze policy, or a PEFT method (which needs freeze=none anyway), so
# the pairwise cover stays small.
TRAINS = {"none": ("none", None), "all": ("all", None), "last2": ("last2", None), "gradual": ("gradual", None),
          "bitfit": ("bitfit", None), "lpft": ("lpft", None), "lora": ("none", "lora"),
          "adapters": ("none", "adapters"), "ia3": ("none", "ia3")}
RUN_AXES = {"method": list(SUPPORTED_TASKS), "task": TASKS, "trains": list(TRAINS),
            "strategy": STRATEGIES, "adapt": [None, "tapt", "dapt"], "augment": [None, "eda"]}


def _accepted() -> list[dict]:
    out = []
    for values in itertools.product(*RUN_AXES.values()):
        c = dict(zip(RUN_AXES, values), curriculum=None)
        c["freeze"], c["peft"] = TRAINS[c["trains"]]
        if c["method"] == "curriculum":
            c["curriculum"] = "related"
        if c["task"] == "token_cls":
            c["data"] = "wnut_ner"
        if not expected_refusals(c):
            out.append(c)
    return out


def _pairwise_cover(cands: list[dict]) -> list[dict]:
    def pairs(c):
        items = sorted((k, c[k]) for k in RUN_AXES)
        return {(a, b) for a, b in itertools.combinations(items, 2)}

    todo = set().union(*(pairs(c) for c in cands))
    chosen = []
    while todo:
        best = max(cands, key=lambda c: (len(pairs(c) & todo), -cands.index(c)))
        chosen.append(best)
        todo -= pairs(best)
    return chosen


COVER = _pairwise_cover(_accepted())


def _overrides(c: dict) -> list[str]:
    ov = [f"{k}={v}" for k, v in c.items() if v is not None and k in ("method", "curriculum", "adapt",
                                                                       "strategy", "augment", "data", "peft")]
    ov += [f"task={c['task']}", f"freeze={c['freeze']}"]
    if c["augment"] == "eda":
        ov += ["augment.num_aug=1"]
    if resolved_method(c) == "adapt":
        ov += ["adapt.head_warmup_steps=1", "adapt.max_steps=1", "adapt.max_texts=32"]
    if c["curriculum"]:
        ov += ["curriculum.max_train_samples=16", "curriculum.max_eval_samples=8", "curriculum.baselines=false",
               "curriculum.stages=[{data: tweets_sentiment, domain: airline}, {data: tweets_sentiment, domain: apple}]"]
    return ov


def test_cover_is_pairwise_and_small():
    cands = _accepted()
    assert 5 <= len(COVER) <= 55  # one tiny training step each: ~3 s
    methods = {resolved_method(c) for c in COVER}
    assert methods == set(SUPPORTED_TASKS)
    assert len(cands) > len(COVER)


@pytest.mark.parametrize("c", COVER, ids=lambda c: ",".join(f"{k}={c[k]}" for k in RUN_AXES if c[k]))
def test_one_training_step_honours_every_option(compose, tmp_path, c):
    from tunelab.run import RunContext, run

    fast = ["model=tiny", "logger=none", "data.max_train_samples=16", "data.max_eval_samples=8",
            "optim.batch_size=8", "optim.max_steps=1", "trainer.enable_progress_bar=false",
            "trainer.enable_checkpointing=false"]
    cfg = compose(fast + _overrides(c))
    rec = run(cfg, RunContext(out_dir=tmp_path / "job"))
    assert rec["status"] == "ok"
    saved = load_results(tmp_path / "job" / "results.json")
    m = resolved_method(c)
    assert saved["method"] == m and saved["task"] == c["task"]
    conf = saved["config"]
    assert conf["freeze"]["name"] == c["freeze"]
    # Each option shows its effect in the record.
    if c["freeze"] not in ("none", "lpft") and m in ("finetune", "adapt"):
        assert saved["plan"]["trainable_params"] < saved["plan"]["total_params"], c
    if c.get("peft"):  # only the PEFT modules and the head train
        assert saved["plan"]["peft"]["method"] == c["peft"] and conf["peft"]["name"] == c["peft"]
        assert saved["plan"]["trainable_params"] < saved["plan"]["total_params"] / 10, c
    if c["freeze"] == "lpft":  # two plans: the head alone, then everything
        probe, ft = saved["plan"]["phases"]
        assert probe["trainable_params"] < ft["trainable_params"] == ft["total_params"], c
    if m == "curriculum":
        assert conf["strategy"]["name"] == (c["strategy"] or "sequential")
        assert "test/ACC" in saved["metrics"] and len(saved["extra"]["curriculum"]["stages"]) == 2
    else:
        assert conf["strategy"] is None and conf["curriculum"] is None
    if m == "adapt":
        assert conf["adapt"]["name"] == c["adapt"] and "adapt/ppl_after" in saved["metrics"]
    if c["augment"] == "eda":
        assert saved["n_examples"]["train"] > 16  # the augmented copies were trained on
    if m in ("sparse", "features", "zeroshot"):
        assert conf["method"]["name"] == m and "test/acc" in saved["metrics"]
