"""Property-based bad input (hypothesis): generated CSV, JSONL and CoNLL files and config values.

The property (issue 23): every input either stops with one sentence (a ``TunelabError``: exit 2,
no traceback) or loads and gives the same result as its clean equivalent. Each case writes a
clean file from generated rows, then one variant of it: a *harmless* variant (CRLF, a byte-order
mark, an extra column, quoting, blank lines, another spelling of the same number, ...) must give
exactly the clean file's splits; a *malformed* one (an empty cell, a duplicate column, the wrong
delimiter, invalid UTF-8, a one-row typo label, a key twice, ...) must be refused in one
sentence. Anything else (another exception, or a malformed file that loads) fails.

Files go through ``load_raw`` + ``make_splits`` in-process (what a job runs, minus the model),
config values through ``validate``: hundreds of cases in seconds. That ``train.py`` turns such an
error into exit 2 and one line is tested once per kind elsewhere (tests/test_guards.py,
tests/test_bad_input_suite.py).
Hypothesis runs derandomized (the same cases every run, no example database) and each test
records its case count, which ``conftest.py`` prints at the end of the session.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from conftest import FAST
from tunelab.errors import TunelabError

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
ROWS = 150  # per class: a label on one row of 300 is < 0.5 % and < 5 rows, i.e. rare (data/labels.py)


@pytest.fixture(scope="module")
def cases():
    return {"n": 0}


@pytest.fixture(autouse=True)
def _report_cases(request, cases):
    start = cases["n"]
    yield
    request.node.user_properties.append(("hypothesis_cases", cases["n"] - start))


class Short:
    """A generated case or a config as hypothesis reports a failure: its kind, not 300 rows."""

    def __init__(self, value, label):
        self.value, self.label = value, label

    def __repr__(self):
        return self.label


def _data_cfg(overrides):
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from tunelab.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module("tunelab.conf", version_base="1.3"):
        cfg = compose("config", overrides=["model=tiny", "data.path=x", *overrides])
    GlobalHydra.instance().clear()
    return Short(cfg, f"<config {' '.join(overrides)}>")


def _outcome(cfg, path, suffix):
    """("ok", every split's rows and the labels) or ("error", the one sentence)."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    data = cfg.data.copy()
    data.path = str(path)
    try:
        s = make_splits(load_raw(data, cfg.task.name), data, cfg.task.name)
    except TunelabError as e:
        msg = str(e)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        return "error", msg
    cols = ["tokens", "labels"] if cfg.task.name == "token_cls" else ["text", "label"]
    rows = {k: [tuple(map(str, r)) for r in getattr(s, k)[cols].itertuples(index=False)]
            for k in ("train", "val", "test")}
    return "ok", (s.label_names, rows)


def _check(cfg, tmp_path, cases, case, expects: dict, suffix: str):
    cfg = cfg.value
    what, clean, variant = case.value
    expect = expects[what]
    cases["n"] += 1
    (tmp_path / f"clean{suffix}").write_bytes(clean)
    (tmp_path / f"variant{suffix}").write_bytes(variant)
    ref = _outcome(cfg, tmp_path / f"clean{suffix}", suffix)
    assert ref[0] == "ok", f"the clean file was refused: {ref[1]}"
    got = _outcome(cfg, tmp_path / f"variant{suffix}", suffix)
    if expect == "same":
        assert got == ref, f"{what}: {got[1] if got[0] == 'error' else 'loaded, but other splits than the clean file'}"
    else:
        assert got[0] == "error", f"{what}: a malformed file loaded without a word"


# ------------------------------------------------------------------ generated rows

# Texts: any printable characters (quotes, commas, semicolons, tabs, newlines, U+2028 ...), at
# least one visible one; mixed into fixed filler rows so that the classes keep ROWS rows each.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc"), whitelist_characters="\t\n"),
               min_size=1, max_size=24).filter(lambda t: t.strip() and t == t.strip())
LABELS = st.sampled_from([("neg", "pos"), ("0", "1"), ("negative", "positive"), ("-1", "1")])


@st.composite
def table(draw):
    labels = draw(LABELS)
    special = draw(st.lists(TEXT, max_size=6))
    rows = [(f"filler review {i} {'good' if i % 2 else 'bad'}", labels[i % 2]) for i in range(2 * ROWS)]
    for j, text in enumerate(special):
        rows[7 * j + 3] = (text, rows[7 * j + 3][1])
    return labels, rows


def _csv(rows, header=("text", "label"), *, sep=",", eol="\n", quoting=csv.QUOTE_MINIMAL) -> str:
    f = io.StringIO()
    w = csv.writer(f, delimiter=sep, lineterminator=eol, quoting=quoting)
    w.writerow(header)
    w.writerows(rows)
    return f.getvalue()


def _numeric_respelling(labels, rows, draw):
    one = labels[1]
    spelling = draw(st.sampled_from([f"{one}.0", f"{one}.00", f"+{one}".replace("+-", "-"), f"{one}e0"]))
    i = draw(st.integers(0, len(rows) // 2 - 1)) * 2 + 1
    return [(t, spelling if k == i else lab) for k, (t, lab) in enumerate(rows)]


CSV_VARIANTS = {
    # harmless: the same splits as the clean file
    "crlf": "same", "bom": "same", "quote_all": "same", "extra_column": "same", "columns_swapped": "same",
    "no_final_newline": "same", "number_respelled": "same",
    # malformed: one sentence
    "empty_text": "error", "blank_text": "error", "empty_label": "error", "no_label_column": "error",
    "duplicate_column": "error", "semicolon_separated": "error", "tab_separated": "error", "short_row": "error",
    "long_row": "error", "invalid_utf8": "error", "typo_label": "error", "header_only": "error",
    "empty_file": "error", "unclosed_quote_at_end": "error",
}


@st.composite
def csv_case(draw):
    labels, rows = draw(table())
    kind = draw(st.sampled_from(sorted(CSV_VARIANTS)))
    if kind == "number_respelled" and not labels[1].lstrip("-").isdigit():
        kind = "crlf"
    i = draw(st.integers(0, len(rows) - 1))
    clean = _csv(rows)
    edit = lambda value: [(value if k == i else t, lab) for k, (t, lab) in enumerate(rows)]  # noqa: E731
    text = {
        "crlf": lambda: _csv(rows, eol="\r\n"),
        "bom": lambda: "\ufeff" + clean,
        "quote_all": lambda: _csv(rows, quoting=csv.QUOTE_ALL),
        "extra_column": lambda: _csv([(t, lab, k) for k, (t, lab) in enumerate(rows)], ("text", "label", "id")),
        "columns_swapped": lambda: _csv([(lab, t) for t, lab in rows], ("label", "text")),
        "no_final_newline": lambda: clean.rstrip("\n"),
        "number_respelled": lambda: _csv(_numeric_respelling(labels, rows, draw)),
        "empty_text": lambda: _csv(edit("")),
        "blank_text": lambda: _csv(edit("   ")),
        "empty_label": lambda: _csv([(t, "" if k == i else lab) for k, (t, lab) in enumerate(rows)]),
        "no_label_column": lambda: _csv([(t,) for t, _ in rows], ("text",)),
        "duplicate_column": lambda: _csv([(t, lab, lab) for t, lab in rows], ("text", "label", "label")),
        "semicolon_separated": lambda: _csv(rows, sep=";"),
        "tab_separated": lambda: _csv(rows, sep="\t"),
        "short_row": lambda: _csv([(t,) if k == i else (t, lab) for k, (t, lab) in enumerate(rows)]),
        "long_row": lambda: _csv([(t, lab, "x") if k == i else (t, lab) for k, (t, lab) in enumerate(rows)]),
        "typo_label": lambda: _csv([(t, lab + "x" if k == i else lab) for k, (t, lab) in enumerate(rows)]),
        "header_only": lambda: _csv([]),
        "empty_file": lambda: "",
        "unclosed_quote_at_end": lambda: clean + '"an unterminated text,' + labels[0] + "\n",
    }.get(kind)
    data = text().encode() if text else None
    if kind == "invalid_utf8":
        head, _, tail = clean.partition("\n")
        data = (head + "\n").encode() + b"caf\xe9 " + tail.encode()
    return Short((kind, clean.encode(), data), f"<{kind}: {data[:300]!r}...>")


@settings(max_examples=70, **SETTINGS)
@given(case=csv_case())
def test_generated_csv_files(csv_cfg, tmp_path, cases, case):
    _check(csv_cfg, tmp_path, cases, case, CSV_VARIANTS, ".csv")


@pytest.fixture(scope="module")
def csv_cfg():
    return _data_cfg(["data=csv"])


# ------------------------------------------------------------------ JSONL

JSONL_VARIANTS = {
    "blank_lines": "same", "crlf": "same", "extra_key": "same", "keys_reversed": "same", "ascii_escaped": "same",
    "bom": "same", "label_as_number": "same",
    "invalid_json": "error", "array_line": "error", "duplicate_key": "error", "no_text_key": "error",
    "null_label": "error", "text_is_a_list": "error", "empty_text": "error", "typo_label": "error",
    "no_records": "error",
}


@st.composite
def jsonl_case(draw):
    labels, rows = draw(table())
    kind = draw(st.sampled_from(sorted(JSONL_VARIANTS)))
    i = draw(st.integers(0, len(rows) - 1))

    def lines(recs, **kw):
        return "".join(json.dumps(r, ensure_ascii=kw.get("ascii", False)) + kw.get("eol", "\n") for r in recs)

    recs = [{"text": t, "label": lab} for t, lab in rows]
    clean = lines(recs)
    at = lambda new: [new if k == i else r for k, r in enumerate(recs)]  # noqa: E731
    number = lambda s: int(s) if s.lstrip("-").isdigit() else s  # noqa: E731
    text = {
        "blank_lines": lambda: clean.replace("\n", "\n\n  \n"),
        "crlf": lambda: lines(recs, eol="\r\n"),
        "extra_key": lambda: lines([dict(r, id=k) for k, r in enumerate(recs)]),
        "keys_reversed": lambda: lines([{"label": r["label"], "text": r["text"]} for r in recs]),
        "ascii_escaped": lambda: lines(recs, ascii=True),
        "bom": lambda: "\ufeff" + clean,
        "label_as_number": lambda: lines([dict(r, label=number(r["label"])) for r in recs]),
        "invalid_json": lambda: "\n".join(clean.split("\n")[:i] + ['{"text": "broken'] + clean.split("\n")[i:]),
        "array_line": lambda: lines(at([recs[i]["text"], recs[i]["label"]])),
        "duplicate_key": lambda: clean.replace(json.dumps(recs[i], ensure_ascii=False),
                                               json.dumps(recs[i], ensure_ascii=False)[:-1] + ', "label": "x"}', 1),
        "no_text_key": lambda: lines(at({"label": recs[i]["label"]})),
        "null_label": lambda: lines(at({"text": recs[i]["text"], "label": None})),
        "text_is_a_list": lambda: lines(at({"text": [recs[i]["text"]], "label": recs[i]["label"]})),
        "empty_text": lambda: lines(at({"text": "", "label": recs[i]["label"]})),
        "typo_label": lambda: lines(at({"text": recs[i]["text"], "label": recs[i]["label"] + "x"})),
        "no_records": lambda: "\n \n",
    }[kind]
    data = text().encode()
    return Short((kind, clean.encode(), data), f"<{kind}: {data[:300]!r}...>")


@pytest.fixture(scope="module")
def jsonl_cfg():
    return _data_cfg(["data=jsonl"])


@settings(max_examples=55, **SETTINGS)
@given(case=jsonl_case())
def test_generated_jsonl_files(jsonl_cfg, tmp_path, cases, case):
    _check(jsonl_cfg, tmp_path, cases, case, JSONL_VARIANTS, ".jsonl")


# ------------------------------------------------------------------ CoNLL

TOKEN = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=8).filter(
    lambda t: not any(c.isspace() for c in t) and not t.startswith("-DOCSTART-"))
TAGS = ["O", "B-per", "I-per", "B-loc", "I-loc"]
CONLL_VARIANTS = {
    "crlf": "same", "extra_blank_lines": "same", "docstart": "same", "space_separated": "same",
    "middle_column": "same", "bom": "same",
    "one_field_line": "error", "not_bio": "error", "typo_tag": "error", "no_sentences": "error",
}


@st.composite
def conll_case(draw):
    special = draw(st.lists(TOKEN, max_size=6))
    sents = []
    for i in range(250):
        toks = [f"w{i}", f"x{i % 7}", f"y{i % 3}"]
        tags = [TAGS[(i + k) % 5] if TAGS[(i + k) % 5] != "I-per" or k else "O" for k in range(3)]
        sents.append((toks, tags))
    for j, tok in enumerate(special):
        sents[5 * j + 1][0][1] = tok
    kind = draw(st.sampled_from(sorted(CONLL_VARIANTS)))
    i = draw(st.integers(0, len(sents) - 1))

    def render(ss, sep="\t", eol="\n", gap="\n", mid=False):
        return gap.join("".join(f"{t}{sep}{'NN' + sep if mid else ''}{g}{eol}" for t, g in zip(*s)) for s in ss)

    clean = render(sents)
    swap = lambda tag: [(t, [tag if k == 0 else g for k, g in enumerate(gs)]) if n == i else (t, gs)  # noqa: E731
                        for n, (t, gs) in enumerate(sents)]
    text = {
        "crlf": lambda: render(sents, eol="\r\n").replace("\n\n", "\n\r\n"),
        "extra_blank_lines": lambda: render(sents, gap="\n\n\n") + "\n\n",
        "docstart": lambda: "-DOCSTART- -X- O O\n\n" + clean,
        "space_separated": lambda: render(sents, sep=" "),
        "middle_column": lambda: render(sents, mid=True),
        "bom": lambda: "\ufeff" + clean,
        "one_field_line": lambda: clean.replace(f"{sents[i][0][0]}\t{sents[i][1][0]}\n", f"{sents[i][0][0]}\n", 1),
        "not_bio": lambda: render(swap("PER")),
        "typo_tag": lambda: render(swap("B-pre")),
        "no_sentences": lambda: "\n\n",
    }[kind]
    data = text().encode()
    return Short((kind, clean.encode(), data), f"<{kind}: {data[:300]!r}...>")


@pytest.fixture(scope="module")
def conll_cfg():
    return _data_cfg(["data=conll", "task=token_cls"])


@settings(max_examples=45, **SETTINGS)
@given(case=conll_case())
def test_generated_conll_files(conll_cfg, tmp_path, cases, case):
    _check(conll_cfg, tmp_path, cases, case, CONLL_VARIANTS, ".conll")


# ------------------------------------------------------------------ config values

FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32) | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 1e-9])
INTS = st.integers(-10, 10) | st.integers(-2**40, 2**40)
CONFIG_VALUES = {
    "data.val_size": FLOATS, "data.test_size": FLOATS, "optim.lr": FLOATS, "optim.weight_decay": FLOATS,
    "optim.warmup_ratio": FLOATS, "optim.layer_decay": FLOATS, "optim.grad_clip": FLOATS,
    "task.mlm_probability": FLOATS, "task.mask_replace_prob": FLOATS, "task.random_replace_prob": FLOATS,
    "model.dropout": st.none() | FLOATS, "optim.batch_size": INTS, "optim.eval_batch_size": INTS,
    "optim.epochs": INTS, "optim.max_steps": INTS, "optim.accumulate_grad_batches": INTS,
    "optim.early_stopping_patience": st.none() | INTS, "model.max_length": INTS,
    "data.max_train_samples": st.none() | INTS, "data.max_eval_samples": st.none() | INTS, "seed": INTS,
    "init_seed": st.none() | INTS, "order_seed": st.none() | INTS, "freeze.n": INTS, "resume.every_n_steps": INTS,
    "data.num_workers": INTS, "trainer.num_threads": INTS,
    "task.name": st.sampled_from(["seq_cls", "token_cls", "mlm", "ner", ""]),
    "data.source": st.sampled_from(["csv", "jsonl", "conll", "hf", "xml", ""]),
    "resume.mode": st.sampled_from(["auto", "never", "sometimes"]),
    "task.monitor_mode": st.sampled_from(["min", "max", "up"]),
    "freeze.unfreeze_every": st.sampled_from(["epoch", "steps", "hour"]),
}


@pytest.fixture(scope="module")
def base_cfg():
    return _data_cfg(FAST[1:])


@settings(max_examples=200, **SETTINGS)
@given(changes=st.lists(st.sampled_from(sorted(CONFIG_VALUES)).flatmap(
    lambda k: st.tuples(st.just(k), CONFIG_VALUES[k])), min_size=1, max_size=3))
def test_generated_config_values(base_cfg, cases, changes):
    """validate() accepts a value or refuses it in one sentence naming a key it was given."""
    from tunelab.errors import ConfigError
    from tunelab.validation import validate

    cases["n"] += 1
    cfg = base_cfg.value.copy()
    changes = list(dict(changes).items())  # a key drawn twice: the last value is the one set
    for key, value in changes:
        OmegaConf.update(cfg, key, value, merge=False)
    try:
        validate(cfg)
    except ConfigError as e:
        msg = str(e)
        assert msg and "\n" not in msg, msg
        # it names one of the keys set here (the error is about the input, not elsewhere)
        assert any(k in msg or k.split(".")[-1] in msg or f"={v}" in msg for k, v in changes), (changes, msg)
        return
    # accepted: then no value is outside what any sane run needs (an independent oracle)
    for key, value in changes:
        if isinstance(value, float) and not (key == "model.dropout" and value is None):
            assert math.isfinite(value), (key, value)
        if key in ("optim.lr",):
            assert value > 0, (key, value)
        if key in ("optim.batch_size", "optim.eval_batch_size", "model.max_length") and value is not None:
            assert value >= 1, (key, value)
        if key in ("data.val_size", "data.test_size"):
            assert 0 <= value < 1, (key, value)
