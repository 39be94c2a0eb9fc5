"""Read labelled examples from every supported source into one shape.

Each loader returns ``Raw``: pandas frames for the splits the source itself provides (most
provide one table, which ``splits.py`` divides), with columns
  * ``text`` and ``label`` (a string class name, or None when labels are not needed) for
    sequence classification and masked LM, or
  * ``tokens`` and ``tags`` (lists of strings) for token classification.

Every problem names the file, the line/row and the config key that fixes it. Rows are never
dropped silently: what a loader removes is counted in ``Raw.dropped`` and printed.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from tunelab.config import FILE_SOURCES
from tunelab.data import ood, shape
from tunelab.data.topics import TOPICS, TWEET_DOMAINS, tweet_domain  # noqa: F401 (importable from here)
from tunelab.errors import DataError, HubUnavailableError
from tunelab.locate import require_file, resolve_local

TOKEN_TASKS = {"token_cls"}
# Tasks that need no label column (texts only).
UNLABELLED_TASKS = {"mlm"}


@dataclass
class Raw:
    """What a source provides, before splitting."""

    train: pd.DataFrame
    val: Optional[pd.DataFrame] = None
    test: Optional[pd.DataFrame] = None
    # The out-of-domain test split (tunelab.data.ood), when data.ood_* asks for one.
    test_ood: Optional[pd.DataFrame] = None
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n


# --------------------------------------------------------------------------- helpers


def _read_text(path: Path, encoding: str, key: str = "data.encoding") -> str:
    if path.is_dir():
        raise DataError(f"{path} is a directory; data.path must name a file (data=bbc_news reads "
                        f"one folder per class).")
    try:
        text = path.read_bytes().decode(encoding)
    except LookupError:
        raise DataError(f"{key}={encoding!r} is not an encoding Python knows; use e.g. utf-8, latin-1 "
                        f"or cp1252 (the file's real encoding).") from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path}: not valid {encoding} (byte {e.start}: {e.object[e.start:e.start + 8]!r}). "
            f"Set `{key}=latin-1` (or the file's real encoding)."
        ) from None
    # Universal newlines, as a file opened in text mode gives; no byte-order mark (Excel writes
    # one before a UTF-8 CSV's header, which then named no column).
    return text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")


def _lines(text: str) -> list[str]:
    """JSONL/CoNLL lines: split at newlines only; str.splitlines() also splits at U+2028, U+0085
    and other characters a JSON string or a token may hold."""
    return text.split("\n")


def _require_columns(df: pd.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    """``wanted`` maps config key -> column name."""
    for key, col in wanted.items():
        if col not in df.columns:
            shape.check_separator(df, col, path)
            raise DataError(
                f"{path}: no column '{col}' (asked for by {key}). "
                f"Columns in the file: {list(df.columns)}. Set `{key}=<one of them>`."
            )


def _as_text_label(df: pd.DataFrame, path: Path, cfg: Any, task: str, raw_offset: int = 2,
                   rows: bool = False) -> pd.DataFrame:
    """Select/rename the text and label columns and check every text is present; ``rows``: keep
    each example's row in the file (``shape.SOURCE_ROW``, row = index + ``raw_offset``)."""
    need_label = task not in UNLABELLED_TASKS
    wanted = {"data.text_column": cfg.text_column}
    if need_label:
        wanted["data.label_column"] = cfg.label_column
    _require_columns(df, path, wanted)
    out = pd.DataFrame({"text": df[cfg.text_column]})
    out["label"] = df[cfg.label_column].astype(str) if need_label else None
    if need_label:
        missing = df[cfg.label_column].isna()
        if missing.any():
            row = int(missing.to_numpy().nonzero()[0][0]) + raw_offset
            raise DataError(
                f"{path}: row {row}: empty label in column '{cfg.label_column}' "
                f"({int(missing.sum())} rows in all). Fill or remove them."
            )
    shape.check_scalars(df, list(wanted.values()), path, raw_offset)
    empty = out["text"].isna() | (out["text"].astype(str).str.strip() == "")
    if empty.any():
        row = int(empty.to_numpy().nonzero()[0][0]) + raw_offset
        raise DataError(
            f"{path}: row {row}: empty text in column '{cfg.text_column}' "
            f"({int(empty.sum())} empty rows in all). Remove them or fix the column."
        )
    out["text"] = out["text"].astype(str)
    if rows:
        out[shape.SOURCE_ROW] = range(raw_offset, raw_offset + len(out))
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- loaders


def _load_csv_file(path: Path, cfg: Any, task: str) -> pd.DataFrame:
    sep = shape.delimiter(cfg, path)
    text = _read_text(path, cfg.encoding)
    shape.check_header(text, sep, path)
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                         na_values=[""], quoting=csv.QUOTE_MINIMAL)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (no header, no rows); data.path must name a CSV "
                        f"with a header line and one example per row.") from None
    except pd.errors.ParserError as e:
        # pandas' message spans lines and starts with its tokenizer's name: keep what it found
        said = " ".join(str(e).split()).replace("Error tokenizing data. C error: ", "").rstrip(".")
        raise DataError(f"{path}: cannot parse as CSV (delimiter {sep!r}): {said}; fix that line, or set "
                        f"`data.delimiter=` if the file uses another separator.") from None
    if df.empty:
        raise DataError(f"{path}: the file has a header but no rows.")
    return _as_text_label(df, path, cfg, task, rows=True)


def _load_jsonl_file(path: Path, cfg: Any, task: str) -> pd.DataFrame:
    records = []
    for i, line in enumerate(_lines(_read_text(path, cfg.encoding)), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line, object_pairs_hook=shape.unique_keys(path, i))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: not valid JSON ({e.msg}). Each line must be one object.") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}: line {i}: expected a JSON object, got {type(rec).__name__}.")
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no records.")
    df = pd.DataFrame.from_records(records)
    if task in TOKEN_TASKS:
        _require_columns(df, path, {"data.tokens_column": cfg.tokens_column, "data.tags_column": cfg.tags_column})
        out = pd.DataFrame({"tokens": df[cfg.tokens_column], "tags": df[cfg.tags_column]})
        _check_token_rows(out, path, line_of=lambda i: i + 1)
        return out
    return _as_text_label(df, path, cfg, task, raw_offset=1, rows=True)


def _check_token_rows(df: pd.DataFrame, path: Path, line_of) -> None:
    for i, (toks, tags) in enumerate(zip(df["tokens"], df["tags"])):
        if not toks:
            raise DataError(f"{path}: sentence at line {line_of(i)} has no tokens.")
        if len(toks) != len(tags):
            raise DataError(
                f"{path}: sentence at line {line_of(i)}: {len(toks)} tokens but {len(tags)} tags."
            )


def _load_conll_file(path: Path, cfg: Any, task: str) -> pd.DataFrame:
    """``token<TAB>tag`` per line (or space separated), blank line between sentences."""
    sentences, starts = [], []
    tokens, tags, start = [], [], None
    for i, line in enumerate(_lines(_read_text(path, cfg.encoding)), start=1):
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                starts.append(start)
            tokens, tags, start = [], [], None
            continue
        if line.startswith("-DOCSTART-"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            raise DataError(
                f"{path}: line {i}: expected 'token<TAB>tag', got {line!r} "
                f"({len(parts)} field). Every non-blank line needs a token and a tag."
            )
        if start is None:
            start = i
        tokens.append(parts[0])
        tags.append(parts[-1])
    if tokens:
        sentences.append((tokens, tags))
        starts.append(start)
    if not sentences:
        raise DataError(f"{path}: no sentences found.")
    bad = [(s, t) for (tok, tg), s in zip(sentences, starts) for t in tg
           if not re.fullmatch(r"O|[BIES]-.+", t)]
    if bad:
        s, t = bad[0]
        raise DataError(f"{path}: sentence at line {s}: tag {t!r} is not BIO (O, B-x, I-x).")
    if task not in TOKEN_TASKS:
        return pd.DataFrame({"text": [" ".join(t) for t, _ in sentences], "label": None})
    return pd.DataFrame({"tokens": [t for t, _ in sentences], "tags": [g for _, g in sentences]})


def _load_table(path: Path, cfg: Any, task: str) -> pd.DataFrame:
    if cfg.source == "jsonl" or path.suffix == ".jsonl":
        return _load_jsonl_file(path, cfg, task)
    if cfg.source == "conll":
        return _load_conll_file(path, cfg, task)
    return _load_csv_file(path, cfg, task)


def load_files(cfg: Any, task: str) -> Raw:
    """csv/jsonl/conll: ``data.path`` plus optional ``data.val_path`` / ``data.test_path``."""
    train = require_file(cfg.path, "data.path")
    raw = Raw(train=_load_table(train, cfg, task))
    for split, key in (("val", "val_path"), ("test", "test_path")):
        if not getattr(cfg, key):
            continue
        path = require_file(getattr(cfg, key), f"data.{key}")
        if path.exists() and train.exists() and path.samefile(train):
            # every held-out example would also be a training example: scores say nothing
            raise DataError(f"data.{key}={getattr(cfg, key)} is the training file data.path itself: a held-out split "
                            f"must hold other examples; give another file, or unset data.{key} to split one off.")
        setattr(raw, split, _load_table(path, cfg, task))
    return raw


def load_bbc_dir(cfg: Any, task: str) -> Raw:
    """One folder per class, one article per .txt file (BBC News)."""
    root = require_file(cfg.path, "data.path")
    if not root.is_dir():
        raise DataError(f"{root}: data.source=bbc_dir expects a folder with one sub-folder per class.")
    rows, notes = [], []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(class_dir.glob("*.txt")):
            try:
                text = f.read_text(encoding=cfg.encoding)
            except UnicodeDecodeError:
                # The packaged corpus has one article that is not UTF-8; it is Latin-1 text, so
                # it is decoded as such and said so rather than dropped.
                text = f.read_text(encoding="latin-1")
                notes.append(f"{f.relative_to(root)} is not {cfg.encoding}; decoded as latin-1")
            if not text.strip():
                raise DataError(f"{f}: empty article.")
            rows.append({"text": text.strip(), "label": class_dir.name})
    if not rows:
        raise DataError(f"{root}: no <class>/*.txt files found.")
    return Raw(train=pd.DataFrame(rows), notes=notes)


def load_drug_zip(cfg: Any, task: str) -> Raw:
    """Drugs.com reviews: a zip with train and test TSVs; the sentiment is in ``rating``."""
    path = require_file(cfg.path, "data.path")
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a zip archive; data.source=drug_zip expects the Drugs.com zip "
                        f"with drugsComTrain.tsv/drugsComTest.tsv (use data=csv for a plain TSV).")
    frames = {}
    with zipfile.ZipFile(path) as z:
        for member in z.namelist():
            split = "test" if "test" in member.lower() else "train"
            df = pd.read_csv(z.open(member), sep="\t", dtype=str, keep_default_na=False, na_values=[""])
            # Reviews are wrapped in triple quotes and carry HTML entities (&#039;).
            df[cfg.text_column] = df[cfg.text_column].map(
                lambda s: html.unescape(s).strip().strip('"').strip() if isinstance(s, str) else s)
            frames[split] = _as_text_label(df, Path(f"{path}!{member}"), cfg, task)
    return Raw(train=frames["train"], test=frames.get("test"))


def load_hf(cfg: Any, task: str) -> Raw:
    """Any ``datasets.load_dataset`` name; offline this fails with a message, not a stack dump."""
    if not cfg.hf_name:
        raise DataError("data.source=hf needs `data.hf_name=<dataset id>` (e.g. data.hf_name=sst2).")
    import datasets

    try:
        dd = datasets.load_dataset(cfg.hf_name, cfg.hf_config)
    except Exception as e:  # connection errors come in many types across datasets versions
        raise HubUnavailableError(
            f"could not load dataset '{cfg.hf_name}' from the Hugging Face hub "
            f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}). "
            f"Without network access use a packaged dataset (data=tweets_sentiment, drug_reviews, "
            f"bbc_news, wnut_ner) or a local file (data=csv data.path=...)."
        ) from None
    out = {}
    for split, name in (("train", "train"), ("val", "validation"), ("test", "test")):
        if name not in dd:
            continue
        df = dd[name].to_pandas()
        if task in TOKEN_TASKS:
            _require_columns(df, Path(cfg.hf_name), {"data.tokens_column": cfg.tokens_column,
                                                     "data.tags_column": cfg.tags_column})
            feat = dd[name].features[cfg.tags_column]
            names = getattr(getattr(feat, "feature", None), "names", None)
            tags = df[cfg.tags_column].map(lambda t: [names[i] for i in t] if names else list(t))
            out[split] = pd.DataFrame({"tokens": df[cfg.tokens_column].map(list), "tags": tags})
            continue
        feat = dd[name].features.get(cfg.label_column)
        names = getattr(feat, "names", None)
        if names is not None:
            df[cfg.label_column] = df[cfg.label_column].map(lambda i: names[i] if i >= 0 else None)
            # Hub test splits often hide labels as -1: such a split cannot be evaluated.
            if df[cfg.label_column].isna().all():
                continue
        out[split] = _as_text_label(df, Path(cfg.hf_name), cfg, task)
    if "train" not in out:
        raise DataError(f"dataset '{cfg.hf_name}' has no labelled 'train' split.")
    return Raw(**out)


LOADERS = {
    **{source: load_files for source in FILE_SOURCES},
    "bbc_dir": load_bbc_dir,
    "drug_zip": load_drug_zip,
    "hf": load_hf,
}


def load_raw(cfg: Any, task: str) -> Raw:
    """Load ``data`` config for ``task``; hold out the out-of-domain test split and apply the
    domain filter if asked (in that order: the filter keeps one topic of what is left)."""
    raw = LOADERS[cfg.source](cfg, task)
    ood.take_out(raw, cfg, read=lambda path: _load_table(require_file(path, "data.ood_test_path"), cfg, task))
    if cfg.domain:
        if cfg.domain not in TOPICS:
            raise DataError(f"data.domain={cfg.domain!r} is not one of {TOPICS}.")
        for split in ("train", "val", "test"):
            df = getattr(raw, split)
            if df is None:
                continue
            keep = tweet_domain(df["text"]) == cfg.domain
            raw.drop(f"{split}: not in domain '{cfg.domain}'", int((~keep).sum()))
            setattr(raw, split, df[keep].reset_index(drop=True))
        if raw.train.empty:
            raise DataError(f"data.domain={cfg.domain!r}: no rows of '{cfg.name}' match that domain.")
    return raw


def is_local_source(cfg: Any) -> bool:
    return cfg.source != "hf" and resolve_local(cfg.path) is not None
