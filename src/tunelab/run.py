"""One job of a study: build data, model and Trainer from the config, train, test, record.

``hydra_main`` is what ``train.py`` calls. Whatever happens, the job's ``results.json`` says
so: it is written as ``running`` at the start, then ``ok`` with the metrics or ``failed`` with
the error. In a multirun a failed job is recorded and the sweep goes on; a single run exits
non-zero (2 for a user error, with a one-paragraph message instead of a stack trace).

Tasks plug in through ``RUNNERS``: a runner takes ``(cfg, ctx)`` and returns the part of the
record it knows (metrics, params, ...). Encoder fine-tuning (seq_cls, token_cls, mlm) is here;
other tasks and curricula register their own runners in their modules.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import DictConfig, OmegaConf

from tunelab.config import validate
from tunelab.errors import TunelabError
from tunelab.io import scrub_secrets
from tunelab.results import SCHEMA_VERSION, git_commit, utcnow, write_results

log = logging.getLogger("tunelab")


@dataclass
class RunContext:
    """Where a job writes and what Hydra knows about it."""

    out_dir: Path
    multirun: bool = False
    overrides: list[str] = field(default_factory=list)
    choices: dict[str, Any] = field(default_factory=dict)
    sweep_dir: Optional[Path] = None
    job_num: Optional[int] = None
    # The experiment logger, kept so ``run`` can close it even when training fails.
    logger: Any = None

    @classmethod
    def from_hydra(cls) -> "RunContext":
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        multirun = hc.mode == RunMode.MULTIRUN
        return cls(
            out_dir=Path(hc.runtime.output_dir),
            multirun=multirun,
            overrides=list(hc.overrides.task),
            choices={k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")},
            sweep_dir=Path(hc.sweep.dir) if multirun else None,
            job_num=hc.job.num if multirun else None,
        )

    @property
    def group(self) -> str:
        """W&B group: one per sweep (or per single run)."""
        base = self.sweep_dir if self.multirun and self.sweep_dir else self.out_dir
        return "_".join(base.parts[-2:])

    @property
    def swept_tags(self) -> list[str]:
        return [o for o in self.overrides if not o.startswith(("seed=", "hydra"))]


Runner = Callable[[DictConfig, RunContext], dict]
RUNNERS: dict[str, Runner] = {}
# Hooks that may take over a whole job (a curriculum, a pretrain-then-finetune pipeline):
# each gets the config and returns a runner or None.
RUNNER_SELECTORS: list[Callable[[DictConfig], Optional[Runner]]] = []


def register_runner(task_name: str):
    def deco(fn: Runner) -> Runner:
        RUNNERS[task_name] = fn
        return fn
    return deco


def select_runner(cfg: DictConfig) -> Runner:
    _import_plugins()
    for selector in RUNNER_SELECTORS:
        runner = selector(cfg)
        if runner is not None:
            return runner
    try:
        return RUNNERS[cfg.task.name]
    except KeyError:
        raise TunelabError(f"task.name={cfg.task.name!r} has no runner; known: {sorted(RUNNERS)}") from None


PLUGIN_MODULES: list[str] = ["tunelab.baselines", "tunelab.curriculum", "tunelab.adapt", "tunelab.zeroshot",
                              "tunelab.frozen"]


def _import_plugins() -> None:
    """Modules that register runners for other tasks (imported lazily: they pull in sklearn...)."""
    import importlib

    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


# --------------------------------------------------------------------------- building blocks


def build_datamodule(cfg: DictConfig, tokenizer, *, data_cfg=None, task_cfg=None, splits=None,
                     train_transform=None):
    from tunelab.data.datamodule import TextDataModule

    return TextDataModule(
        data_cfg if data_cfg is not None else cfg.data, task_cfg if task_cfg is not None else cfg.task,
        tokenizer, max_length=cfg.model.max_length, batch_size=cfg.optim.batch_size,
        eval_batch_size=cfg.optim.eval_batch_size, seed=cfg.seed, cache_dir=cfg.cache_dir,
        splits=splits, train_transform=train_transform,
    )


def positive_index(label_names: list[str], data_cfg: Any) -> int:
    """Which class F1 is about for binary tasks: ``data.positive_label``, else the second."""
    pos = getattr(data_cfg, "positive_label", None)
    if pos is None:
        return 1
    if pos not in label_names:
        raise TunelabError(f"data.positive_label={pos!r} is not one of the labels {label_names}.")
    return label_names.index(pos)


def build_module(cfg: DictConfig, dm, *, model_cfg=None, task_name=None, model=None):
    """The task's LightningModule around a freshly loaded (or given) Hugging Face model."""
    from tunelab.models import load_model, print_load_report
    from tunelab.modules import TASK_MODULES

    task_name = task_name or cfg.task.name
    label_names = dm.label_names
    report = None
    if model is None:
        model, report = load_model(model_cfg or cfg.model, task_name,
                                   num_labels=len(label_names) if label_names else None,
                                   label_names=label_names)
        print_load_report(report, log.info)
    kw = dict(optim_cfg=cfg.optim, freeze_cfg=cfg.freeze, label_names=label_names, log=log.info)
    cls = TASK_MODULES[task_name]
    if task_name == "seq_cls":
        module = cls(model, num_labels=len(label_names), positive_index=positive_index(label_names, cfg.data), **kw)
    elif task_name == "token_cls":
        module = cls(model, num_labels=len(label_names), **kw)
    else:
        module = cls(model, **kw)
    return module, report


def monitor_of(cfg: DictConfig, has_val: bool) -> tuple[Optional[str], str]:
    if not has_val:
        return None, "min"
    return cfg.task.monitor, cfg.task.monitor_mode


def build_trainer(cfg: DictConfig, out_dir: Path, logger, *, monitor: Optional[str], mode: str,
                  max_epochs: Optional[int] = None, extra_callbacks: Optional[list] = None,
                  ckpt_subdir: str = "checkpoints"):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from tunelab import ops

    t, o = cfg.trainer, cfg.optim
    callbacks = list(extra_callbacks or [])
    plugins = []
    if t.enable_checkpointing:
        callbacks.append(ModelCheckpoint(
            dirpath=str(out_dir / ckpt_subdir), filename="best", monitor=monitor, mode=mode,
            save_top_k=1, save_last=True, auto_insert_metric_name=False, enable_version_counter=False))
        resume = cfg.get("resume")
        if resume is not None and resume.mode == "auto" and resume.every_n_steps > 0:
            # last.ckpt also every N optimiser steps, so a kill loses at most N steps.
            callbacks.append(ModelCheckpoint(
                dirpath=str(out_dir / ckpt_subdir), monitor=None, save_top_k=0, save_last=True,
                every_n_train_steps=int(resume.every_n_steps), enable_version_counter=False))
        # Sampler position and RNG states in every checkpoint: a resumed run continues exactly.
        callbacks.append(ops.resume_callback())
        # Checkpoints are written atomically and loaded with torch.load(weights_only=True).
        plugins.append(ops.atomic_checkpoint_io())
    fault = ops.fault_injection_callback()
    if fault is not None:
        callbacks.append(fault)
    if monitor and o.early_stopping_patience:
        # With max_steps, training may end before the first validation: then the metric is
        # legitimately missing, and early stopping must not fail the run.
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=o.early_stopping_patience,
                                       strict=o.max_steps <= 0))
    if t.num_threads:
        import torch

        torch.set_num_threads(t.num_threads)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, strategy=t.strategy, precision=t.precision,
        num_nodes=t.num_nodes, max_epochs=max_epochs or o.epochs, max_steps=o.max_steps,
        gradient_clip_val=o.grad_clip or None, accumulate_grad_batches=o.accumulate_grad_batches,
        val_check_interval=o.val_check_interval, logger=logger, callbacks=callbacks,
        default_root_dir=str(out_dir), deterministic=t.deterministic,
        log_every_n_steps=t.log_every_n_steps, enable_checkpointing=bool(t.enable_checkpointing),
        enable_progress_bar=t.enable_progress_bar, enable_model_summary=False,
        limit_train_batches=t.limit_train_batches, limit_val_batches=t.limit_val_batches,
        limit_test_batches=t.limit_test_batches,
        # Our length-grouped sampler shards itself across ranks; Lightning must not wrap it.
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
        plugins=plugins or None,
    )


def fit_and_test(cfg: DictConfig, trainer, module, dm, *, ckpt_path=None) -> dict:
    """Train, then test the best checkpoint (or the final weights when there is none)."""
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    # Validation metrics of the last epoch; the test below replaces callback_metrics.
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    best = None
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "best_model_path", ""):
            best = cb.best_model_path
            if cb.monitor and cb.best_model_score is not None:
                metrics[f"{cb.monitor}_best"] = float(cb.best_model_score)
    trainer.test(module, datamodule=dm, ckpt_path=best if best else None, verbose=False)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")})
    return metrics


def tidy_checkpoints(cfg: DictConfig, out_dir: Path, subdir: str = "checkpoints") -> None:
    """After a run ends well, ``last.ckpt`` (kept for resuming) is no longer needed."""
    keep = cfg.trainer.get("keep_checkpoints", "best")
    ck = out_dir / subdir
    if not ck.exists() or keep == "all" or not _is_rank_zero():
        return
    if keep == "none":
        shutil.rmtree(ck, ignore_errors=True)
    else:
        (ck / "last.ckpt").unlink(missing_ok=True)


def train_and_test(cfg: DictConfig, ctx: RunContext, module, datamodule, *, has_val: bool,
                   ckpt_path: Optional[str] = None) -> tuple[dict, Any]:
    """The shared tail of every encoder runner: parameter summary, logger, trainer, fit + test
    (on the best checkpoint), checkpoint tidy-up. Returns (test metrics, trainer)."""
    from tunelab.loggers import build_logger

    for line in module.param_summary():
        log.info(f"[tunelab] {line}")
    monitor, mode = monitor_of(cfg, has_val)
    logger = build_logger(cfg.logger, ctx.out_dir, run_name=run_name(ctx), group=ctx.group,
                          tags=ctx.swept_tags, config=scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
                          job_type=cfg.task.name)
    ctx.logger = logger
    trainer = build_trainer(cfg, ctx.out_dir, logger, monitor=monitor, mode=mode)
    metrics = fit_and_test(cfg, trainer, module, datamodule, ckpt_path=ckpt_path)
    tidy_checkpoints(cfg, ctx.out_dir)
    return metrics, trainer


@register_runner("seq_cls")
@register_runner("token_cls")
@register_runner("mlm")
def run_encoder(cfg: DictConfig, ctx: RunContext) -> dict:
    """Fine-tune an encoder on one task: the core of every study."""
    from tunelab.models import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    dm, splits = load_data(cfg, tokenizer)
    module, report = build_module(cfg, dm)
    metrics, trainer = train_and_test(cfg, ctx, module, dm, has_val=len(splits.val) > 0,
                                      ckpt_path=resolve_ckpt(cfg, ctx))
    if cfg.task.name == "mlm" and "test/loss" in metrics:
        from tunelab.modules import perplexity

        metrics["test/perplexity"] = perplexity(metrics["test/loss"])
    return encoder_record(cfg, metrics=metrics, splits=splits, module=module, trainer=trainer, dm=dm,
                          report=report)


def load_data(cfg: DictConfig, tokenizer):
    """Datamodule with its splits loaded, dropped rows and notes logged, tokenised for fit."""
    dm = build_datamodule(cfg, tokenizer, train_transform=train_transform_of(cfg))
    splits = dm.load()
    for reason, n in splits.dropped.items():
        log.info(f"[tunelab] dropped {n} rows: {reason}")
    for note in splits.notes:
        log.info(f"[tunelab] note: {note}")
    log.info(f"[tunelab] data '{cfg.data.name}': " +
             ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items()) +
             (f"; labels {splits.label_names}" if splits.label_names and cfg.task.name == "seq_cls" else ""))
    dm.setup("fit")
    return dm, splits


def encoder_record(cfg: DictConfig, *, metrics: dict, splits, module, trainer, dm, report, **extra) -> dict:
    """The part of results.json a fine-tuning runner fills in (``extra`` adds task-specific keys)."""
    from tunelab.data.splits import majority_rate

    return {
        "metrics": metrics,
        "majority_rate": majority_rate(splits) if cfg.task.name == "seq_cls" else None,
        "pred_class_counts": module.test_outputs.get("pred_class_counts"),
        "label_names": splits.label_names,
        "n_examples": splits.sizes(),
        "params": module.param_counts(),
        "extra": {
            "dropped_rows": splits.dropped,
            **label_counts(splits),
            "data_notes": splits.notes,
            "tokenization_cache_hits": dm.cache_hits,
            "model_load": {"missing": report.missing, "notes": report.notes} if report else None,
            "epochs_run": trainer.current_epoch,
            "steps_run": trainer.global_step,
            **extra,
        },
    }


def label_counts(splits) -> dict:
    """Class counts the report needs to score the majority-class baseline's F1 exactly."""
    names = splits.label_names
    if not names or "label" not in splits.train:
        return {}
    import numpy as np

    train = np.bincount(splits.train["label"], minlength=len(names))
    test = np.bincount(splits.test["label"], minlength=len(names))
    return {
        "majority_label": names[int(train.argmax())],
        "train_label_counts": {n: int(c) for n, c in zip(names, train)},
        "test_label_counts": {n: int(c) for n, c in zip(names, test)},
    }


def train_transform_of(cfg: DictConfig):
    """The training-split transform (augmentation), if the config asks for one."""
    aug = cfg.get("augment")
    if aug is None or aug.get("name", "none") == "none":
        return None
    from tunelab.augment import train_transform

    return train_transform(aug)


def resolve_ckpt(cfg: DictConfig, ctx: RunContext, subdir: str = "checkpoints") -> Optional[str]:
    """``ckpt_path`` if given; with ``resume=auto`` the job's own last checkpoint, if any."""
    if not cfg.ckpt_path:
        resume = cfg.get("resume")
        if resume is not None and resume.mode == "auto":
            from tunelab.ops import last_checkpoint

            last = last_checkpoint(ctx.out_dir, subdir)
            if last is not None:
                log.info(f"[tunelab] resume=auto: continuing from {last}")
                return str(last)
        return None
    from tunelab.locate import require_file

    return str(require_file(cfg.ckpt_path, "ckpt_path"))


def run_name(ctx: RunContext) -> str:
    tags = ctx.overrides
    return ",".join(tags) if tags else ctx.out_dir.name


# --------------------------------------------------------------------------- the job


def base_record(cfg: DictConfig, ctx: RunContext) -> dict:
    from tunelab.models import model_label

    return {
        "schema_version": SCHEMA_VERSION,
        "status": "running",
        "error": None,
        "task": cfg.task.name,
        "model": model_label(cfg.model) if "model" in cfg else None,
        "data": cfg.data.name if "data" in cfg else None,
        "freeze": cfg.freeze.name if "freeze" in cfg else None,
        "seed": int(cfg.seed),
        "metrics": {},
        "majority_rate": None,
        "pred_class_counts": None,
        "label_names": None,
        "n_examples": None,
        "params": None,
        "overrides": ctx.overrides,
        "choices": ctx.choices,
        "config": scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
        "duration_s": None,
        "started_at": utcnow(),
        "finished_at": None,
        "git_commit": git_commit(),
        "output_dir": str(ctx.out_dir),
        "extra": {},
    }


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    """Run one job and write its results.json; raises what went wrong after recording it."""
    from tunelab import ops

    t0 = time.time()
    try:
        ctx.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TunelabError(f"cannot create the output dir {ctx.out_dir}: {e.strerror}. Choose a writable "
                           f"dir (hydra.run.dir / hydra.sweep.dir).") from None
    resume = cfg.get("resume")
    if resume is not None and resume.get("mode") == "auto":
        done = ops.job_already_ok(ctx.out_dir)
        if done is not None:
            log.info(f"[tunelab] resume=auto: {ctx.out_dir / 'results.json'} already says ok; skipping the job")
            return done
    record = base_record(cfg, ctx)
    if _is_rank_zero():
        write_results(ctx.out_dir, record)
    if _is_rank_zero() and "trainer" in cfg and ops.is_multiprocess_strategy(cfg.trainer):
        ops.prepare_ddp_children(ctx.out_dir, ctx.overrides)
    try:
        _import_plugins()
        validate(cfg)
        import lightning as L

        L.seed_everything(int(cfg.seed), workers=True, verbose=False)
        runner = select_runner(cfg)
        try:
            record.update(runner(cfg, ctx))
        except FloatingPointError as e:  # modules.py: non-finite training loss
            raise ops.NonFiniteLossError(str(e)) from e
        record["status"] = "ok"
    except BaseException as e:  # KeyboardInterrupt too: the file must not say "running"
        record["status"] = "failed"
        record["error"] = {"type": type(e).__name__, "message": str(e) or type(e).__name__}
        if not isinstance(e, TunelabError):
            record["error"]["traceback"] = traceback.format_exc(limit=20)
        raise
    finally:
        record["duration_s"] = round(time.time() - t0, 3)
        record["finished_at"] = utcnow()
        from tunelab.loggers import finish_logger

        finish_logger(ctx.logger,
                      summary={k: v for k, v in record.get("metrics", {}).items()} | {"status": record["status"]},
                      exit_code=0 if record["status"] == "ok" else 1)
        if _is_rank_zero():
            write_results(ctx.out_dir, record)
    return record


def _is_rank_zero() -> bool:
    from tunelab.ops import is_rank_zero

    return is_rank_zero()


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
        from tunelab.errors import ConfigError

        raise ConfigError("resume=auto needs a stable output dir, so that running the same command again "
                          "finds it: add resume.name=<name> (dir outputs/resume/<name>, or "
                          "multirun_outputs/resume/<name> for -m), or pass hydra.run.dir / hydra.sweep.dir.")


def hydra_main(cfg: DictConfig) -> Optional[float]:
    """Entry from ``train.py``. Returns the monitored validation metric (for sweepers)."""
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
    m = record.get("metrics", {})
    shown = {k: round(v, 4) for k, v in m.items() if k.startswith("test/") and isinstance(v, (int, float))}
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
