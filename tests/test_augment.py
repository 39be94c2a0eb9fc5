"""Tests for tunelab.augment (EDA) and the check of its options (schemas.adaptation).

WordNet-dependent tests skip, saying why, without the files."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from tunelab.augment.eda import (
    STOP_WORDS,
    eda,
    get_only_chars,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from tunelab.augment.transform import augment_examples, train_transform
from tunelab.augment.wordnet import WordNetMissingError, get_synonyms, load_wordnet
from tunelab.errors import ConfigError
from tunelab.schemas.adaptation import AugmentConfig, check_augment

SRC = Path(__file__).resolve().parents[1] / "src"

TEXTS = [
    "the quick happy dog runs across the green field",
    "I am so angry with this terrible airline service today",
    "what a lovely flight, the crew was great!",
    "@united lost my bag again #fail",
    "cars that drive themselves scare me",
]
LABELS = ["pos", "neg", "pos", "neg", "neutral"]


@pytest.fixture(scope="module")
def wordnet():
    try:
        return load_wordnet()
    except WordNetMissingError as exc:
        pytest.skip(f"WordNet files are not installed ({exc})")


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    it = iter(long)
    return all(any(w == x for x in it) for w in short)


# ------------------------------------------------------------------------- augment_examples


def test_counts_and_label_alignment(wordnet):
    labels = list(range(len(TEXTS)))  # distinct labels make any misalignment visible
    num_aug = 3
    out_texts, out_labels = augment_examples(TEXTS, labels, seed=0, num_aug=num_aug,
                                             wordnet=wordnet)  # fmt: skip
    n = len(TEXTS)
    assert len(out_texts) == len(out_labels) == (num_aug + 1) * n
    assert out_texts[:n] == TEXTS and out_labels[:n] == labels
    for i in range(n):
        group = slice(n + i * num_aug, n + (i + 1) * num_aug)
        assert out_labels[group] == [i] * num_aug
        # each copy still shares a word with its own source, so the grouping is by source
        source_words = set(TEXTS[i].lower().split())
        for copy in out_texts[group]:
            assert source_words & set(copy.lower().split()), (TEXTS[i], copy)


def test_same_seed_identical_different_seed_differs(wordnet):
    a = augment_examples(TEXTS, LABELS, seed=7, num_aug=4, wordnet=wordnet)
    b = augment_examples(TEXTS, LABELS, seed=7, num_aug=4, wordnet=wordnet)
    c = augment_examples(TEXTS, LABELS, seed=8, num_aug=4, wordnet=wordnet)
    assert a == b
    assert a[0][len(TEXTS):] != c[0][len(TEXTS):]
    assert a[1] == c[1]  # labels depend only on the layout, not the seed


def test_reproducible_across_processes(wordnet):
    """The reference EDA code iterated over sets, so its output depended on PYTHONHASHSEED."""
    here = augment_examples(TEXTS, LABELS, seed=3, num_aug=4, wordnet=wordnet)[0]
    code = (
        "import json, sys\n"
        "from tunelab.augment import augment_examples\n"
        f"texts = {TEXTS!r}\n"
        "out = augment_examples(texts, [0] * len(texts), seed=3, num_aug=4)[0]\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True, timeout=300)  # fmt: skip
    assert json.loads(result.stdout) == here


def test_example_augmentation_independent_of_other_examples(wordnet):
    """Per-example seeding: augmenting a subset gives the same copies for those examples."""
    full = augment_examples(TEXTS, LABELS, seed=1, num_aug=2, wordnet=wordnet)[0]
    first = augment_examples(TEXTS[:1], LABELS[:1], seed=1, num_aug=2, wordnet=wordnet)[0]
    n = len(TEXTS)
    assert first[1:] == full[n : n + 2]


def test_num_aug_zero_returns_copies_of_originals():
    texts, labels = augment_examples(TEXTS, LABELS, seed=0, num_aug=0)
    assert texts == TEXTS and labels == LABELS
    assert texts is not TEXTS


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        augment_examples(TEXTS, LABELS[:-1], seed=0)


def test_swap_and_deletion_need_no_wordnet(monkeypatch):
    """With SR and RI off, WordNet is never loaded (a bogus override would otherwise fail)."""
    monkeypatch.setenv("TUNELAB_WORDNET", "/nonexistent/wordnet")
    texts, labels = augment_examples(TEXTS, LABELS, seed=0, num_aug=4, alpha_sr=0, alpha_ri=0)
    assert len(texts) == 5 * len(TEXTS)
    for i, text in enumerate(TEXTS):
        for copy in texts[len(TEXTS) + 4 * i : len(TEXTS) + 4 * (i + 1)]:
            # swap keeps the multiset, deletion keeps a sub-multiset: never a new word
            assert not Counter(copy.split()) - Counter(text.split())


# ------------------------------------------------------------------------- eda on one sentence


def test_eda_returns_num_aug_variants(wordnet):
    for num_aug in (1, 4, 9):
        out = eda(TEXTS[0], rng=random.Random(0), num_aug=num_aug, wordnet=wordnet)
        assert len(out) == num_aug and all(isinstance(s, str) and s for s in out)
    assert eda(TEXTS[0], rng=random.Random(0), num_aug=0, wordnet=wordnet) == []


def test_eda_mixes_operations(wordnet):
    """num_aug=8 with all four on draws 12 candidates (3 per operation): expect variety."""
    out = eda(TEXTS[0], rng=random.Random(0), num_aug=8, alpha_sr=0.2, alpha_ri=0.2,
              alpha_rs=0.2, p_rd=0.2, wordnet=wordnet)  # fmt: skip
    n = len(TEXTS[0].split())
    lengths = {len(s.split()) for s in out}
    assert len(set(out)) >= 5
    assert any(length > n for length in lengths) and any(length < n for length in lengths)


def test_eda_blank_text_gives_copies(wordnet):
    assert eda("   ", rng=random.Random(0), num_aug=3, wordnet=wordnet) == ["   "] * 3


def test_eda_all_operations_off_is_an_error():
    with pytest.raises(ValueError, match="all 0"):
        eda("a b c", rng=random.Random(0), alpha_sr=0, alpha_ri=0, alpha_rs=0, p_rd=0)


def test_eda_clean_matches_reference_cleaning(wordnet):
    out = eda("Don't GO—now!! It's 5pm", rng=random.Random(0), num_aug=4, clean=True,
              wordnet=wordnet)  # fmt: skip
    for s in out:
        assert s == get_only_chars(s)
    assert get_only_chars("Don't GO-now!! It's 5pm\tok") == "dont go now its pm ok"


# ------------------------------------------------------------------------- the four operations

SENTENCE = "the quick happy dog jumps over a lazy brown fox near the old river".split()


def test_random_deletion_shortens_and_keeps_order():
    shortened = 0
    for seed in range(50):
        out = random_deletion(SENTENCE, 0.3, rng=random.Random(seed))
        assert 1 <= len(out) <= len(SENTENCE)
        assert _is_subsequence(out, SENTENCE)
        shortened += len(out) < len(SENTENCE)
    assert shortened >= 45  # P(no deletion) = 0.7**14 < 1 %
    assert random_deletion(SENTENCE, 0.0, rng=random.Random(0)) == SENTENCE
    everything = random_deletion(SENTENCE, 1.0, rng=random.Random(0))
    assert len(everything) == 1 and everything[0] in SENTENCE
    assert random_deletion(["alone"], 1.0, rng=random.Random(0)) == ["alone"]


def test_random_swap_keeps_multiset_and_moves_words():
    for seed in range(20):
        out = random_swap(SENTENCE, 2, rng=random.Random(seed))
        assert sorted(out) == sorted(SENTENCE)
        assert out != SENTENCE
        # one swap changes exactly two positions (words here are distinct)
        one = random_swap(SENTENCE, 1, rng=random.Random(seed))
        assert sum(a != b for a, b in zip(one, SENTENCE)) == 2
    assert random_swap(["one"], 3, rng=random.Random(0)) == ["one"]


def test_synonym_lists_come_from_wordnet(wordnet):
    happy = get_synonyms("happy", wordnet)
    assert "glad" in happy and "felicitous" in happy and "happy" not in happy
    assert {"speedy", "fast", "nimble"} <= set(get_synonyms("quick", wordnet))
    assert "domestic dog" in get_synonyms("dog", wordnet)  # underscores become spaces
    assert get_synonyms("qwzxv", wordnet) == ()
    assert get_synonyms("Happy", wordnet) == happy


def test_synonym_replacement_uses_real_synonyms(wordnet):
    words = "the quick happy dog".split()
    seen = set()
    for seed in range(30):
        out = synonym_replacement(words, 1, rng=random.Random(seed), wordnet=wordnet)
        assert out[0] == "the"  # stop word: never replaced
        assert out != words
        # exactly one of quick/happy/dog was replaced, by one of its WordNet synonyms
        # (possibly multi-word: "dog" -> "domestic dog")
        matches = [
            words[j]
            for j in (1, 2, 3)
            for syn in get_synonyms(words[j], wordnet)
            if out == words[:j] + syn.split() + words[j + 1 :]
        ]
        assert len(matches) >= 1, out
        seen.add(matches[0])
    assert seen == {"quick", "happy", "dog"}


def test_synonym_replacement_replaces_all_occurrences_and_keeps_punctuation(wordnet):
    words = "happy happy joy, Happy!".split()
    expected = {f"{s} {s} joy, {s[0].upper() + s[1:]}!" for s in get_synonyms("happy", wordnet)}
    expected |= {f"happy happy {s}, Happy!" for s in get_synonyms("joy", wordnet)}
    outcomes = set()
    for seed in range(20):
        text = " ".join(synonym_replacement(words, 1, rng=random.Random(seed), wordnet=wordnet))
        assert text in expected
        outcomes.add("joy" in text)
    assert outcomes == {True, False}  # both words were picked for some seed


def test_synonym_replacement_leaves_mentions_hashtags_urls_alone(wordnet):
    words = "@happy #happy http://happy.com 2happy".split()
    for seed in range(5):
        assert synonym_replacement(words, 4, rng=random.Random(seed), wordnet=wordnet) == words


def test_random_insertion_adds_a_synonym_of_a_sentence_word(wordnet):
    words = "the quick happy dog".split()
    for seed in range(20):
        out = random_insertion(words, 1, rng=random.Random(seed), wordnet=wordnet)
        assert len(out) > len(words)
        assert _is_subsequence(words, out)  # originals untouched and in order
        inserted = Counter(out) - Counter(words)
        candidates = {s for w in ("quick", "happy", "dog") for s in get_synonyms(w, wordnet)}
        # the inserted (possibly multi-word) synonym's words all come from one synonym
        assert any(Counter(s.split()) == inserted for s in candidates), (out, inserted)


def test_random_insertion_without_synonyms_is_a_no_op(wordnet):
    words = "the of and qwzxv".split()
    assert random_insertion(words, 3, rng=random.Random(0), wordnet=wordnet) == words
    assert all(w in STOP_WORDS for w in ("the", "of", "and"))


# ------------------------------------------------------------------------- WordNet loading


def test_missing_wordnet_names_install_command(tmp_path):
    with pytest.raises(WordNetMissingError, match="install_wordnet.sh") as info:
        load_wordnet(tmp_path / "nowhere")
    assert "apt-get install wordnet-base" in str(info.value)
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(WordNetMissingError, match="lacks index.noun"):
        load_wordnet(tmp_path)


def test_env_var_overrides_default(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_WORDNET", str(tmp_path / "custom"))
    with pytest.raises(WordNetMissingError, match=r"custom.*\$TUNELAB_WORDNET"):
        load_wordnet()


def test_env_var_pointing_at_debian_dir_loads_same_reader(monkeypatch, wordnet):
    monkeypatch.setenv("TUNELAB_WORDNET", wordnet.root.path)
    assert load_wordnet() is wordnet  # cached per directory
    assert wordnet.get_version() == "3.0"
    assert wordnet.synset("dog.n.01").lexname() == "noun.animal"  # served lexnames list


# ------------------------------------------------------------------------- options and transform


def _forms(**values):
    """The same augment options as a dataclass and as an (untyped) OmegaConf node: check_augment
    must judge both alike (an untyped node, because a structured one would reject bad types
    before the check runs, which hides whether the check itself catches them)."""
    return AugmentConfig(**values), OmegaConf.create({**asdict(AugmentConfig()), **values})


def test_defaults_pass_and_none_has_no_transform():
    assert AugmentConfig().name == "none"
    for form in (*_forms(), OmegaConf.structured(AugmentConfig), {}):
        check_augment(form)
        assert train_transform(form) is None  # the data module then uses train as it is


def test_transform_uses_seed_offset_and_keeps_label_dtype(wordnet):
    df = pd.DataFrame({"text": TEXTS, "label": pd.Series(range(len(TEXTS)), dtype="int16")})
    out = train_transform(AugmentConfig(name="eda", num_aug=2, seed_offset=5))(df, 1)
    texts, labels = augment_examples(TEXTS, list(range(len(TEXTS))), seed=6, num_aug=2,
                                     wordnet=wordnet)  # fmt: skip
    assert out["text"].tolist() == texts and out["label"].tolist() == labels
    assert out["label"].dtype == df["label"].dtype


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"name": "backtranslate"}, "augment.name='backtranslate' is not one of ['eda', 'none']."),
        ({"name": "EDA"}, "augment.name='EDA' is not one of ['eda', 'none']."),
        ({"num_aug": -1}, "augment.num_aug=-1 must be >= 0."),
        ({"num_aug": 2.5}, "augment.num_aug=2.5 must be an integer."),
        ({"num_aug": True}, "augment.num_aug=True must be an integer."),
        ({"alpha_sr": 1.5}, "augment.alpha_sr=1.5 must be in [0, 1]."),
        ({"alpha_ri": -0.1}, "augment.alpha_ri=-0.1 must be in [0, 1]."),
        ({"alpha_rs": "0.1"}, "augment.alpha_rs='0.1' must be a number."),
        ({"alpha_rs": math.nan}, "augment.alpha_rs=nan must be a finite number in [0, 1]."),
        ({"p_rd": 2}, "augment.p_rd=2 must be in [0, 1]."),
        ({"p_rd": False}, "augment.p_rd=False must be a number."),
        ({"seed_offset": 0.5}, "augment.seed_offset=0.5 must be an integer."),
        ({"clean": "yes"}, "augment.clean='yes' must be true or false."),
        ({"name": "eda", "num_aug": 0},
         "augment.num_aug=0 must be >= 1 with augment.name=eda (use augment=none for no "
         "augmentation)."),
        ({"name": "eda", "alpha_sr": 0, "alpha_ri": 0, "alpha_rs": 0, "p_rd": 0},
         "augment.alpha_sr, alpha_ri, alpha_rs and p_rd are all 0, so augment.name=eda would "
         "only copy sentences; set at least one > 0 or use augment=none."),
    ],
)  # fmt: skip
def test_check_augment_rejects_with_one_sentence(values, message):
    for form in _forms(**values):
        with pytest.raises(ConfigError) as info:
            check_augment(form)
        assert str(info.value) == message
        with pytest.raises(ConfigError, match=re.escape(message)):
            train_transform(form)  # the transform checks before doing anything else


def test_check_augment_on_a_structured_node():
    """The typed node Hydra builds from the schema: in-type values out of range still fail."""
    node = OmegaConf.structured(AugmentConfig)
    node.p_rd = 1.0000001
    with pytest.raises(ConfigError, match=re.escape("augment.p_rd=1.0000001 must be in [0, 1].")):
        check_augment(node)


def test_check_augment_accepts_boundaries():
    for values in (
        {"name": "eda", "num_aug": 16, "alpha_sr": 0.0, "alpha_ri": 1, "alpha_rs": 0.05,
         "p_rd": 1.0, "seed_offset": -3, "clean": True},
        {"name": "none", "num_aug": 0, "alpha_sr": 0, "alpha_ri": 0, "alpha_rs": 0, "p_rd": 0},
        {"name": "eda", "num_aug": 1, "alpha_sr": 0, "alpha_ri": 0, "alpha_rs": 0, "p_rd": 0.5},
    ):  # fmt: skip
        for form in _forms(**values):
            check_augment(form)
