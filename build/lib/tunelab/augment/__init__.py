"""EDA text augmentation (Wei & Zou, 2019) with an offline WordNet.

Modules: :mod:`~tunelab.augment.wordnet` finds and loads WordNet and looks up synonyms;
:mod:`~tunelab.augment.eda` holds the four operations and :func:`eda` on one sentence, pure
functions of their inputs and an explicit :class:`random.Random`;
:mod:`~tunelab.augment.transform` seeds one generator per example, augments a data set and builds
the training-split transform. The options (``augment.*``) are declared, and checked once, in
``tunelab.schemas.adaptation`` (``AugmentConfig``, ``check_augment``).

**Augmentation is applied to the TRAIN split only.** Validation and test examples must stay
exactly as collected: augmenting them would change what is being measured and, since augmented
copies are near-duplicates of their source, would also leak training sentences into evaluation if
the split were made after augmenting. The data module therefore splits first and then applies
:func:`train_transform` (which calls :func:`augment_examples`) to the training texts alone.

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

from tunelab.augment.eda import (
    STOP_WORDS,
    eda,
    get_only_chars,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from tunelab.augment.transform import augment_examples, example_rng, train_transform
from tunelab.augment.wordnet import WordNetMissingError, get_synonyms, load_wordnet

__all__ = [
    "STOP_WORDS",
    "WordNetMissingError",
    "augment_examples",
    "eda",
    "example_rng",
    "get_only_chars",
    "get_synonyms",
    "load_wordnet",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "synonym_replacement",
    "train_transform",
]
