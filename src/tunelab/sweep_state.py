"""Reading a sweeper's state file (written by ``tunelab.sweeps.state``): a leaf module below both
the report and the sweepers, so the report reads a study's state without importing the sweep
machinery (which reads job dirs through ``tunelab.report.collect``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from tunelab.errors import ConfigError

SCHEMA = "tunelab.sweep_state/1"
TUNE_STATE = "tune.json"  # the tune sweeper's state file in its sweep dir (tunelab.sweeps.tune)
ADAPTIVE_STATE = "adaptive.json"  # the adaptive seed sweeper's (tunelab.sweeps.adaptive)


def read_state(path: Path) -> Optional[dict]:
    """The state file's content, or None when there is none; ConfigError when it is unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is unreadable ({e}): delete it to start the study over, or choose another "
                          f"sweep dir.") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f"{path} is not a tunelab sweep state ({SCHEMA}): delete it, or choose another sweep dir.")
    return data
