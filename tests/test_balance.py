"""data.balance_classes: every class cut to the rarest one's count before the splits."""

from __future__ import annotations

from collections import Counter

import pytest

from conftest import load_splits


def _csv(tmp_path, n_neg: int, n_pos: int):
    rows = [f"neg text {i},negative" for i in range(n_neg)] + [f"pos text {i},positive" for i in range(n_pos)]
    p = tmp_path / "d.csv"
    p.write_text("text,label\n" + "\n".join(rows) + "\n")
    return p


def test_balanced_splits_hold_the_rarest_count_of_each_class(compose, tmp_path):
    p = _csv(tmp_path, 30, 10)
    s = load_splits(compose, "data=csv", f"data.path={p}", "data.balance_classes=true",
              "data.val_size=0", "data.test_size=0.25")
    both = list(s.train["text"]) + list(s.test["text"])
    # 10 positives and 10 of the 30 negatives: 20 rows, 5 held out (round(0.25 * 20)).
    assert len(both) == len(set(both)) == 20 and len(s.test) == 5
    assert Counter(t.split()[0] for t in both) == {"neg": 10, "pos": 10}
    assert {f"pos text {i}" for i in range(10)} <= set(both)
    assert any("balanced to 10 each (20 examples left out)" in n for n in s.notes)
    # The draw depends on split_seed only: the same rows every time.
    again = load_splits(compose, "data=csv", f"data.path={p}", "data.balance_classes=true",
                  "data.val_size=0", "data.test_size=0.25")
    assert list(again.train["text"]) == list(s.train["text"])


def test_unbalanced_by_default(compose, tmp_path):
    s = load_splits(compose, "data=csv", f"data.path={_csv(tmp_path, 30, 10)}", "data.val_size=0", "data.test_size=0.25")
    assert len(s.train) + len(s.test) == 40


def test_balance_needs_one_label_per_example(compose, tmp_path):
    from tunelab.errors import DataError

    p = tmp_path / "ner.txt"
    p.write_text("Paris\tB-loc\nis\tO\n\nBerlin\tB-loc\nrocks\tO\n")
    with pytest.raises(DataError, match=r"balance_classes=true needs one label per example"):
        load_splits(compose, "task=token_cls", "data=conll", f"data.path={p}", "data.balance_classes=true")


def test_related_curriculum_stages_are_balanced(compose):
    """The packaged `related` stages are 80/20 sub-domains; balanced, guessing one class scores 0.5."""
    from tunelab.methods.curriculum.stages import load_stages

    for stage in load_stages(compose(["model=tiny", "curriculum=related"])):
        s = stage.splits
        counts = Counter(s.train["label"]) + Counter(s.test["label"]) + Counter(s.val["label"])
        assert abs(counts[0] - counts[1]) <= 1, (stage.name, counts)
