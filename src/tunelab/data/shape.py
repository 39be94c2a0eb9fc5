"""Is a data file shaped as the config reads it? Checks that catch a file read "fine" but wrong.

Each of these files used to load without a word and train on something else than the user
meant: a header naming a column twice (pandas renamed the second ``label.1``, the first was
used), a JSON object with a key twice (the last wins), a JSON list or object where a text or
label goes (trained as its ``str()``), and a tab- or semicolon-separated file read as one
column (the error then said to pick one of the one column's names). Every check names the
file, the row or line, and the fix.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd

from tunelab.errors import DataError

# The column a file loader adds to each example: its row in the file (a CSV's line, the header
# being line 1), so an error found after rows were filtered out (an unknown label, checked once the
# label options are applied) still names where to fix it. make_splits drops it before anything else.
SOURCE_ROW = "_row"

# Separators a one-column header may really hold: name, and how to write it as data.delimiter.
SEPARATORS = {"\t": ("tab", "\\t"), ";": ("semicolon", ";"), "|": ("pipe", "|"), ",": ("comma", ",")}


def delimiter(cfg: Any, path: Path) -> str:
    """``data.delimiter`` with ``\\t`` meaning a tab (what a shell passes for ``'\\t'``), else by suffix."""
    if cfg.delimiter:
        return "\t" if cfg.delimiter in ("\\t", "tab") else cfg.delimiter
    return "\t" if path.suffix in (".tsv", ".tab") else ","


def check_header(text: str, sep: str, path: Path) -> None:
    """A header that names a column twice is refused."""
    if len(sep) != 1:
        return
    try:
        header = next(csv.reader(io.StringIO(text.split("\n", 1)[0]), delimiter=sep))
    except (StopIteration, csv.Error):
        return
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise DataError(f"{path}: the header names column(s) {twice} more than once; rename or remove the "
                        f"duplicates so that data.text_column / data.label_column name one column each.")


def check_separator(df: pd.DataFrame, col: str, path: Path) -> None:
    """Column ``col`` is missing and the file was read as one column whose name holds ``col`` and
    another separator: say which delimiter the file uses (else the caller lists the columns)."""
    if len(df.columns) != 1:
        return
    header = str(df.columns[0])
    found = next((sep for sep in SEPARATORS if sep in header and col in header.split(sep)), None)
    if found is not None:
        name, value = SEPARATORS[found]
        tsv = " (or name the file .tsv)" if found == "\t" else ""
        raise DataError(f"{path}: the header {header!r} was read as one column, but it is {name}-separated: "
                        f"set data.delimiter='{value}'{tsv}.")


def unique_keys(path: Path, line: int) -> Callable[[list], dict]:
    """``json.loads(object_pairs_hook=...)`` that refuses an object with a key twice."""
    def hook(pairs: list) -> dict:
        keys = [k for k, _ in pairs]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise DataError(f"{path}: line {line}: key {twice!r} appears twice in one object (JSON keeps the "
                            f"last silently); remove the duplicate.")
        return dict(pairs)
    return hook


def check_scalars(df: pd.DataFrame, columns: Sequence[str], path: Path, row_offset: int) -> None:
    """Texts and labels are strings or numbers, not JSON lists or objects."""
    for col in columns:
        nested = df[col].map(lambda v: isinstance(v, (list, dict))).to_numpy().nonzero()[0]
        if len(nested):
            kind = "list" if isinstance(df[col].iloc[nested[0]], list) else "object"
            raise DataError(f"{path}: row {int(nested[0]) + row_offset}: column '{col}' holds a JSON {kind}, not "
                            f"a text or a label; give a string (or a number) there.")
