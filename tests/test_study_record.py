"""The fair-fight study's dir (multirun_outputs/resume/fair_fight, kept between pieces, not tracked) stays resumable.

The README's study command, run again in a clone, skips a job whose results.json says ok only if
the current code gives the job's config the identity recorded there (tunelab.ops.identity). A new
config key with a default, a changed default, or an edited arm changes that hash for the jobs it
touches, and the study would quietly run hours of finished jobs again (or, for the arm that was
meant to change, rightly rerun them). One finished job of each arm and phase is checked: its
overrides (.hydra/overrides.yaml) composed by today's code must give its recorded identity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

RECORD = ROOT / "multirun_outputs" / "resume" / "fair_fight"


def _finished_jobs() -> dict[tuple[str, str], tuple[Path, list, str]]:
    """One ok job per (arm, phase), the lowest job number first: (dir, overrides, recorded identity)."""
    jobs: dict[tuple[str, str], tuple[Path, list, str]] = {}
    dirs = sorted((d for d in RECORD.glob("*") if d.name.isdigit()), key=lambda d: int(d.name))
    for d in dirs:
        try:
            rec = json.loads((d / "results.json").read_text())
            overrides = yaml.safe_load((d / ".hydra" / "overrides.yaml").read_text())
        except (OSError, ValueError):
            continue
        if rec.get("status") != "ok":
            continue
        values = dict(o.split("=", 1) for o in overrides if "=" in o)
        jobs.setdefault((values.get("arm", "?"), values.get("study.phase", "?")), (d, overrides, rec["identity"]))
    return jobs


def test_every_finished_arm_of_the_study_keeps_its_identity(compose):
    from tunelab.ops.identity import job_identity

    jobs = _finished_jobs()
    if not jobs:
        pytest.skip(f"no finished job in {RECORD}")
    changed = []
    for (arm, phase), (d, overrides, recorded) in sorted(jobs.items()):
        if job_identity(compose(overrides)) != recorded:
            changed.append(f"job {d.name} ({arm}, {phase})")
    assert not changed, (
        f"{', '.join(changed)}: today's code gives these finished jobs another identity, so the README's "
        "study command would run them again; a config change that was not "
        "meant to change what these arms compute must keep the hash (a new key's default, tunelab.ops.identity)")
