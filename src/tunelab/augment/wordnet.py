"""Where WordNet is, loading it once, and looking up synonyms in it.

WordNet comes from Debian's ``wordnet-base`` package (WordNet 3.0, ``/usr/share/wordnet``);
NLTK's own downloader needs the internet, which the project machines do not have. Which
directory is read: the path given, else ``$TUNELAB_WORDNET``, else Debian's. A missing
install fails with a message that names the command which installs it.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["WordNetMissingError", "get_synonyms", "load_wordnet", "wordnet_dir"]

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


class WordNetMissingError(FileNotFoundError):
    """WordNet database files are not where tunelab looked; the message says how to install."""


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


def wordnet_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The dict directory :func:`load_wordnet` reads (same rule; raises the same error)."""
    return _find_wordnet_dir(path)


def load_wordnet(path: str | os.PathLike[str] | None = None) -> Any:
    """Load WordNet 3.0 from disk with NLTK's ``WordNetCorpusReader``; no download.

    Where: ``path`` if given, else ``$TUNELAB_WORDNET`` if set, else ``/usr/share/wordnet``
    (Debian/Ubuntu ``wordnet-base``). A missing directory or file raises
    :class:`WordNetMissingError` naming the install command.

    Two adaptations let NLTK read Debian's files in place:

    * Debian ships no ``lexnames`` file, which the reader opens at start-up; the fixed WordNet 3.0
      list is served from memory when the directory lacks it (a full NLTK ``wordnet`` corpus
      directory, which has the file, works unchanged). See :mod:`tunelab.augment.reader`.
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

    from tunelab.augment.reader import DictDirWordNetReader

    if root not in [str(p) for p in nltk.data.path]:
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        # Expected: we pass no Open Multilingual WordNet reader.
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        reader = DictDirWordNetReader(root, None)
    version = reader.get_version()
    if version != "3.0":
        warnings.warn(
            f"WordNet at {root} reports version {version!r}; EDA was specified with WordNet 3.0",
            stacklevel=3,
        )
    return reader


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
