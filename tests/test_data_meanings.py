"""Data whose meaning is wrong is refused or said (issue 23, tunelab.data.labels and splits):
number spellings, rare labels and tags, held-out files equal to the training file, splits too
small to measure, test texts seen in training; the packaged datasets still load as shipped."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from conftest import load_splits
from tunelab.errors import DataError


def _csv(tmp_path, rows, name="d.csv"):
    p = tmp_path / name
    p.write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return p


def test_the_packaged_datasets_load_at_their_shipped_defaults(compose):
    # (tweets and drug reviews list their labels; the end-to-end tests run them)
    assert load_splits(compose, "data=bbc_news").label_names == ["business", "entertainment", "politics", "sports",
                                                                  "tech"]
    ner = load_splits(compose, "data=wnut_ner", "task=token_cls")
    # the shipped tag list is the order the data gives (so ids and results are unchanged): O, then
    # by entity type, B before I; computed here from the file itself
    from tunelab.locate import resolve_local

    cfg = compose(["model=tiny", "data=wnut_ner", "task=token_cls"])
    lines = resolve_local(cfg.data.path).read_text(encoding="utf-8").splitlines()
    tags = {line.split("\t")[-1] for line in lines if line.strip() and not line.startswith("-DOCSTART-")}
    assert ner.label_names == ["O"] + sorted(tags - {"O"}, key=lambda t: (t[2:], t[0]))
    assert load_splits(compose, "data=wnut_ner", "task=token_cls", "data.tags=null").label_names == ner.label_names


def test_labels_spelled_as_one_number_are_one_class(compose, tmp_path):
    spellings = ["0", "0.0", "1", "1.0", "1", "0"] * 20  # 0: 40 + 20, 1: 40 + 20
    p = _csv(tmp_path, [(f"text {i}", lab) for i, lab in enumerate(spellings)])
    s = load_splits(compose, "data=csv", f"data.path={p}")
    assert s.label_names == ["0", "1"]
    by_number = Counter(float(x) for x in spellings)  # the reference: what each row's label means
    got = Counter(s.label_names[i] for df in (s.train, s.val, s.test) for i in df["label"])
    assert {float(k): v for k, v in got.items()} == by_number
    assert any("'0' '0.0' -> '0' (40 + 20 rows)" in n for n in s.notes), s.notes
    # data.labels names the spelling the class keeps
    assert load_splits(compose, "data=csv", f"data.path={p}", "data.labels=[0.0,1.0]").label_names == ["0.0", "1.0"]


def test_a_rare_tag_is_refused_unless_the_tags_are_listed(compose, tmp_path):
    sents = [f"w{i}\t{'B-per' if i % 2 else 'O'}\nx{i}\t{'I-per' if i % 2 else 'O'}\n" for i in range(300)]
    sents[7] = "w7\tB-prs\nx7\tI-per\n"  # a typo, in 1 of 300 sentences
    p = tmp_path / "d.conll"
    p.write_text("\n".join(sents))
    with pytest.raises(DataError, match=r"tag\(s\) 'B-prs' \(1 of 300 sentences\), in under .*"
                                        r"data.tags=\[O,B-...,I-...\]"):
        load_splits(compose, "data=conll", "task=token_cls", f"data.path={p}")
    with pytest.raises(DataError, match=r"\(train split\): sentence \d+ has tag 'B-prs', not in data.tags"):
        load_splits(compose, "data=conll", "task=token_cls", f"data.path={p}", "data.tags=[O,B-per,I-per]")
    listed = load_splits(compose, "data=conll", "task=token_cls", f"data.path={p}", "data.tags=[O,B-per,I-per,B-prs]")
    assert listed.label_names == ["O", "B-per", "I-per", "B-prs"]


def test_a_held_out_file_that_is_the_training_file_is_refused(compose, tmp_path):
    p = _csv(tmp_path, [(f"t {i}", "ab"[i % 2]) for i in range(40)])
    for key in ("test_path", "val_path"):
        with pytest.raises(DataError, match=rf"data.{key}=.*d.csv is the training file data.path itself"):
            load_splits(compose, "data=csv", f"data.path={p}", f"data.{key}={tmp_path}/./d.csv")


def test_splits_too_small_to_measure_are_refused(compose, tmp_path):
    p = _csv(tmp_path, [(f"t {i}", "ab"[i % 2]) for i in range(6)])  # 3 rows per class: a 1-example test
    with pytest.raises(DataError, match=r"the test split has fewer than 2 examples of class\(es\) .*raise "
                                        r"data.test_size \(now 0.1\)"):
        load_splits(compose, "data=csv", f"data.path={p}", "data.val_size=0")
    with pytest.raises(DataError, match=r"the validation split has fewer than 2 examples of class\(es\) 'a': 0, "
                                        r"'b': 1 \(1 in all\)"):
        load_splits(compose, "data=csv", f"data.path={p}")


def test_test_texts_seen_in_training_are_counted(compose, tmp_path):
    rows = [(f"t {i % 150}", "ab"[i % 2]) for i in range(400)]  # every text twice or more
    p = _csv(tmp_path, rows)
    s = load_splits(compose, "data=csv", f"data.path={p}")
    expected = sum(t in set(s.train["text"]) for t in s.test["text"])
    assert expected > 0
    note = next(n for n in s.notes if "also occur in the training split" in n)
    assert re.search(rf"{expected} of {len(s.test)} test texts", note), note


def test_out_of_domain_texts_seen_in_training_are_counted(compose, tmp_path):
    """An OOD file (data.ood_test_path) that shares texts with the training data scores them
    optimistically, as the in-domain test does: counted in the notes, by a set lookup here."""
    p = _csv(tmp_path, [(f"t {i}", "ab"[i % 2]) for i in range(200)])
    ood = _csv(tmp_path, [(f"t {i}", "ab"[i % 2]) for i in range(0, 60, 3)] + [(f"o {i}", "ab"[i % 2]) for i in range(20)],
               name="ood.csv")
    s = load_splits(compose, "data=csv", f"data.path={p}", f"data.ood_test_path={ood}")
    expected = sum(t in set(s.train["text"]) for t in s.test_ood["text"])
    assert 0 < expected < 20
    note = next(n for n in s.notes if "out-of-domain test texts also occur" in n)
    assert re.search(rf"{expected} of {len(s.test_ood)} out-of-domain test texts", note), note
