"""What the labels mean: class names and tag lists, checked before they become ids.

A run whose labels mean something else than the user thinks still ends ``ok``, with numbers
that look fine. Three such cases are caught here, for labels (``seq_cls``) and tags
(``token_cls``) alike:

* **one number, two spellings** (``0`` and ``0.0``, ``1`` and ``1.00``: a CSV written by two
  tools, a JSONL with ints and floats) used to become two classes each. Spellings that parse to
  the same number are one class, named by the spelling ``data.labels`` uses, else the most
  frequent one; the run's data notes say which were merged.
* **a rare label or tag** (``postive``, ``B-persn``): seen in fewer than :data:`RARE_MIN` rows
  *and* fewer than :data:`RARE_FRACTION` of them, when the classes are inferred from the data,
  it is far likelier a typo than a class, and it became one silently. It is an error naming it
  and the fixes, unless the classes are listed (``data.labels`` / ``data.tags``) or
  ``data.allow_rare_labels=true`` says it is meant.
* **a label or tag not in the given list** is an error naming the example (as before).

Rows counted: training examples for labels (classes are inferred from them), sentences of
every split the source provides for tags.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional

from tunelab.errors import DataError

log = logging.getLogger("tunelab")

RARE_MIN = 5
RARE_FRACTION = 0.005
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _number(spelling: str) -> Optional[float]:
    s = spelling.strip()
    return float(s) if _NUMBER.fullmatch(s) else None


def number_spellings(counts: Counter, listed: Iterable[str], what: str) -> dict[str, str]:
    """``{spelling: the class's spelling}`` for every label spelled as one number in several
    ways (module doc); the spelling ``listed`` (data.labels) uses wins, else the commonest."""
    listed = [str(x) for x in listed]
    groups: dict[float, list[str]] = defaultdict(list)
    for spelling in dict.fromkeys([*listed, *counts]):
        value = _number(spelling)
        if value is not None:
            groups[value].append(spelling)
    mapping = {}
    for spellings in groups.values():
        if len(spellings) < 2:
            continue
        named = [s for s in spellings if s in listed]
        if len(named) > 1:
            raise DataError(f"{what} lists {' and '.join(map(repr, named))}, which are the same number: keep one.")
        canon = named[0] if named else max(spellings, key=lambda s: (counts[s], -len(s), s))
        mapping.update({s: canon for s in spellings if s != canon})
    return mapping


def merged_note(mapping: dict[str, str], counts: Counter, what: str) -> Optional[str]:
    if not mapping:
        return None
    by_canon: dict[str, list[str]] = defaultdict(list)
    for s, c in mapping.items():
        by_canon[c].append(s)
    parts = [f"{' '.join(repr(x) for x in [c, *sorted(ss)])} -> {c!r} "
             f"({' + '.join(str(counts[x]) for x in [c, *sorted(ss)])} rows)" for c, ss in sorted(by_canon.items())]
    note = f"{what} spelled as the same number are one class: " + "; ".join(parts)
    log.info(f"[tunelab] {note}")
    return note


def check_rare(counts: Counter, total: int, what: str, rows: str, fixes: str, cfg: Any) -> None:
    """A label/tag in < RARE_MIN rows and < RARE_FRACTION of them is an error (module doc)."""
    if getattr(cfg, "allow_rare_labels", False):
        return
    rare = sorted((c, k) for k, c in counts.items() if c < RARE_MIN and c < RARE_FRACTION * total)
    if not rare or len(rare) == len(counts):
        return
    names = ", ".join(f"{k!r} ({c} of {total:,} {rows})" for c, k in rare)
    raise DataError(f"data '{cfg.name}': {what} {names}, in under {RARE_FRACTION:.1%} and under {RARE_MIN} {rows}, "
                    f"look like typos, not classes: fix the data, or set {fixes}, or data.allow_rare_labels=true to "
                    f"keep them as classes.")


def class_names(frames: dict, cfg: Any, notes: list[str]) -> list[str]:
    """Labels of every split -> the class list (``data.labels`` or inferred); frames are
    changed in place (label_map, merged spellings). Unknown labels are checked by the caller."""
    if cfg.label_map:
        mapping = {str(k): str(v) for k, v in cfg.label_map.items()}
        for df in frames.values():
            df["label"] = df["label"].map(lambda x: mapping.get(x, x))
    listed = [str(x) for x in cfg.labels] if cfg.labels is not None else []
    counts = Counter(x for df in frames.values() for x in df["label"])
    same = number_spellings(counts, [*listed, *map(str, cfg.drop_labels)], "data.labels/data.drop_labels")
    if same:
        for df in frames.values():
            df["label"] = df["label"].map(lambda x: same.get(x, x))
        notes.append(merged_note(same, counts, "labels"))
    if cfg.labels is not None:
        if len(set(listed)) != len(listed):
            raise DataError(f"data.labels has duplicates: {listed}.")
        return listed
    # Inferred from the training rows (a label only in test is an error naming it, by the caller).
    drop = set(map(str, cfg.drop_labels))
    kept = Counter(x for x in frames["train"]["label"] if x not in drop)
    check_rare(kept, sum(kept.values()), "label(s)", "rows",
               f"data.labels=[{','.join(sorted(x for x in kept if kept[x] >= RARE_MIN))}] (then other labels are "
               f"errors naming their row), +data.label_map={{<typo>:<label>}}, data.drop_labels=[<typo>]", cfg)
    return sorted(kept)


def tag_names(frames: dict, cfg: Any) -> list[str]:
    """The tag list of token classification: ``data.tags``, or ``O`` then the entity tags sorted
    by type then B/I (stable ids across runs); every tag in the data must be in it."""
    seen = Counter(t for df in frames.values() for tags in df["tags"] for t in set(tags))
    given = getattr(cfg, "tags", None)
    if given is not None:
        names = [str(t) for t in given]
        if len(set(names)) != len(names):
            raise DataError(f"data.tags has duplicates: {names}.")
        for split, df in frames.items():
            for i, tags in enumerate(df["tags"]):
                bad = [t for t in tags if t not in set(names)]
                if bad:
                    raise DataError(f"data '{cfg.name}' ({split} split): sentence {i} has tag {bad[0]!r}, not in "
                                    f"data.tags: add it to data.tags, or fix the data.")
        return names
    n_sentences = sum(len(df) for df in frames.values())
    check_rare(Counter({t: c for t, c in seen.items() if t != "O"}), n_sentences, "tag(s)", "sentences",
               "data.tags=[O,B-...,I-...] (every tag, in id order)", cfg)
    rest = sorted(set(seen) - {"O"}, key=lambda t: (t[2:], t[:1]))
    return ["O"] + rest
