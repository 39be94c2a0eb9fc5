"""The per-run result file (schema: docs/RESULTS_SCHEMA.md), written atomically.

A sweep is only as trustworthy as its result files: a job killed mid-write must leave either
the old file or the new one, never half of one. So every write goes to a temp file in the same
directory, is flushed and fsynced, and then ``os.replace``d over the target (atomic on POSIX).
"""

from __future__ import annotations

import errno
import json
import math
import os
import subprocess
import tempfile
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SECRET_MARKERS = ("api_key", "apikey", "token", "password", "secret")


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return _jsonable(x.item())
    if isinstance(x, Path):
        return str(x)
    return x


def scrub_secrets(obj: Any) -> Any:
    """Replace values of keys that look like credentials: configs are shared, keys are not."""
    if isinstance(obj, dict):
        return {k: ("***" if any(m in str(k).lower() for m in SECRET_MARKERS) and v else scrub_secrets(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub_secrets(v) for v in obj]
    return obj


def atomic_write(path: Path, write, *, binary: bool = False, error=TunelabError, what: str = "",
                 fix: str = "Free disk space or choose another output dir.") -> None:
    """Write ``path`` through ``write(file)`` into a temp file beside it, fsync, then rename over it.

    A kill or a full disk leaves either the old complete file or the new one, never a truncated
    one, and no temp file behind. On OSError raises ``error`` naming ``what`` and ``fix``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise error(f"cannot write {what}{path}: {e.strerror}. Check the output dir is writable "
                    f"(hydra.run.dir / hydra.sweep.dir) and the disk has space.") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # a kill mid-write too: never leave the temp file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            hint = " (disk full)" if e.errno == errno.ENOSPC else ""
            raise error(f"cannot write {what}{path}: {e.strerror or e}{hint}; no partial file was left "
                        f"behind. {fix}") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_results(out_dir: Path, record: dict) -> Path:
    path = Path(out_dir) / RESULTS_FILE
    atomic_write_text(path, json.dumps(_jsonable(record), indent=2, sort_keys=False) + "\n")
    return path


def read_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the repository this code runs from, with ``-dirty`` if it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
