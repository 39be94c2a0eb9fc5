"""The per-run result file (schema: docs/RESULTS_SCHEMA.md), written atomically (tunelab.io)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
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


def git_commit() -> str | None:
    """HEAD of the repository this code runs from, with ``-dirty`` if it has local changes."""
    from tunelab.environment import git_state

    g = git_state()
    return None if g["commit"] is None else g["commit"] + ("-dirty" if g["dirty"] else "")
