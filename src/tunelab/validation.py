"""Every check of a composed config that a single field cannot express, in one place.

``validate(cfg)`` runs before any data or model is loaded (a typo fails in milliseconds, not
after the model loaded; ``freeze.n`` deeper than the model fails when the plan reads the model's
config, still before any weights: :mod:`tunelab.models.plan`). It raises :class:`~tunelab.errors.ConfigError` with
one sentence that names the conflict and the fix. Three layers, in order:

1. the schema walk (``tunelab.schemas.checks``): unknown keys (``+optim.lrr``), closed choices,
   ranges declared on the dataclass fields;
2. checks across fields (``data.val_size + data.test_size < 1``);
3. the combination table: for each method, which tasks, freeze policies, strategies, adaptation
   and augmentation it runs with. A combination is either run as its words say, or refused
   here — never run while ignoring a key. The table is printed in the README (Combinations).
"""

from __future__ import annotations

from typing import Any, Optional

from tunelab.errors import ConfigError
from tunelab import seeds
from tunelab.schemas.checks import check_config

# method -> the prediction tasks it implements
TASKS = {
    "finetune": ("seq_cls", "token_cls", "mlm"),
    "sparse": ("seq_cls",),
    "features": ("seq_cls",),
    "zeroshot": ("seq_cls",),
    "curriculum": ("seq_cls",),
    "adapt": ("seq_cls", "token_cls"),
}
# methods that apply ``augment`` to their training texts (and the tasks where EDA keeps labels)
AUGMENTS = ("finetune", "adapt")


def _name(node: Any, default: Optional[str] = None) -> Optional[str]:
    return default if node is None else str(node.get("name", default))


def method_name(cfg: Any) -> str:
    return _name(cfg.get("method"), "finetune")


# What each task's module logs on validation (tunelab.models.modules, tunelab.metrics): what
# task.monitor may watch (early stopping, the best checkpoint, the sweepers' objective), and
# whether higher is better (tunelab.metrics.higher_is_better, as the report reads every metric).
MONITORS = {"seq_cls": ("val/acc", "val/f1", "val/f1_macro", "val/loss"),
            "token_cls": ("val/acc", "val/f1", "val/f1_macro", "val/precision", "val/recall", "val/loss"),
            "mlm": ("val/loss", "val/perplexity")}


def check_monitor(task: Any) -> None:
    """A misspelt ``task.monitor`` ended in Lightning's traceback after the first epoch, and a
    monitor whose direction contradicts ``task.monitor_mode`` (``task.monitor=val/loss`` under
    seq_cls's max) kept the worst checkpoint and stopped early on improvement, silently."""
    import difflib

    from tunelab.metrics import best_mode

    monitor, mode = str(task.get("monitor") or ""), str(task.get("monitor_mode") or "")
    allowed = MONITORS.get(str(task.name))
    if not monitor or allowed is None:
        return
    if monitor not in allowed and not monitor.startswith("train/loss"):
        close = difflib.get_close_matches(monitor, allowed, n=1, cutoff=0.6)
        hint = f" (did you mean task.monitor={close[0]}?)" if close else ""
        raise ConfigError(f"task.monitor={monitor} is not a metric task={task.name} logs on validation{hint}: "
                          f"choose one of {', '.join(allowed)}.")
    want = best_mode(monitor)
    if mode and mode != want:
        raise ConfigError(f"task.monitor={monitor} is {'lower' if want == 'min' else 'higher'}-is-better but "
                          f"task.monitor_mode={mode}: the worst checkpoint would be kept; set task.monitor_mode={want}.")


def check_fields(cfg: Any) -> None:
    """Relations between fields of one group."""
    d, o = cfg.data, cfg.optim
    if d.val_size + d.test_size >= 1.0:
        raise ConfigError("data.val_size + data.test_size must leave some training data (< 1).")
    if cfg.task.name == "seq_cls" and d.text_column == d.label_column:
        raise ConfigError(f"data.text_column and data.label_column are both '{d.text_column}': the model would be "
                          f"given its answer as the text; set data.text_column=<the column of texts>.")
    if o.epochs < 1 and o.max_steps < 1:
        raise ConfigError("optim.epochs must be >= 1 (or set optim.max_steps).")
    if cfg.get("augment") is not None:
        from tunelab.schemas.adaptation import check_augment

        check_augment(cfg.augment)
    if cfg.get("method") is not None:
        from tunelab.schemas.methods import check_method

        check_method(cfg.method)
    check_monitor(cfg.task)
    if cfg.task.name == "mlm":
        check_masking(cfg.task, "task")
    if cfg.get("search"):  # the tune sweeper's space: inert here, but a typo fails now, not at tuning
        from tunelab.schemas.search import check_search

        check_search(cfg)


def check_hardware(cfg: Any) -> None:
    """A GPU preset on a machine without one fails here, not deep inside Lightning."""
    t = cfg.trainer
    if str(t.accelerator) in ("gpu", "cuda"):
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        want = t.devices if isinstance(t.devices, int) else 1
        if n == 0:
            raise ConfigError(f"trainer.accelerator={t.accelerator} but no CUDA GPU is visible here "
                              "(torch.cuda.is_available() is False): use trainer=cpu, or trainer=ddp "
                              "trainer.accelerator=cpu for DDP over CPU processes.")
        if want > n:
            raise ConfigError(f"trainer.devices={t.devices} but only {n} CUDA GPU(s) are visible: lower "
                              f"trainer.devices to {n}.")


def check_combination(cfg: Any) -> None:
    """The method x task x freeze x strategy x adapt x augment table."""
    from tunelab.models.policy import check_policy, policy_of

    method = method_name(cfg)
    task = cfg.task.name
    strategy = _name(cfg.get("strategy"))
    curriculum = _name(cfg.get("curriculum"))
    adapt = _name(cfg.get("adapt"), "none")
    augment = _name(cfg.get("augment"), "none")

    if task not in TASKS.get(method, (task,)):
        hint = {"mlm": "; masked-LM training on a corpus before fine-tuning is adapt=tapt|dapt"}.get(task, "")
        raise ConfigError(f"method={method} does not support task={task} (it supports "
                          f"{', '.join(TASKS[method])}): change task= or method={hint}.")
    if task == "token_cls" and cfg.data.source not in ("conll", "hf"):
        raise ConfigError(f"task=token_cls needs word-level tags, but data.source={cfg.data.source} gives "
                          f"whole texts with one label: use data=conll (token<TAB>tag lines), data=wnut_ner "
                          f"or data=hf, or task=seq_cls for this data.")
    if curriculum is not None and adapt != "none":
        raise ConfigError(f"adapt={adapt} and curriculum={curriculum} cannot be combined (adaptation runs "
                          f"before one fine-tuning run): adapt first with adapt.skip_finetune=true, then run "
                          f"the curriculum with model.path=<job dir>/adapted_encoder.")
    if curriculum is not None and method != "curriculum":
        raise ConfigError(f"curriculum={curriculum} runs as method=curriculum, but method={method} was "
                          "asked for: drop method= (a curriculum selects it) or drop curriculum=.")
    if strategy is not None and method != "curriculum":
        raise ConfigError(f"strategy={strategy} applies to curricula: add curriculum=related|unrelated|custom "
                          "(one dataset: curriculum=custom 'curriculum.stages=[tweets_sentiment]'), "
                          "or drop strategy=.")
    if method == "curriculum" and (curriculum is None or not cfg.curriculum.stages):
        raise ConfigError("method=curriculum needs stages: choose curriculum=related|unrelated, or "
                          "curriculum=custom 'curriculum.stages=[...]'.")
    if adapt != "none" and method != "adapt":
        raise ConfigError(f"adapt={adapt} runs as method=adapt (adaptation, then fine-tuning), but "
                          f"method={method} was asked for: drop method= or use adapt=none.")
    if method == "adapt" and adapt == "none":
        raise ConfigError("method=adapt needs adapt=tapt or adapt=dapt (adapt=none is plain fine-tuning: "
                          "method=finetune).")
    if adapt != "none":
        check_adapt(cfg.adapt)
    if augment != "none":
        if method not in AUGMENTS:
            raise ConfigError(f"augment={augment} is applied by fine-tuning only (method=finetune|adapt), "
                              f"not method={method}: drop augment=.")
        if task != "seq_cls":
            raise ConfigError(f"augment={augment} rewrites whole texts and keeps their label, which needs "
                              f"task=seq_cls (task={task} labels tokens/words): drop augment=.")
    # The freeze policy's own rules (tunelab.models.policy: the one reading of ``freeze``).
    check_policy(policy_of(cfg), method=method, task=task, strategy=strategy, augment=augment)
    # The out-of-domain test split's own rules (tunelab.data.ood).
    from tunelab.data import ood

    ood.check(cfg, method)


def check_adapt(a: Any) -> None:
    """The rules across ``adapt.*`` fields (ranges are declared on the schema, AdaptConfig).

    Which texts the masked-LM stage reads is fixed by ``adapt.name``: tapt reads the task's own
    training texts, so a corpus given with it would be ignored; dapt has no default corpus.
    (Whether a named corpus exists needs the file system or the config search path: checked
    where it is read, ``tunelab.methods.adapt.corpus``.)
    """
    if a.name == "tapt" and a.corpus:
        raise ConfigError("adapt=tapt uses the task's own training texts; adapt.corpus is for "
                          "adapt=dapt (unset it, or use adapt=dapt).")
    if a.name == "dapt" and not a.corpus:
        raise ConfigError("adapt=dapt needs a domain corpus: adapt.corpus=<data config name, e.g. "
                          "drug_reviews> or a .txt/.jsonl/.csv file of texts.")
    check_masking(a, "adapt")


def check_masking(node: Any, prefix: str) -> None:
    """BERT's masking split (``task`` for task=mlm, ``adapt`` for the MLM stage): of the selected
    tokens, mask_replace_prob -> [MASK], random_replace_prob -> a random token, the rest kept."""
    if node.mask_replace_prob + node.random_replace_prob > 1:
        raise ConfigError(f"{prefix}.mask_replace_prob + {prefix}.random_replace_prob must be <= 1 (the "
                          f"rest keep the original token).")


def check_data_files(cfg: Any) -> None:
    """A data file that does not exist is said before torch and Lightning load (~10 s later):
    the files tunelab.data.sources reads with require_file, which says the same sentence later."""
    ckpt = cfg.get("ckpt_path") if hasattr(cfg, "get") else None
    if ckpt:
        check_ckpt_path(str(ckpt))
    data = cfg.get("data") if hasattr(cfg, "get") else None
    if data is None:
        return
    from omegaconf import OmegaConf

    from tunelab.config import FILE_SOURCES
    from tunelab.locate import require_file

    # load_files (the file sources) reads path, val_path and test_path; every source reads ood_test_path
    files = ("path", "val_path", "test_path") if data.get("source") in FILE_SOURCES else ()
    for key in (*files, "ood_test_path"):
        if key not in data or OmegaConf.is_missing(data, key):
            continue  # a missing data.path is the schema's error, said elsewhere
        spec = data.get(key)
        if spec and isinstance(spec, str):
            require_file(spec, f"data.{key}")


def check_ckpt_path(spec: str) -> None:
    """``ckpt_path`` names a checkpoint file: a folder (a job dir, its checkpoints/) ended in an
    IsADirectoryError traceback when Lightning opened it."""
    from tunelab.errors import DataError
    from tunelab.locate import require_file

    p = require_file(spec, "ckpt_path")
    if p.is_dir():
        found = sorted(str(c) for c in p.rglob("*.ckpt"))[:3]
        hint = f" (in it: {', '.join(found)})" if found else " (it holds no .ckpt file)"
        raise DataError(f"ckpt_path={spec} is a folder, not a checkpoint file{hint}: give the .ckpt file itself, "
                        f"e.g. ckpt_path=<job dir>/checkpoints/last.ckpt.")


def check_cache_dir(cfg: Any) -> None:
    """``cache_dir`` (``$TUNELAB_CACHE`` when set) must be a folder that can be made and written:
    a file in its place ended in a NotADirectoryError traceback at the first cache write."""
    import os
    from pathlib import Path

    spec = cfg.get("cache_dir") if hasattr(cfg, "get") else None
    if not spec:
        return
    key = "TUNELAB_CACHE" if os.environ.get("TUNELAB_CACHE") == str(spec) else "cache_dir"
    probe = Path(os.path.expanduser(str(spec))).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the nearest part of the path that exists: the folder would be made in it
    why = (f"{probe} is a file" if not probe.is_dir() else
           f"{probe} is not writable" if not os.access(probe, os.W_OK | os.X_OK) else None)
    if why:
        raise ConfigError(f"{key}={spec} cannot be the cache folder ({why}): point {key} at a folder that "
                          f"can be created and written (e.g. {key}=$HOME/.cache/tunelab).")


def validate(cfg: Any) -> None:
    """All config checks, cheapest first. Raises ConfigError naming the key and the fix."""
    check_config(cfg)
    check_fields(cfg)
    check_combination(cfg)
    seeds.check(cfg, method_name(cfg))
    check_hardware(cfg)
    check_cache_dir(cfg)
    if "model" in cfg:
        from tunelab.locate import check_model_folder

        check_model_folder(cfg.model)
