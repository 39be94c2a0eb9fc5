"""EDA text augmentation (Wei & Zou, 2019) with an offline WordNet.

**Augmentation is applied to the TRAIN split only.** Validation and test examples must stay
exactly as collected: augmenting them would change what is being measured and, since augmented
copies are near-duplicates of their source, would also leak training sentences into evaluation if
the split were made after augmenting. The data module therefore splits first and then calls
:func:`augment_examples` (or :meth:`AugmentSettings.apply`) on the training texts alone.

EDA ("Easy Data Augmentation", Wei & Zou, EMNLP 2019, arXiv:1901.11196) makes ``num_aug`` noisy
copies of each training sentence with four operations, each copy using one of them:

* **SR, synonym replacement**: pick ``n = max(1, int(alpha_sr * len(words)))`` distinct non-stop
  words at random and replace every occurrence of each with a random WordNet synonym;
* **RI, random insertion**: ``n`` times, insert a WordNet synonym of a random non-stop word at a
  random position;
* **RS, random swap**: ``n`` times, swap two random positions;
* **RD, random deletion**: drop each word independently with probability ``p_rd`` (keeping one
  random word if all would go).

As in the authors' reference implementation, ``num_aug // k + 1`` sentences are made with each of
the ``k`` enabled operations, shuffled, and the first ``num_aug`` kept, so every example gets
exactly ``num_aug`` copies drawn from a random mix of operations. The paper's recommended
settings are ``alpha = 0.05, num_aug = 16`` for ~500 training sentences, ``0.05, 8`` for ~2,000
and ``0.1, 4`` beyond ~5,000; the gains it reports shrink as the training set grows, and they
were measured for RNN/CNN classifiers, not for fine-tuned BERT, which is why this is something to
measure here rather than assume.

Deliberate differences from the reference code (each keeps the paper's description but fixes a
property this project needs):

* **Determinism.** The reference code draws from the global ``random`` module and builds
  candidate lists from Python ``set``\\ s, whose order depends on ``PYTHONHASHSEED``: the same
  seed gave different augmentations in different processes. Here every random choice comes from
  an explicit :class:`random.Random`, candidate lists keep first-seen order, and
  :func:`augment_examples` seeds one generator per example from ``(seed, index)``, so output is a
  pure function of the inputs and the seed (and does not depend on batch or worker layout).
* **No text cleaning by default.** The reference code lowercases and keeps only ``a-z`` and
  spaces. For tweets the dropped characters (``!``, ``:)``, ``@user``, ``#tag``, digits) carry
  signal and BERT's tokenizer handles them, so by default tokens are kept as they are and only
  the alphabetic core of a token is looked up in WordNet (``"happy!"`` -> ``"glad!"``);
  ``@mentions``, ``#hashtags``, URLs and numbers are never replaced. ``clean=True`` restores the
  reference behaviour exactly.
* **Random insertion** skips stop words when choosing the word whose synonym is inserted (as the
  paper describes; the reference code did not), picks a random synonym rather than the first of
  an unordered set, and may insert at the end of the sentence too.

The operations are for sentence-level labels. They are not label-preserving for token-level
tasks (NER tags would no longer line up) and can flip sentiment (RD may delete "not", which is
in the stop-word list and so is never *replaced*, but can be deleted or moved).

WordNet comes from Debian's ``wordnet-base`` package (WordNet 3.0, ``/usr/share/wordnet``); NLTK's
own downloader needs the internet, which the project machines do not have. See
:func:`load_wordnet` for how the Debian files are made readable by NLTK's reader.
"""

from __future__ import annotations

import io
import os
import random
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from tunelab.schemas.adaptation import AugmentConfig

__all__ = [
    "AugmentSettings",
    "STOP_WORDS",
    "WordNetMissingError",
    "augment_examples",
    "eda",
    "get_only_chars",
    "get_synonyms",
    "load_wordnet",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "synonym_replacement",
]

L = TypeVar("L")

#: Environment variable naming a WordNet dict directory; overrides the Debian default.
WORDNET_ENV = "TUNELAB_WORDNET"
#: Where Debian's ``wordnet-base`` puts the WordNet 3.0 database files.
DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")
INSTALL_HINT = (
    "install it with `bash scripts/install_wordnet.sh` (Debian/Ubuntu: "
    "`apt-get install wordnet-base`), or point "
    f"{WORDNET_ENV} at a WordNet 3.0 dict directory"
)
#: Files the reader cannot work without (the exception lists ``*.exc`` are optional to NLTK).
REQUIRED_WORDNET_FILES = tuple(
    f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")
)

# WordNet 3.0's lexicographer file names, numbered 00..44 (lexnames(5WN)). NLTK's reader reads
# them from a file called ``lexnames`` when it starts, but Debian's wordnet-base does not ship
# that file (its README.Debian: the C library has the list compiled in). The list is fixed for
# WordNet 3.0, so it is supplied from here instead of writing files next to the package's.
_WN30_LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)  # fmt: skip
_LEXNAME_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
_WN30_LEXNAMES_TEXT = "".join(
    f"{i:02d}\t{name}\t{_LEXNAME_CATEGORY[name.split('.')[0]]}\n"
    for i, name in enumerate(_WN30_LEXNAMES)
)

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


class WordNetMissingError(FileNotFoundError):
    """WordNet database files are not where tunelab looked; the message says how to install."""


# --------------------------------------------------------------------------------------------
# WordNet
# --------------------------------------------------------------------------------------------


def _find_wordnet_dir(path: str | os.PathLike[str] | None) -> Path:
    """Resolve which directory to read: explicit ``path`` > ``$TUNELAB_WORDNET`` > Debian's.

    Only one candidate is ever checked, so a typo in the override fails loudly instead of
    silently falling back to another copy of WordNet.
    """
    if path is not None:
        where, source = Path(path), "the path passed to load_wordnet"
    elif os.environ.get(WORDNET_ENV):
        where, source = Path(os.environ[WORDNET_ENV]), f"${WORDNET_ENV}"
    else:
        where, source = DEBIAN_WORDNET_DIR, "the Debian wordnet-base location"
    where = where.expanduser()
    if not where.is_dir():
        raise WordNetMissingError(
            f"WordNet dict directory {str(where)!r} ({source}) does not exist; {INSTALL_HINT}."
        )
    missing = [f for f in REQUIRED_WORDNET_FILES if not (where / f).is_file()]
    if missing:
        raise WordNetMissingError(
            f"WordNet dict directory {str(where)!r} ({source}) lacks {', '.join(missing)}; "
            f"{INSTALL_HINT}."
        )
    return where.resolve()


def load_wordnet(path: str | os.PathLike[str] | None = None) -> Any:
    """Load WordNet 3.0 from disk with NLTK's ``WordNetCorpusReader``; no download.

    Where: ``path`` if given, else ``$TUNELAB_WORDNET`` if set, else ``/usr/share/wordnet``
    (Debian/Ubuntu ``wordnet-base``). A missing directory or file raises
    :class:`WordNetMissingError` naming the install command.

    Two adaptations let NLTK read Debian's files in place:

    * Debian ships no ``lexnames`` file, which the reader opens at start-up; the fixed WordNet 3.0
      list is served from memory when the directory lacks it (a full NLTK ``wordnet`` corpus
      directory, which has the file, works unchanged).
    * NLTK >= 3.9 only opens files under its data roots (``nltk.data.path``); the dict directory
      is appended there, which is NLTK's documented way to authorise a location.

    Not available with the Debian files: ``index.sense``-based look-ups (``lemma_from_key``,
    ``synset_from_sense_key``) and the multilingual (OMW) functions; EDA needs neither.

    Loading parses every index file (about 3 s on the project machines), so readers are cached
    per directory: repeated calls, e.g. once per data module, share one reader.
    """
    return _load_wordnet_cached(str(_find_wordnet_dir(path)))


@lru_cache(maxsize=4)
def _load_wordnet_cached(root: str) -> Any:
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class _DictDirWordNetReader(WordNetCorpusReader):
        """WordNetCorpusReader for a bare WordNet 3.0 dict directory (see load_wordnet)."""

        def open(self, fileid: str):  # noqa: A003 - NLTK's name
            if fileid == "lexnames" and not os.path.isfile(os.path.join(root, fileid)):
                return io.StringIO(_WN30_LEXNAMES_TEXT)
            return super().open(fileid)

        def map_wn(self, version: str = "wordnet"):
            # NLTK maps synsets of "other" WordNet versions onto its own downloaded 3.0 copy
            # through index.sense; this directory *is* 3.0, there is no other copy, and the
            # mapping only serves the multilingual functions.
            if self.get_version() == "3.0":
                return None
            return super().map_wn(version)

    if root not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        # Expected: we pass no Open Multilingual WordNet reader.
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        reader = _DictDirWordNetReader(root, None)
    version = reader.get_version()
    if version != "3.0":
        warnings.warn(
            f"WordNet at {root} reports version {version!r}; EDA was specified with WordNet 3.0",
            stacklevel=3,
        )
    return reader


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


def get_synonyms(word: str, wordnet: Any) -> tuple[str, ...]:
    """WordNet synonyms of ``word``: lemma names of all its synsets (any part of speech).

    As in the EDA reference code: underscores and hyphens become spaces, the result is
    lowercased and reduced to ``a-z`` and spaces, and ``word`` itself is excluded. Unlike it, the
    order is fixed (synset order, then lemma order, first occurrence kept), so a seeded choice
    among them is reproducible across processes. Results are cached per reader and word.
    """
    return _synonyms_cached(wordnet, word.lower())


@lru_cache(maxsize=1 << 17)
def _synonyms_cached(wordnet: Any, word: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for synset in wordnet.synsets(word):
        for lemma in synset.lemmas():
            name = lemma.name().replace("_", " ").replace("-", " ").lower()
            name = " ".join("".join(c for c in name if c == " " or "a" <= c <= "z").split())
            if name and name != word:
                found.setdefault(name, None)
    return tuple(found)


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


# --------------------------------------------------------------------------------------------
# EDA on one sentence and on a data set
# --------------------------------------------------------------------------------------------


def _check_probability(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_num_aug(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"num_aug must be an integer >= 0, got {value!r}")


def _check_eda_args(alpha_sr: float, alpha_ri: float, alpha_rs: float, p_rd: float,
                    num_aug: int) -> None:  # fmt: skip
    for name, value in (("alpha_sr", alpha_sr), ("alpha_ri", alpha_ri),
                        ("alpha_rs", alpha_rs), ("p_rd", p_rd)):  # fmt: skip
        _check_probability(name, value)
    _check_num_aug(num_aug)
    if num_aug > 0 and not any(v > 0 for v in (alpha_sr, alpha_ri, alpha_rs, p_rd)):
        raise ValueError(
            "alpha_sr, alpha_ri, alpha_rs and p_rd are all 0, so EDA would only copy sentences; "
            "set at least one > 0 or disable augmentation (name='none' / num_aug=0)"
        )


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
    All randomness comes from ``rng``.
    """
    _check_eda_args(alpha_sr, alpha_ri, alpha_rs, p_rd, num_aug)
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

    per_operation = num_aug // len(operations) + 1
    candidates = [" ".join(op()) for op in operations for _ in range(per_operation)]
    if clean:
        candidates = [get_only_chars(c) for c in candidates]
    rng.shuffle(candidates)
    return candidates[:num_aug]


def example_rng(seed: int, index: int) -> random.Random:
    """The generator for example ``index`` under ``seed``.

    Seeding from a string hashes it with SHA-512 (not Python's salted ``hash``), so the stream
    is the same in every process; one stream per example makes each example's augmentations
    independent of the others and of the order or sharding in which examples are processed.
    """
    return random.Random(f"tunelab.eda:{int(seed)}:{int(index)}")


def augment_examples(
    texts: Sequence[str],
    labels: Sequence[L],
    *,
    seed: int,
    num_aug: int = 4,
    alpha_sr: float = 0.1,
    alpha_ri: float = 0.1,
    alpha_rs: float = 0.1,
    p_rd: float = 0.1,
    wordnet: Any = None,
    clean: bool = False,
) -> tuple[list[str], list[L]]:
    """Training texts plus ``num_aug`` EDA copies of each, with labels repeated alongside.

    Layout: the ``n`` originals first, unchanged and in order, then the copies grouped by
    source example (``num_aug`` for example 0, then for example 1, ...); the result has
    ``(num_aug + 1) * n`` items and ``out_labels[k]`` is the label of the example ``out_texts[k]``
    came from. The DataLoader shuffles anyway; the fixed layout makes the result easy to check
    and lets ``out[:n]`` recover the originals. With ``clean=True`` the originals are returned as
    given (only the copies are cleaned), so the un-augmented data are never altered.

    Deterministic: example ``i`` uses :func:`example_rng` ``(seed, i)``, so the same inputs and
    seed give identical output in any process, and a different seed gives different copies.
    """
    if len(texts) != len(labels):
        raise ValueError(f"texts and labels differ in length: {len(texts)} != {len(labels)}")
    _check_eda_args(alpha_sr, alpha_ri, alpha_rs, p_rd, num_aug)
    out_texts, out_labels = list(texts), list(labels)
    if num_aug == 0:
        return out_texts, out_labels
    if wordnet is None and (alpha_sr > 0 or alpha_ri > 0):
        wordnet = load_wordnet()
    for i, (text, label) in enumerate(zip(texts, labels)):
        copies = eda(
            text, rng=example_rng(seed, i), alpha_sr=alpha_sr, alpha_ri=alpha_ri,
            alpha_rs=alpha_rs, p_rd=p_rd, num_aug=num_aug, wordnet=wordnet, clean=clean,
        )  # fmt: skip
        out_texts.extend(copies)
        out_labels.extend([label] * len(copies))
    return out_texts, out_labels


AUGMENT_NAMES = ("none", "eda")


@dataclass
class AugmentSettings(AugmentConfig):
    """Which training-set augmentation to run (a Hydra/OmegaConf structured-config node).

    ``name``: ``"none"`` (default: the training data are used as they are) or ``"eda"``.
    ``num_aug``: copies per training example (the paper: 16 for ~500 examples, 8 for ~2,000,
    4 beyond ~5,000). ``alpha_sr``/``alpha_ri``/``alpha_rs``: fraction of words changed by
    synonym replacement, random insertion and random swap; ``p_rd``: per-word deletion
    probability; 0 switches an operation off. ``seed_offset`` is added to the run seed so that
    the augmentation draws can be varied (or held fixed) independently of the model's
    initialisation and data order. ``clean``: apply the reference code's lowercase/``a-z`` text
    cleaning to the copies.

    Values are checked on construction (ValueError naming the field), so a bad sweep override
    fails at start-up, not after the model has loaded.
    """

    # The fields are the config schema's (tunelab.schemas.adaptation.AugmentConfig).

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.name not in AUGMENT_NAMES:
            raise ValueError(f"name must be one of {AUGMENT_NAMES}, got {self.name!r}")
        _check_num_aug(self.num_aug)
        for field in ("alpha_sr", "alpha_ri", "alpha_rs", "p_rd"):
            _check_probability(field, getattr(self, field))
        if isinstance(self.seed_offset, bool) or not isinstance(self.seed_offset, int):
            raise ValueError(f"seed_offset must be an integer, got {self.seed_offset!r}")
        if not isinstance(self.clean, bool):
            raise ValueError(f"clean must be true or false, got {self.clean!r}")
        if self.name == "eda":
            if self.num_aug < 1:
                raise ValueError(
                    "num_aug must be >= 1 when name='eda' (use name='none' for no augmentation)"
                )
            _check_eda_args(self.alpha_sr, self.alpha_ri, self.alpha_rs, self.p_rd, self.num_aug)

    @property
    def enabled(self) -> bool:
        return self.name != "none"

    def apply(
        self, texts: Sequence[str], labels: Sequence[L], *, seed: int, wordnet: Any = None
    ) -> tuple[list[str], list[L]]:
        """Augment the TRAIN split: ``(texts, labels)`` unchanged (as new lists) for ``"none"``,
        else :func:`augment_examples` with ``seed + seed_offset``."""
        self.validate()
        if not self.enabled:
            return list(texts), list(labels)
        return augment_examples(
            texts, labels, seed=seed + self.seed_offset, num_aug=self.num_aug,
            alpha_sr=self.alpha_sr, alpha_ri=self.alpha_ri, alpha_rs=self.alpha_rs,
            p_rd=self.p_rd, wordnet=wordnet, clean=self.clean,
        )  # fmt: skip


def settings_from_config(aug_cfg: Any) -> AugmentSettings:
    """``AugmentSettings`` from an ``augment`` config node (or a mapping); bad values raise
    ``tunelab.errors.ConfigError`` naming the ``augment.<field>`` key."""
    from dataclasses import fields

    from tunelab.errors import ConfigError

    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(aug_cfg):
            aug_cfg = OmegaConf.to_container(aug_cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    known = {f.name for f in fields(AugmentSettings)}
    values = {k: v for k, v in dict(aug_cfg).items() if k in known}
    try:
        return AugmentSettings(**values)
    except ValueError as e:
        raise ConfigError(f"augment: {e}.") from None


def train_transform(aug_cfg: Any) -> Callable[[Any, int], Any] | None:
    """The training-split transform for ``run.train_transform_of``: ``fn(train_df, seed) -> df``.

    ``train_df`` has ``text`` and ``label`` columns (the TRAIN split only; the data module never
    passes validation or test); the result has the originals first, then ``num_aug`` EDA copies
    of each with its label repeated, ``(num_aug + 1) * len(train_df)`` rows in all. The draws
    depend on ``seed + augment.seed_offset`` only (the run seed is passed in). ``augment=none``
    returns None. WordNet is loaded here, so a missing install fails before the model loads.
    """
    settings = settings_from_config(aug_cfg)
    if not settings.enabled:
        return None
    wordnet = None
    if settings.alpha_sr > 0 or settings.alpha_ri > 0:
        from tunelab.errors import ConfigError

        try:
            wordnet = load_wordnet()
        except WordNetMissingError as e:
            raise ConfigError(f"augment={settings.name} needs WordNet: {e}") from None

    def transform(train_df: Any, seed: int) -> Any:
        import pandas as pd

        from tunelab.errors import ConfigError

        if "tokens" in train_df.columns or "text" not in train_df.columns:
            raise ConfigError(
                f"augment={settings.name} works on sentence-level text classification only: it "
                f"changes words, so token-level tags (NER) would no longer line up. Use augment=none."
            )
        labels = train_df["label"].tolist() if "label" in train_df.columns else [None] * len(train_df)
        texts, out_labels = settings.apply(train_df["text"].astype(str).tolist(), labels,
                                           seed=int(seed), wordnet=wordnet)
        out = pd.DataFrame({"text": texts})
        if "label" in train_df.columns:
            out["label"] = pd.Series(out_labels, dtype=train_df["label"].dtype)
        return out

    return transform
