"""The four EDA operations and :func:`eda` (Wei & Zou, EMNLP 2019, arXiv:1901.11196).

Pure functions on whitespace-separated words: every random choice comes from the
:class:`random.Random` passed in, and WordNet is passed in too (loaded by the caller, see
:mod:`tunelab.augment.wordnet`). The options are not re-checked here: the config is checked once,
by ``tunelab.schemas.adaptation.check_augment``, before any of this runs. Why the operations
differ from the reference code in places is in the package docstring (:mod:`tunelab.augment`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from tunelab.augment.wordnet import get_synonyms, load_wordnet

__all__ = [
    "STOP_WORDS",
    "eda",
    "get_only_chars",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "synonym_replacement",
]

#: The stop words of the EDA reference implementation (NLTK's English list as of 2019, plus "").
#: SR never replaces them and RI never inserts their synonyms: function words have no useful
#: WordNet synonyms and replacing them mostly makes ungrammatical text.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom
    this that these those am is are was were be been being have has had having do does did
    doing a an the and but if or because as until while of at by for with about against between
    into through during before after above below to from up down in out on off over under again
    further then once here there when where why how all any both each few more most other some
    such no nor not only own same so than too very s t can will just don should now
    """.split()
) | {""}

_ALPHA_CORE = re.compile(r"[A-Za-z]+")
_TOKEN_PARTS = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def _split_token(token: str) -> tuple[str, str, str] | None:
    """Split ``token`` into (leading punctuation, alphabetic core, trailing punctuation).

    Returns None for tokens that must not be looked up or replaced: mentions, hashtags, URLs,
    numbers and anything whose core is not purely alphabetic ("don't", "3pm", "e-mail").
    """
    match = _TOKEN_PARTS.match(token)
    if match is None:  # pragma: no cover - the pattern matches every string
        return None
    prefix, core, suffix = match.groups()
    if not _ALPHA_CORE.fullmatch(core) or "@" in prefix or "#" in prefix:
        return None
    return prefix, core, suffix


def _lookup_key(token: str) -> str | None:
    parts = _split_token(token)
    return parts[1].lower() if parts else None


def _match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _replace_core(token: str, synonym: str) -> str:
    parts = _split_token(token)
    if parts is None:  # pragma: no cover - callers only replace tokens that have a key
        return synonym
    prefix, core, suffix = parts
    return f"{prefix}{_match_case(core, synonym)}{suffix}"


# --------------------------------------------------------------------------------------------
# The four operations. Each takes and returns a list of whitespace-separated tokens.
# --------------------------------------------------------------------------------------------


def synonym_replacement(
    words: Sequence[str], n: int, *, rng: random.Random, wordnet: Any
) -> list[str]:
    """SR: replace every occurrence of up to ``n`` distinct non-stop words with a synonym.

    Candidates are tried in random order until ``n`` have been replaced; words without WordNet
    synonyms are skipped, so fewer than ``n`` may change (none if no word has a synonym).
    Multi-word synonyms ("domestic dog") come back as several tokens.
    """
    keys = [_lookup_key(w) for w in words]
    candidates = list(dict.fromkeys(k for k in keys if k is not None and k not in STOP_WORDS))
    rng.shuffle(candidates)
    new_words = list(words)
    replaced = 0
    for key in candidates:
        if replaced >= n:
            break
        synonyms = get_synonyms(key, wordnet)
        if not synonyms:
            continue
        synonym = rng.choice(synonyms)
        new_words = [
            _replace_core(tok, synonym) if k == key else tok for tok, k in zip(new_words, keys)
        ]
        replaced += 1
    return " ".join(new_words).split()


def random_insertion(
    words: Sequence[str], n: int, *, rng: random.Random, wordnet: Any, max_tries: int = 10
) -> list[str]:
    """RI: ``n`` times, insert a random synonym of a random non-stop word at a random position.

    Each insertion gives up after ``max_tries`` draws of words without synonyms (as the
    reference code does after 10), so short or synonym-less sentences may grow less.
    """
    new_words = list(words)
    for _ in range(n):
        if not new_words:
            break
        synonyms: tuple[str, ...] = ()
        for _ in range(max_tries):
            key = _lookup_key(rng.choice(new_words))
            if key is not None and key not in STOP_WORDS:
                synonyms = get_synonyms(key, wordnet)
                if synonyms:
                    break
        if not synonyms:
            continue
        new_words.insert(rng.randint(0, len(new_words)), rng.choice(synonyms))
    return " ".join(new_words).split()


def random_swap(
    words: Sequence[str], n: int, *, rng: random.Random, max_tries: int = 3
) -> list[str]:
    """RS: ``n`` times, swap the words at two distinct random positions.

    The multiset of words never changes. (The ``max_tries`` guard mirrors the reference code;
    with two or more words a distinct second position is redrawn until found within it.)
    """
    new_words = list(words)
    if len(new_words) < 2:
        return new_words
    for _ in range(n):
        i = rng.randrange(len(new_words))
        for _ in range(max_tries + 1):
            j = rng.randrange(len(new_words))
            if j != i:
                new_words[i], new_words[j] = new_words[j], new_words[i]
                break
    return new_words


def random_deletion(words: Sequence[str], p: float, *, rng: random.Random) -> list[str]:
    """RD: drop each word independently with probability ``p``; never return an empty sentence.

    A one-word sentence is returned unchanged; if every word is drawn for deletion, one random
    word is kept (both as in the reference code). Order of the survivors is preserved.
    """
    if len(words) <= 1:
        return list(words)
    kept = [w for w in words if rng.random() > p]
    if not kept:
        return [words[rng.randrange(len(words))]]
    return kept


def get_only_chars(text: str) -> str:
    """The reference implementation's cleaning: lowercase, keep ``a-z`` and single spaces.

    Apostrophes are removed ("don't" -> "dont"), hyphens, tabs, newlines and every other
    character become spaces. Used only with ``clean=True``.
    """
    text = text.replace("\u2019", "").replace("'", "").replace("-", " ").lower()
    return " ".join("".join(c if "a" <= c <= "z" else " " for c in text).split())


def eda(
    text: str,
    *,
    rng: random.Random,
    alpha_sr: float = 0.1,
    alpha_ri: float = 0.1,
    alpha_rs: float = 0.1,
    p_rd: float = 0.1,
    num_aug: int = 4,
    wordnet: Any = None,
    clean: bool = False,
) -> list[str]:
    """Return ``num_aug`` EDA variants of ``text`` (the original is *not* included).

    An operation whose parameter is 0 is switched off; the enabled ones each make
    ``num_aug // k + 1`` candidates, which are shuffled and cut to ``num_aug`` (the reference
    recipe, generalised from k = 4). The number of words changed is
    ``max(1, int(alpha * len(words)))`` for SR, RI and RS. ``wordnet`` defaults to
    :func:`load_wordnet` and is only needed when SR or RI is on. Text without words gives
    ``num_aug`` unchanged copies, so the caller's count stays ``num_aug`` per example.
    All randomness comes from ``rng``. At least one operation must be on (with all four off,
    EDA would only copy the sentence); the arguments are otherwise trusted, as the config they
    come from has been checked (``check_augment``).
    """
    if clean:
        text = get_only_chars(text)
    if num_aug == 0:
        return []
    words = text.split()
    if not words:
        return [text] * num_aug
    if wordnet is None and (alpha_sr > 0 or alpha_ri > 0):
        wordnet = load_wordnet()

    def n_changes(alpha: float) -> int:
        return max(1, int(alpha * len(words)))

    operations: list[Callable[[], list[str]]] = []
    if alpha_sr > 0:
        operations.append(lambda: synonym_replacement(words, n_changes(alpha_sr), rng=rng,
                                                      wordnet=wordnet))  # fmt: skip
    if alpha_ri > 0:
        operations.append(lambda: random_insertion(words, n_changes(alpha_ri), rng=rng,
                                                   wordnet=wordnet))  # fmt: skip
    if alpha_rs > 0:
        operations.append(lambda: random_swap(words, n_changes(alpha_rs), rng=rng))
    if p_rd > 0:
        operations.append(lambda: random_deletion(words, p_rd, rng=rng))

    if not operations:
        raise ValueError(
            "eda: alpha_sr, alpha_ri, alpha_rs and p_rd are all 0, so it would only copy the "
            "sentence; set at least one > 0"
        )
    per_operation = num_aug // len(operations) + 1
    candidates = [" ".join(op()) for op in operations for _ in range(per_operation)]
    if clean:
        candidates = [get_only_chars(c) for c in candidates]
    rng.shuffle(candidates)
    return candidates[:num_aug]
