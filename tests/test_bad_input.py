"""Bad input: one clear error naming the file/row/key and the fix; nothing written as ok."""

from __future__ import annotations

import json

import pytest

from conftest import FAST, load_results


def _csv(tmp_path, text, name="d.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


CASES = {
    "missing file": (lambda t: "nope.csv", [], r"data.path: file not found: 'nope.csv'"),
    "missing column": (lambda t: _csv(t, "txt,label\nhello,pos\nbye,neg\n"), [],
                       r"no column 'text' \(asked for by data.text_column\).*Columns in the file: \['txt', 'label'\]"),
    "unknown label": (lambda t: _csv(t, "text,label\n" + "good day,pos\nbad day,neg\n" * 10 + "meh,maybe\n"),
                      ["data.labels=[neg,pos]"], r"label 'maybe', not in data.labels=\['neg', 'pos'\]"),
    "empty text": (lambda t: _csv(t, "text,label\n" + "good,pos\n" * 5 + ",neg\n"), [],
                   r"row 7: empty text in column 'text'"),
    "wrong encoding": (lambda t: _csv(t, "text,label\n" + "café,pos\nbad,neg\n" * 5, encoding="latin-1"), [],
                       r"not valid utf-8 .*data.encoding=latin-1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_csv_inputs(cli, tmp_path, case):
    make, extra, pattern = CASES[case]
    path = make(tmp_path)
    r = cli(*FAST, "data=csv", f"data.path={path}", *extra)
    assert r.returncode == 2, r.stderr[-2000:]
    import re

    assert re.search(pattern, r.stderr), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert load_results(tmp_path / "run" / "results.json")["status"] == "failed"


def test_ner_token_tag_mismatch_names_the_line(cli, tmp_path):
    p = tmp_path / "ner.txt"
    p.write_text("Paris\tB-loc\nis\tO\n\nBerlin\nrocks\tO\n")
    r = cli(*FAST, "task=token_cls", "data=conll", f"data.path={p}")
    assert r.returncode == 2
    assert f"{p}: line 4: expected 'token<TAB>tag'" in r.stderr


def test_jsonl_bad_line(cli, tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": \n')
    r = cli(*FAST, "data=jsonl", f"data.path={p}")
    assert r.returncode == 2 and "line 2: not valid JSON" in r.stderr


def test_unknown_group_option(cli):
    r = cli(*FAST, "freeze=last3")
    assert r.returncode != 0
    assert "last3" in r.stderr and "Available options" in r.stderr


def test_too_many_layers(cli, tmp_path):
    r = cli(*FAST, "freeze=last_n", "freeze.n=9")
    assert r.returncode == 2 and "freeze.n=9 but the model has only 2 encoder layers" in r.stderr


def test_dropped_rows_are_counted_not_silent(cli, tmp_path):
    p = _csv(tmp_path, "text,label\n" + "good day,pos\nbad day,neg\nok day,neutral\n" * 12)
    r = cli(*FAST, "data=csv", f"data.path={p}", "data.labels=[neg,pos]", "data.drop_labels=[neutral]")
    assert r.returncode == 0, r.stderr[-2000:]
    res = load_results(tmp_path / "run" / "results.json")
    assert res["extra"]["dropped_rows"] == {"train: label in data.drop_labels ['neutral']": 12}
    assert "dropped 12 rows" in r.stdout + r.stderr
