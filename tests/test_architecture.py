"""The architecture holds: the import contracts of .importlinter (layers, methods as peers, no
cycles), and one reading of the freeze policy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--config", str(ROOT / ".importlinter")], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout and re.search(r"Contracts: \d+ kept, 0 broken", out.stdout)


def test_the_freeze_group_is_read_in_one_module():
    """Every other module asks tunelab.models.policy (through the plan), never cfg.freeze."""
    pattern = re.compile(r"\.freeze\b|\[\"freeze\"\]|[(,]\s*\"freeze\"\s*[,)]")
    readers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src" / "tunelab").rglob("*.py")
                     if any(pattern.search(line) and not line.lstrip().startswith("#")
                            for line in p.read_text().splitlines()
                            if "``" not in line and "`" not in line))
    assert readers == ["src/tunelab/models/policy.py"]
