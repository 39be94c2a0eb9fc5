"""NLTK's WordNet reader, adapted to read Debian's bare WordNet 3.0 files in place.

This module imports NLTK at import time (its base class is NLTK's), so it is imported only when
WordNet is actually loaded (:func:`tunelab.augment.wordnet.load_wordnet`): augmentation that
needs no synonyms, and every other part of tunelab, never pays for importing NLTK.
"""

from __future__ import annotations

import io
import os

from nltk.corpus.reader.wordnet import WordNetCorpusReader

__all__ = ["DictDirWordNetReader"]

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


class DictDirWordNetReader(WordNetCorpusReader):
    """WordNetCorpusReader for a bare WordNet 3.0 dict directory (see ``load_wordnet``)."""

    def open(self, fileid: str):  # noqa: A003 - NLTK's name
        if fileid == "lexnames" and not os.path.isfile(os.path.join(self.root.path, fileid)):
            return io.StringIO(_WN30_LEXNAMES_TEXT)
        return super().open(fileid)

    def map_wn(self, version: str = "wordnet"):
        # NLTK maps synsets of "other" WordNet versions onto its own downloaded 3.0 copy
        # through index.sense; this directory *is* 3.0, there is no other copy, and the
        # mapping only serves the multilingual functions.
        if self.get_version() == "3.0":
            return None
        return super().map_wn(version)
