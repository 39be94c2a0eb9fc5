"""One job of a study: build data, model and Trainer from the config, train, test, record.

``hydra_main`` is what ``train.py`` calls. Whatever happens, the job's ``results.json`` says
so: it is written as ``running`` at the start, then ``ok`` with the metrics or ``failed`` with
the error. In a multirun a failed job is recorded and the sweep goes on; a single run exits
non-zero (2 for a user error, with a one-paragraph message instead of a stack trace).

Which code runs is named by the config: ``method._target_`` (``conf/method/<name>.yaml``) is a
function ``(cfg, ctx) -> dict`` that returns the part of the record it knows (metrics, params,
...). Nothing is chosen by which modules were imported. Before it runs, ``tunelab.validation``
checks the whole config (unknown keys, choices, ranges, combinations) without loading data or
a model, and before Lightning, transformers or torch are imported (nothing above imports
them): a config error, a refused combination or a ``resume=auto`` skip answers in about the time
Hydra takes to compose the config.

How a run flows: ``train.py`` -> Hydra composes ``conf/`` against the schemas
(``tunelab.config``) -> :func:`run` validates and calls the method (``tunelab.methods.*``) ->
data (``tunelab.data``) -> model + LightningModule (``tunelab.models``) -> Trainer
(``tunelab.training``) -> ``results.json`` (``tunelab.results``) -> at the end of a sweep the
report (``tunelab.report``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from tunelab import seeds
from tunelab.context import RunContext
from tunelab.cost import attempt_wall_s, begin_job, job_cost
from tunelab.environment import environment_record, library_versions
from tunelab.errors import ConfigError, TunelabError
from tunelab.io import scrub_secrets
from tunelab.ops import inputs
from tunelab.ops.ddp import is_rank_zero
from tunelab.results import SCHEMA_VERSION, git_commit, utcnow, write_results
from tunelab.validation import check_data_files, method_name, validate

log = logging.getLogger("tunelab")


# --------------------------------------------------------------------------- the job


def base_record(cfg: DictConfig, ctx: RunContext) -> dict:
    from tunelab.models.loading import model_label
    from tunelab.models.policy import policy_of

    return {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "error": None,
        "task": cfg.task.name,
        "method": method_name(cfg),
        "model": model_label(cfg.model) if "model" in cfg else None,
        "data": cfg.data.name if "data" in cfg else None,
        "freeze": policy_of(cfg).name if "freeze" in cfg else None,
        "seed": int(cfg.seed),
        # The seeds in effect (tunelab.seeds): equal to seed unless init_seed/order_seed were set.
        "init_seed": seeds.init_seed(cfg),
        "order_seed": seeds.order_seed(cfg),
        "metrics": {},
        "majority_rate": None,
        "pred_class_counts": None,
        "label_names": None,
        "n_examples": None,
        "params": None,
        # What trains (tunelab.models.plan): filled in by the method.
        "plan": None,
        "overrides": ctx.overrides,
        "choices": ctx.choices,
        "config": scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
        "duration_s": None,
        "started_at": utcnow(),
        "finished_at": None,
        "git_commit": git_commit(),
        "versions": library_versions(),
        "identity": ctx.identity,
        "environment": environment_record(),
        "output_dir": str(ctx.out_dir),
        "extra": {},
    }


def job_inputs(cfg: DictConfig) -> dict:
    """What a job's results.json keeps as ``inputs`` (tunelab.ops.inputs), the data configs its
    curriculum stages or adaptation corpus name included (composed on the run's search path), and
    the WordNet its EDA copies are drawn from."""
    from functools import partial

    from tunelab.augment.transform import wordnet_read
    from tunelab.config import compose_option

    found = inputs.fingerprint(cfg, options=partial(compose_option, "data"))
    wn = wordnet_read(cfg.get("augment"))
    return {**found, **inputs.wordnet(wn)} if wn is not None else found


def _check_same_inputs(cfg: DictConfig, out_dir: Path, now: dict) -> None:
    """A job dir whose record was made from other file contents (same config) is neither skipped
    as ok nor continued from its checkpoints (tunelab.ops.inputs)."""
    try:
        rec = json.loads((Path(out_dir) / "results.json").read_text())
    except (OSError, ValueError):
        return
    recorded = rec.get("inputs") if isinstance(rec, dict) else None
    moved = inputs.changed(recorded, inputs.asked(recorded, now))
    if not moved:
        return
    what = inputs.say(moved, rec["inputs"])
    if rec.get("status") == "ok":
        raise ConfigError(f"{out_dir}/results.json says ok, but {what} changed since that run (file content, or a hub model's or dataset's commit): its "
                          f"results are of the old files; delete {out_dir} to run the job again on these.")
    if any(Path(out_dir).rglob("*.ckpt")):
        raise ConfigError(f"the checkpoints in {out_dir} were trained while {what} held other content: refusing to "
                          f"continue them on the new; delete {out_dir}/checkpoints to start the job over.")


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    """Run one job and write its results.json; raises what went wrong after recording it.

    The job dir is locked first (tunelab.ops.lock): a second process in the same dir stops with
    exit 2 before it writes anything."""
    from tunelab.ops.identity import job_identity
    from tunelab.ops.interrupt import reset
    from tunelab.ops.lock import JobLock

    begin_job()
    try:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TunelabError(f"cannot create the output dir {ctx.out_dir}: {e.strerror}. Choose a writable "
                           f"dir (hydra.run.dir / hydra.sweep.dir).") from None
    reset()
    ctx.identity = job_identity(cfg)
    lock = JobLock(ctx.out_dir) if is_rank_zero() else None  # ranks > 0 run inside rank 0's job
    if lock is not None:
        lock.acquire()
    try:
        return _run_locked(cfg, ctx)
    finally:
        if lock is not None:
            lock.release()


def _run_locked(cfg: DictConfig, ctx: RunContext) -> dict:
    from tunelab.ops import ddp, interrupt
    from tunelab.ops.identity import job_already_ok, mismatch_message, recorded_identity

    resume = cfg.get("resume")
    now = job_inputs(cfg)  # the files the config names, by content; a hub model or dataset by its commit
    if resume is not None and resume.get("mode") == "auto":
        # Only the same job is skipped or resumed; another config's dir is never written to.
        exists, recorded = recorded_identity(ctx.out_dir)
        if exists and recorded != ctx.identity:
            raise ConfigError(mismatch_message(ctx.out_dir, recorded, ctx.identity))
        _check_same_inputs(cfg, ctx.out_dir, now)
        done = job_already_ok(ctx.out_dir)
        if done is not None:
            log.info(f"[tunelab] resume=auto: {ctx.out_dir / 'results.json'} already says ok; skipping the job")
            return done
    record = base_record(cfg, ctx)
    record["inputs"] = now
    if is_rank_zero():
        write_results(ctx.out_dir, record)
    if is_rank_zero() and "trainer" in cfg and ddp.is_multiprocess_strategy(cfg.trainer):
        ddp.prepare_ddp_children(ctx.out_dir, ctx.overrides)
    try:
        validate(cfg)
        check_data_files(cfg)  # a job's own files: not part of validate, which checks configs alone
        runner = method_entry(cfg)
        import lightning as L

        from tunelab.ops import faults

        L.seed_everything(seeds.init_seed(cfg), workers=True, verbose=False)
        try:
            record.update(runner(cfg, ctx))
        except FloatingPointError as e:  # modules.py: non-finite training loss
            raise faults.NonFiniteLossError(str(e)) from e
        from tunelab.calibration.job import job_metrics

        record["metrics"].update(job_metrics(record.get("predictions")))  # ECE, Brier, NLL, temperature
        save_predictions(record, ctx.out_dir)
        record["status"] = "ok"
        if is_rank_zero():
            from tunelab.degenerate import warn_if_degenerate

            record["degenerate"] = warn_if_degenerate(record, cfg, log)
    except BaseException as e:  # KeyboardInterrupt too: the file must not say "running"
        if interrupt.requeued(e):  # SLURM requeues the job (tunelab.ops.preempt): it is not over
            record["requeued_at"] = utcnow()
            raise
        signal_name = interrupt.received()
        if signal_name is not None:  # Ctrl-C or kill, whatever exception it became on the way
            record["status"] = "interrupted"
            record["error"] = {"type": "Interrupted", "signal": signal_name,
                               "message": f"stopped by {interrupt.describe(signal_name)}; run the same command "
                                          f"with resume=auto to continue it"}
        else:
            record["status"] = "failed"
            record["error"] = {"type": type(e).__name__, "message": _message(e)}
            if not isinstance(e, TunelabError):
                record["error"]["traceback"] = traceback.format_exc(limit=20)
        raise
    finally:
        record["duration_s"] = round(attempt_wall_s(), 3)  # this attempt; cost.wall_s: every attempt
        record["cost"] = job_cost()
        record["finished_at"] = utcnow()
        record["inputs"].update(inputs.hub_entries(cfg))  # the commit a hub repo's first load downloaded
        if record["environment"].get("gpu") is None:  # known once torch is loaded (environment.py)
            record["environment"] = environment_record()
        if ctx.logger is not None:
            from tunelab.loggers import finish_logger

            finish_logger(ctx.logger,
                          summary={k: v for k, v in record.get("metrics", {}).items()} | {"status": record["status"]},
                          exit_code=0 if record["status"] == "ok" else 1)
        if is_rank_zero():
            write_results(ctx.out_dir, record)
    return record


def _message(e: BaseException) -> str:
    """The error's text; exceptions that carry none (SystemExit, KeyboardInterrupt, Lightning's
    SIGTERMException) are named by what they mean."""
    if str(e) and not isinstance(e, SystemExit):
        return str(e)
    if isinstance(e, SystemExit):
        return f"the process was made to exit (SystemExit, code {e.code}) during the job"
    return f"{type(e).__name__} (raised without a message)"


def save_predictions(record: dict, out_dir: Path) -> None:
    """A runner may return its test ``predictions`` (``tunelab.predictions.Predictions``): they go
    to their own file (``predictions.npz``), and results.json only names it."""
    preds = record.pop("predictions", None)
    if preds is None or not is_rank_zero():
        return
    from tunelab import predictions

    record.setdefault("extra", {})["predictions_file"] = predictions.write(out_dir, preds).name


def method_entry(cfg: DictConfig):
    """The function ``method._target_`` names (conf/method/<name>.yaml)."""
    from hydra.utils import get_method

    target = cfg.method._target_
    try:
        return get_method(target)
    except Exception as e:  # an import error inside the module, or a wrong name
        raise ConfigError(f"method._target_={target!r} cannot be loaded ({e}); the shipped methods are "
                          f"conf/method/*.yaml.") from None


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import warnings

    for pattern in (".*does not have many workers.*", ".*The number of training batches.*",
                    ".*`isinstance\\(treespec, LeafSpec\\)`.*", ".*predict_dataloader.*",
                    ".*LeafSpec.*", ".*srun.*", ".*Checkpoint directory.*exists and is not empty.*",
                    # resume: the training loader (ResumableDataLoader) restores its own position.
                    ".*dataloader is\\s+not resumable.*", ".*ended before the epoch ended.*",
                    # Frozen blocks are kept in eval mode on purpose (no dropout on frozen features).
                    ".*module\\(s\\) in eval mode at the start of training.*"):
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _check_resume_dir(cfg: DictConfig) -> None:
    """resume=auto must find the same dir next time: a name or an explicit dir is required."""
    resume = cfg.get("resume")
    if resume is None or resume.get("mode") != "auto" or resume.get("name"):
        return
    from hydra.core.hydra_config import HydraConfig

    given = [o for o in HydraConfig.get().overrides.hydra if o.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    if not given:
        raise ConfigError("resume=auto needs a stable output dir, so that running the same command again "
                          "finds it: add resume.name=<name> (dir outputs/resume/<name>, or "
                          "multirun_outputs/resume/<name> for -m), or pass hydra.run.dir / hydra.sweep.dir.")


def hydra_main(cfg: DictConfig) -> Optional[float]:
    """Entry from ``train.py``. Returns the monitored validation metric (for sweepers)."""
    from tunelab.ops import interrupt

    interrupt.install()
    _quiet_libraries()
    ctx = RunContext.from_hydra()
    try:
        _check_resume_dir(cfg)
        record = run(cfg, ctx)
    except TunelabError as e:
        print(f"error: {e}", file=sys.stderr)
        log.error(f"job failed: {e}")
        if ctx.multirun:
            return None
        sys.exit(2)
    except Exception as e:
        if ctx.multirun:
            # The sweep goes on; the traceback is in the job's log and results.json.
            log.error(f"job failed ({type(e).__name__}: {e}); the sweep continues.\n{traceback.format_exc()}")
            print(f"error: job {ctx.job_num} failed: {type(e).__name__}: {e}", file=sys.stderr)
            return None
        raise
    except BaseException:
        name = interrupt.received()
        if name is None:  # a SLURM requeue's exit, a real KeyboardInterrupt from elsewhere
            raise
        # The job is recorded as interrupted; a sweep stops here (the user asked it to) and
        # prints its summary line, the rest of its jobs "not started".
        print(f"interrupted by {interrupt.describe(name)}: {ctx.out_dir / 'results.json'} says interrupted; "
              f"run the same command with resume=auto to continue.", file=sys.stderr, flush=True)
        if ctx.multirun and ctx.sweep_dir is not None:
            from tunelab.hydra_callbacks import sweep_summary

            sweep_summary(ctx.sweep_dir)
        sys.exit(interrupt.exit_code())
    m = record.get("metrics", {})
    shown = {k: round(v, 4) for k, v in m.items() if k.startswith(("test/", "test_ood/")) and isinstance(v, (int, float))}
    log.info(f"[tunelab] test metrics: {shown}")
    if record.get("majority_rate") is not None:
        log.info(f"[tunelab] majority-class accuracy on the same test split: {record['majority_rate']:.4f}")
    log.info(f"[tunelab] results: {ctx.out_dir / 'results.json'} ({record['duration_s']:.1f} s)")
    # For sweepers (Optuna): the best monitored value (the tested checkpoint's), else the last.
    # None (a failed job, a non-finite value) makes the Optuna sweeper mark the trial failed.
    monitor = cfg.task.get("monitor")
    value = (m.get(f"{monitor}_best", m.get(monitor))) if monitor else None
    if value is None or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        return None
    return float(value)
