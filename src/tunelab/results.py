"""The per-run result file (schema: docs/RESULTS_SCHEMA.md), written atomically (tunelab.io)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from tunelab.io import write_json

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_results(out_dir: Path, record: dict) -> Path:
    return write_json(Path(out_dir) / RESULTS_FILE, record)


def read_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())


LIBRARIES = ("tunelab", "torch", "lightning", "transformers", "datasets", "numpy", "scipy", "scikit-learn")


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Python and the versions of the libraries a result depends on (report headers show them)."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "tunelab" not in out:  # run from a source tree without installing
        from tunelab import __version__

        out["tunelab"] = __version__
    return out


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
