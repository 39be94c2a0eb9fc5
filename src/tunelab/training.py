"""Building and running the Lightning Trainer: the loop every encoder method shares.

Lightning owns the loop; this module only decides what the Trainer gets from the config:
checkpoints (best + last for resuming, written atomically), early stopping, the resume and
fault-injection callbacks, thread count, precision and the hardware of ``trainer``. Methods call
:func:`train_and_test` (fit, then test the best checkpoint) or :func:`build_trainer` directly.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from tunelab.io import scrub_secrets

log = logging.getLogger("tunelab")


# The job last warned: a sweep's jobs run one after another in one process, so the last job is
# all that must be remembered (a set of every job's folder would grow with the sweep).
_bf16_warned_job: Optional[str] = None


def warn_emulated_bf16(accelerator: str, precision: str, job: Optional[str] = None) -> bool:
    """bf16 on a CPU without bf16 units (no avx512_bf16 / amx_bf16) is emulated: measured ~1
    GFLOP/s against fp32's 169 on an AVX2 EPYC, training 1.9 samples/s against 42. Said once per
    job (``job``: its output folder), though a job may build several Trainers (LP-FT: two)."""
    import torch

    global _bf16_warned_job
    if "bf16" not in precision or accelerator not in ("cpu", "auto") or torch.cuda.is_available():
        return False
    if job is not None and job == _bf16_warned_job:
        return False
    from tunelab.environment import cpu_bf16_units

    if cpu_bf16_units():
        return False
    log.warning(f"warning: trainer.precision={precision} on a CPU without bf16 units (no avx512_bf16 or "
                "amx_bf16 in /proc/cpuinfo): bf16 is emulated here and about 20x slower than fp32; "
                "drop trainer=cpu_bf16 (fp32 is the default) unless the results must be bf16's.")
    _bf16_warned_job = job
    return True


def monitor_of(cfg: DictConfig, has_val: bool) -> tuple[Optional[str], str]:
    if not has_val:
        return None, "min"
    return cfg.task.monitor, cfg.task.monitor_mode


def build_trainer(cfg: DictConfig, out_dir: Path, logger, *, monitor: Optional[str], mode: str,
                  max_epochs: Optional[int] = None, extra_callbacks: Optional[list] = None,
                  ckpt_subdir: str = "checkpoints"):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from tunelab.ops.checkpoints import AtomicCheckpointIO
    from tunelab.ops.faults import fault_injection_callback
    from tunelab.ops.identity import job_identity
    from tunelab.ops.preempt import PreemptCheckpoint, slurm_plugins
    from tunelab.ops.resume import LAST_CKPT, ResumeStateCallback

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
        callbacks.append(ResumeStateCallback(identity=job_identity(cfg)))
        # Checkpoints are written atomically and loaded with torch.load(weights_only=True).
        plugins.append(AtomicCheckpointIO())
        # SLURM time limit / preemption: last.ckpt at once, submitit requeues (tunelab.ops.preempt).
        callbacks.append(PreemptCheckpoint(out_dir / ckpt_subdir / LAST_CKPT))
        plugins.extend(slurm_plugins())
    fault = fault_injection_callback()
    if fault is not None:
        callbacks.append(fault)
    if t.progress_every_n_steps and not sys.stdout.isatty():
        # a batch job's log: plain lines instead of a progress bar (tunelab.progress)
        from tunelab.progress import BatchProgress

        callbacks.append(BatchProgress(t.progress_every_n_steps))
    if monitor and o.early_stopping_patience:
        # With max_steps, training may end before the first validation: then the metric is
        # legitimately missing, and early stopping must not fail the run.
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=o.early_stopping_patience,
                                       strict=o.max_steps <= 0))
    if t.num_threads:
        import torch

        torch.set_num_threads(t.num_threads)
    warn_emulated_bf16(t.accelerator, str(t.precision), job=str(out_dir))
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return _trainer(L, t, o, out_dir, logger, callbacks, plugins, max_epochs)
    except (ValueError, TypeError, ImportError, MisconfigurationException) as e:
        msg = trainer_refusal(t, e)
        if msg is None:
            raise
        from tunelab.errors import ConfigError

        raise ConfigError(msg) from None


# The trainer keys Lightning checks when the Trainer is built (schema choices catch the misspelt
# accelerator or precision earlier; a strategy name, devices=0 or a missing package only here).
HARDWARE_KEYS = ("accelerator", "devices", "strategy", "precision", "num_nodes")


def trainer_refusal(t: Any, err: BaseException) -> Optional[str]:
    """One sentence for Lightning's refusal of the ``trainer`` settings; None when the error names
    none of them (then it is not the user's setting, and keeps its traceback)."""
    text = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
    named = [k for k in HARDWARE_KEYS if k in text.lower().replace("num nodes", "num_nodes")]
    if not named and not isinstance(err, ImportError):
        return None
    keys = named or list(HARDWARE_KEYS)  # a package the setting needs (tpu: torch_xla): any key may be it
    values = ", ".join(f"trainer.{k}={t.get(k)}" for k in keys)
    return (f"Lightning refused {values} ({text}): fix {'it' if len(keys) == 1 else 'them'}, or choose a "
            f"preset (trainer=cpu|cpu_bf16|gpu|ddp).")


def _trainer(L, t, o, out_dir: Path, logger, callbacks: list, plugins: list, max_epochs: Optional[int]):
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
    """Train, then test the best checkpoint (or the final weights when there is none), and the
    same weights on the out-of-domain split when the data have one (:func:`test_ood`)."""
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
    metrics.update(test_ood(trainer, module, dm))
    return metrics


def test_ood(trainer, module, dm) -> dict:
    """``test_ood/*``: one more test pass, on the out-of-domain loader (``dm.ood_dataloader()``,
    tunelab.data.ood), of the weights the in-domain test just scored (no checkpoint is loaded
    again). The module logs under the split it is told (``test_split``); the in-domain pass and
    its numbers are untouched. Nothing without an OOD split."""
    loader = dm.ood_dataloader() if hasattr(dm, "ood_dataloader") else None
    if loader is None:
        return {}
    module.test_split = "test_ood"
    try:
        trainer.test(module, dataloaders=loader, verbose=False)
    finally:
        module.test_split = "test"
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test_ood/")}


def tidy_checkpoints(cfg: DictConfig, out_dir: Path, subdir: str = "checkpoints") -> None:
    """After a run ends well, ``last.ckpt`` (kept for resuming) is no longer needed."""
    keep = cfg.trainer.get("keep_checkpoints", "best")
    ck = out_dir / subdir
    if not ck.exists() or keep == "all" or rank_zero_only.rank != 0:
        return
    if keep == "none":
        shutil.rmtree(ck, ignore_errors=True)
    else:
        (ck / "last.ckpt").unlink(missing_ok=True)


def start_logger(cfg: DictConfig, ctx, *, job_type: Optional[str] = None):
    """The experiment logger of a job (kept on ``ctx`` so the job can close it even on failure)."""
    from tunelab.loggers import build_logger, wandb_run_id

    logger = build_logger(cfg.logger, ctx.out_dir, run_name=run_name(ctx), group=ctx.group,
                          tags=ctx.swept_tags, config=scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
                          job_type=job_type or cfg.task.name, run_id=wandb_run_id(ctx.identity, ctx.out_dir))
    ctx.logger = logger
    return logger


def train_and_test(cfg: DictConfig, ctx, module, datamodule, *, has_val: bool,
                   ckpt_path: Optional[str] = None) -> tuple[dict, Any]:
    """The shared tail of every encoder runner: parameter summary, logger, trainer, fit + test
    (on the best checkpoint), checkpoint tidy-up. Returns (test metrics, trainer)."""
    for line in module.param_summary():
        log.info(f"[tunelab] {line}")
    monitor, mode = monitor_of(cfg, has_val)
    logger = start_logger(cfg, ctx)
    trainer = build_trainer(cfg, ctx.out_dir, logger, monitor=monitor, mode=mode)
    metrics = fit_and_test(cfg, trainer, module, datamodule, ckpt_path=ckpt_path)
    tidy_checkpoints(cfg, ctx.out_dir)
    return metrics, trainer


def resolve_ckpt(cfg: DictConfig, ctx, subdir: str = "checkpoints") -> Optional[str]:
    """``ckpt_path`` if given; with ``resume=auto`` the job's own last checkpoint, if any."""
    if not cfg.ckpt_path:
        resume = cfg.get("resume")
        if resume is not None and resume.mode == "auto":
            from tunelab.ops.resume import last_checkpoint

            last = last_checkpoint(ctx.out_dir, subdir)
            if last is not None:
                log.info(f"[tunelab] resume=auto: continuing from {last}")
                return str(last)
        return None
    from tunelab.locate import require_file

    return str(require_file(cfg.ckpt_path, "ckpt_path"))


def run_name(ctx) -> str:
    tags = ctx.overrides
    return ",".join(tags) if tags else ctx.out_dir.name
