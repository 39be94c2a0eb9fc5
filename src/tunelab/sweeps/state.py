"""A sweeper's state file in the sweep dir: its setup, its rounds of jobs and their outcomes.

Why on disk: the process that runs a sweeper may be killed (a laptop closed, a login node's
session ended, OOM) while its jobs live on in their dirs. Running the same command again must
continue the same study: the same jobs in the same dirs, nothing that finished run again, and the
decisions taken from the same data. So the state holds *facts* — the setup, and for each round
the jobs planned (numbers, overrides) and, once the wave is back, what each did — written
atomically (``tunelab.io``) before a wave is launched and after it returns. What follows from the
facts (the rule's decisions) is recomputed from them on every start and written beside them for
readers (``analysis``).

A sweep dir holds one study: a second command whose setup differs (other arms, seeds, metric or
rule) is refused with one sentence rather than mixing its data into the first — unless no round
of the first was complete (nothing was decided: a corrected command simply starts over).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from tunelab.errors import ConfigError
from tunelab.io import write_json
from tunelab.results import utcnow
from tunelab.sweeps.jobs import FINISHED, JobSpec, Launch, Outcome, run_wave
from tunelab.sweep_state import SCHEMA, read_state


@dataclass
class Round:
    index: int
    jobs: list[JobSpec]
    outcomes: dict[str, dict] = field(default_factory=dict)  # job key -> outcome record
    complete: bool = False

    def to_dict(self) -> dict:
        return {"index": self.index, "complete": self.complete,
                "jobs": [dict(j.to_dict(), **({"outcome": self.outcomes[j.key]} if j.key in self.outcomes else {}))
                         for j in self.jobs]}

    @classmethod
    def from_dict(cls, d: dict) -> "Round":
        jobs = [JobSpec(j["key"], int(j["num"]), list(j["overrides"]), dict(j.get("tags") or {})) for j in d["jobs"]]
        outcomes = {j["key"]: j["outcome"] for j in d["jobs"] if "outcome" in j}
        return cls(int(d["index"]), jobs, outcomes, bool(d.get("complete")))


def outcome_record(o: Outcome, metric: Union[str, Sequence[str], None] = None) -> dict:
    """What the state keeps of an outcome: enough to decide again without the job dirs.
    ``metric``: a name, or names of which the first the run has gives the value."""
    rec = {"status": o.status, "dir": o.dir, "cpu_s": o.cpu_s, "problem": o.problem}
    if metric is not None:
        names = [metric] if isinstance(metric, str) else list(metric)
        rec["value"] = o.metric(next((m for m in names if m in o.metric_names), names[-1]))
        fp = o.fingerprint()
        rec["fingerprint"] = [list(x) for x in fp] if fp is not None else None
    return rec


def finish_round(state: "SweepState", rnd: Round, launch: Launch, sweep_dir: Path, metric: Union[str, Sequence[str]],
                 validate: Optional[Callable[[list], None]] = None) -> None:
    """Launch the round's unfinished jobs, then record every job's outcome and mark the round
    complete. An ok run without the metric stops the study with one sentence (a typo in
    ``hydra.sweeper.metric``, or a run without that split): deciding on nothing would be worse."""
    names = [metric] if isinstance(metric, str) else list(metric)
    outcomes = run_wave(launch, sweep_dir, rnd.jobs, validate)
    for job in rnd.jobs:
        o = outcomes[job.key]
        if o.status == "ok" and not any(m in o.metric_names for m in names):
            raise ConfigError(f"hydra.sweeper.metric={names[-1]} is not a metric of "
                              f"{Path(sweep_dir) / str(o.dir) / 'results.json'}; its metrics are: "
                              f"{', '.join(o.metric_names) or 'none'}.")
        rec = outcome_record(o, names)
        if o.status not in FINISHED:  # the wave is back and the job never finished: lost
            rec["problem"] = rec["problem"] or "the job left no finished results.json"
        rnd.outcomes[job.key] = rec
    rnd.complete = True
    state.save()


class SweepState:
    """``<sweep dir>/<name>``: ``setup`` (what defines the study), ``rounds``, ``facts`` (what the
    sweeper decided that no job records: the tune sweeper's trials and their values), ``analysis``."""

    def __init__(self, path: Path, kind: str, setup: dict):
        self.path, self.kind, self.setup = Path(path), kind, setup
        self.rounds: list[Round] = []
        self.facts: dict = {}
        self.analysis: dict = {}
        self.created_at = utcnow()

    @classmethod
    def open(cls, sweep_dir: Path, name: str, kind: str, setup: dict) -> "SweepState":
        """The study in ``sweep_dir`` (continued), or a new one; ConfigError when the dir holds
        another study (its setup differs: the differing keys are named)."""
        path = Path(sweep_dir) / name
        state = cls(path, kind, setup)
        data = read_state(path)
        if data is None:
            return state
        old = data.get("setup") or {}
        rounds = [Round.from_dict(r) for r in data.get("rounds") or []]
        if (data.get("kind") != kind or _plain(old) != _plain(setup)) and not any(r.complete for r in rounds):
            return state  # nothing was decided yet: the new setup replaces the old one
        if data.get("kind") != kind or _plain(old) != _plain(setup):
            keys = sorted(k for k in set(old) | set(setup) if _plain(old.get(k)) != _plain(setup.get(k)))
            raise ConfigError(f"{path} holds a {data.get('kind')} study with another setup ({', '.join(keys) or 'kind'} "
                              f"differ), so it is not continued: choose another sweep dir (hydra.sweep.dir or "
                              f"resume.name), or delete {path.name} there to start over.")
        state.rounds = rounds
        state.facts = data.get("facts") or {}
        state.analysis = data.get("analysis") or {}
        state.created_at = data.get("created_at") or state.created_at
        return state

    def next_num(self) -> int:
        return 1 + max((j.num for r in self.rounds for j in r.jobs), default=-1)

    def add_round(self, jobs: list[JobSpec]) -> Round:
        r = Round(len(self.rounds) + 1, jobs)
        self.rounds.append(r)
        self.save()
        return r

    def save(self) -> None:
        write_json(self.path, {"schema": SCHEMA, "kind": self.kind, "created_at": self.created_at,
                               "updated_at": utcnow(), "setup": self.setup,
                               "rounds": [r.to_dict() for r in self.rounds], "facts": self.facts,
                               "analysis": self.analysis})


def _plain(x):
    """JSON round trip: a setup compares equal to the one read back from the file."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))
