"""Domain- and task-adaptive masked-LM pretraining, then fine-tuning (``adapt=tapt|dapt``).

One job, two stages:

1. **MLM on unlabelled text.** ``tapt`` (task-adaptive, Gururangan et al. 2020): the task's own
   *training* texts, exactly the rows stage 2 trains on (before any augmentation). ``dapt``
   (domain-adaptive): a separate corpus, ``adapt.corpus`` = a data config name under
   ``conf/data`` (its train split; e.g. ``drug_reviews``) or a ``.txt`` (one text per line),
   ``.jsonl``, ``.csv`` or ``.tsv`` file (column ``adapt.text_column``). Either way, any corpus
   text identical to one of the task's validation or test texts is removed (counted in the
   record), so stage 1 never sees what stage 2 is evaluated on.

   A part of the corpus (``adapt.heldout_size``, split with ``data.split_seed``, so every seed
   of a study shares it) is held out. Its MLM perplexity (exp of the mean loss over masked
   tokens, with the *same* seeded masks every time) is measured before adaptation, after the
   optional head-only warm-up, and after adaptation; early stopping watches it, and the best
   epoch's weights are kept. Because the held-out part also selects the epoch, ``ppl_after``
   is slightly optimistic; it is a diagnostic, the stage-2 test metrics are the result.

   *Head warm-up.* An encoder shipped without a trained MLM head (the packaged MiniLM) starts
   with a random head: its first perplexity is worse than a uniform guess over the vocabulary.
   ``adapt.head_warmup_steps`` trains only the head first (encoder and word embeddings -- to
   which the decoder is tied -- frozen), so "before" vs "after" compares a trained head on the
   original encoder with the adapted encoder. Both numbers and the raw starting point are kept.

   *Forgetting.* ``adapt.eval_original=<data config>``: the MLM perplexity on that data's
   held-out (test-split) texts (the task's own test texts when it names the task's data; texts
   that were in the MLM training corpus are left out), measured at the starting point (after the head warm-up) and
   after adaptation. A rise means the encoder moved away from the original domain. (Stage 2's
   test metrics on the task answer the downstream half of the question.)

   The adapted encoder (with its MLM head; the original pooler is copied in when the source
   checkpoint had one, so stage 2's classifier input is comparable with ``adapt=none``) is
   saved as a Hugging Face folder with safetensors and the tokenizer:
   ``<job dir>/adapted_encoder``. Any later run can use it with
   ``model.path=<job dir>/adapted_encoder``.

2. **Fine-tuning** through the normal path (``run.run_encoder``) with a copy of the config whose
   ``model.path`` is that folder; the RNG is reseeded first, so the new classifier head starts
   from the same draw as the ``adapt=none`` run of the same seed.

Results: the stage-2 record, plus metrics ``adapt/ppl_before``, ``adapt/ppl_after_warmup``,
``adapt/ppl_after`` (and ``adapt/ppl_original_before``/``_after``) and ``extra.adapt``.

The MLM stage trains the whole model (``freeze`` is stage 2's policy) with its own optimiser
settings (``adapt.lr``, ``adapt.epochs``, ...); masking follows ``adapt.mlm_probability`` etc.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from tunelab import config as _config
from tunelab.errors import ConfigError, DataError
from tunelab.methods.finetune import run_encoder

log = logging.getLogger("tunelab")

ADAPT_NAMES = ("none", "tapt", "dapt")
ENCODER_DIR = "adapted_encoder"
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
STAGE2_TASKS = ("seq_cls", "token_cls", "mlm")



# --------------------------------------------------------------------------- corpora


def data_config(name: str) -> DictConfig:
    """The ``conf/data/<name>.yaml`` config, checked against the data schema."""
    path = CONF_DIR / "data" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (CONF_DIR / "data").glob("*.yaml"))
        raise ConfigError(f"no data config '{name}' (looked for {path}); known: {known}.")
    return OmegaConf.merge(OmegaConf.structured(_config.DataConfig), OmegaConf.load(path))


def texts_of(df: pd.DataFrame) -> list[str]:
    if "text" in df.columns:
        return df["text"].astype(str).tolist()
    if "tokens" in df.columns:
        return [" ".join(map(str, t)) for t in df["tokens"]]
    raise DataError(f"no text column among {list(df.columns)}")


def task_splits(cfg: DictConfig):
    """The labelled task's splits exactly as stage 2 builds them (no augmentation applied)."""
    from tunelab.methods.finetune import build_datamodule

    return build_datamodule(cfg, None).load()


def _file_corpus(path: Path, a: DictConfig) -> list[str]:
    from tunelab.data.sources import load_raw

    suffix = path.suffix.lower()
    if suffix == ".txt":
        try:
            lines = path.read_text(encoding=a.encoding).splitlines()
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not valid {a.encoding} (byte {e.start}); set adapt.encoding.") from None
        return [ln.strip() for ln in lines if ln.strip()]
    if suffix in (".jsonl", ".json", ".csv", ".tsv"):
        node = OmegaConf.merge(OmegaConf.structured(_config.DataConfig), {
            "name": "adapt.corpus", "source": "jsonl" if suffix in (".jsonl", ".json") else "csv",
            "path": str(path), "text_column": a.text_column, "encoding": a.encoding,
            "delimiter": "\t" if suffix == ".tsv" else None})
        return texts_of(load_raw(node, "mlm").train)
    raise ConfigError(f"adapt.corpus={str(path)!r}: unsupported file type '{suffix}' "
                      f"(use .txt with one text per line, .jsonl, .csv or .tsv).")


def corpus_texts(cfg: DictConfig, task=None) -> tuple[list[str], str]:
    """``(texts, description)`` of the unlabelled MLM corpus for ``adapt.name`` (``task``: the
    task's splits when already loaded)."""
    from tunelab.locate import resolve_local

    a = cfg.adapt
    if a.name == "tapt":
        if a.corpus:
            raise ConfigError("adapt=tapt uses the task's own training texts; adapt.corpus is for "
                              "adapt=dapt (unset it, or use adapt=dapt).")
        return texts_of(task.train if task is not None else task_splits(cfg).train), f"tapt:{cfg.data.name}:train"
    if not a.corpus:
        raise ConfigError("adapt=dapt needs a domain corpus: adapt.corpus=<data config name, e.g. "
                          "drug_reviews> or a .txt/.jsonl/.csv file of texts.")
    spec = str(a.corpus)
    local = resolve_local(spec)
    if local is not None and local.is_file():
        return _file_corpus(local, a), f"file:{local}"
    if "/" in spec or "." in Path(spec).name:
        raise ConfigError(f"adapt.corpus={spec!r}: file not found (relative paths are taken from "
                          f"the launch dir).")
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    dc = data_config(spec)
    # Only the corpus's own training part: its test part may be someone's evaluation set.
    splits = make_splits(load_raw(dc, "mlm"), dc, "mlm")
    return texts_of(splits.train), f"data:{spec}:train"


def _norm(t: str) -> str:
    return " ".join(str(t).split())


def prepare_corpus(texts: list[str], cfg: DictConfig, forbidden: set[str]) -> dict:
    """Drop empties and texts equal to a task val/test text; cap; split off the held-out part."""
    a = cfg.adapt
    clean = [t for t in (str(x) for x in texts) if t.strip()]
    kept = [t for t in clean if _norm(t) not in forbidden]
    n_overlap = len(clean) - len(kept)
    rng = np.random.RandomState(int(cfg.data.split_seed))
    if a.max_texts is not None and len(kept) > a.max_texts:
        idx = np.sort(rng.choice(len(kept), size=int(a.max_texts), replace=False))
        kept = [kept[i] for i in idx]
    if len(kept) < 2:
        raise DataError(f"adapt={a.name}: the MLM corpus has {len(kept)} usable text(s) "
                        f"after removing {n_overlap} that also occur in the task's val/test splits.")
    if not 0 < a.heldout_size < 1:
        raise ConfigError(f"adapt.heldout_size={a.heldout_size} must be in (0, 1).")
    n_hold = min(max(1, int(round(len(kept) * a.heldout_size))), int(a.max_heldout), len(kept) - 1)
    perm = np.random.RandomState(int(cfg.data.split_seed) + 7).permutation(len(kept))
    held = [kept[i] for i in sorted(perm[:n_hold])]
    train = [kept[i] for i in sorted(perm[n_hold:])]
    return {"train": train, "heldout": held, "n_removed_overlap": n_overlap, "n_empty": len(texts) - len(clean)}


# --------------------------------------------------------------------------- MLM pieces


def mlm_task_cfg(a: DictConfig) -> DictConfig:
    for key in ("mlm_probability", "mask_replace_prob", "random_replace_prob"):
        if not 0 <= a[key] <= 1:
            raise ConfigError(f"adapt.{key}={a[key]} must be in [0, 1].")
    if a.mask_replace_prob + a.random_replace_prob > 1:
        raise ConfigError("adapt.mask_replace_prob + adapt.random_replace_prob must be <= 1.")
    if a.mlm_probability <= 0:
        raise ConfigError("adapt.mlm_probability must be > 0.")
    return OmegaConf.create({
        "name": "mlm", "label_all_tokens": False, "mlm_probability": a.mlm_probability,
        "mask_replace_prob": a.mask_replace_prob, "random_replace_prob": a.random_replace_prob,
        "whole_word_mask": a.whole_word_mask, "monitor": "val/loss", "monitor_mode": "min"})


def mlm_datamodule(cfg: DictConfig, tokenizer, train: list[str], heldout: list[str]):
    from tunelab.data.splits import Splits

    def frame(texts):
        return pd.DataFrame({"text": list(texts), "label": [None] * len(texts)})

    # Only train and val are tokenised (an empty test split is skipped).
    splits = Splits(train=frame(train), val=frame(heldout), test=frame([]), label_names=None)
    from tunelab.data.datamodule import TextDataModule

    dm = TextDataModule(cfg.data, mlm_task_cfg(cfg.adapt), tokenizer, max_length=cfg.model.max_length,
                        batch_size=int(cfg.adapt.batch_size or cfg.optim.batch_size),
                        eval_batch_size=cfg.optim.eval_batch_size, seed=cfg.seed, cache_dir=cfg.cache_dir,
                        splits=splits)
    dm.setup("fit")
    return dm


def _eval_device(cfg: DictConfig):
    import torch

    if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def heldout_loss(model, loader, device=None) -> float:
    """Mean MLM loss over the masked tokens of ``loader`` (eval mode, no grad)."""
    import torch

    was = model.training
    device = device or next(model.parameters()).device
    prev = next(model.parameters()).device
    model.to(device).eval()
    total, n = 0.0, 0
    try:
        with torch.inference_mode():
            for batch in loader:
                batch = {k: v.to(device) for k, v in batch.items() if k != "special_tokens_mask"}
                m = int((batch["labels"] != -100).sum())
                if m == 0:
                    continue
                total += float(model(**batch).loss) * m
                n += m
    finally:
        model.to(prev).train(was)
    if n == 0:
        raise DataError("the held-out MLM texts gave no masked tokens; add texts or raise adapt.heldout_size.")
    return total / n


def ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def _stage_cfg(cfg: DictConfig, optim: dict, trainer: Optional[dict] = None) -> DictConfig:
    c = cfg.copy()
    with open_dict(c):
        for k, v in optim.items():
            c.optim[k] = v
        for k, v in (trainer or {}).items():
            c.trainer[k] = v
    return c


def _freeze(mode: str) -> DictConfig:
    return OmegaConf.create({"name": mode, "mode": mode, "n": 0, "unfreeze_every": "epoch",
                             "unfreeze_k_steps": 100})


def head_warmup(cfg: DictConfig, model, dm, out_dir: Path) -> int:
    """Train only the MLM head for ``adapt.head_warmup_steps`` steps; returns steps run."""
    from tunelab.modules import MaskedLM
    from tunelab.training import build_trainer

    a = cfg.adapt
    steps = int(a.head_warmup_steps)
    c = _stage_cfg(cfg, {"lr": float(a.head_warmup_lr), "head_lr": None, "max_steps": steps,
                         "epochs": 10 ** 6, "early_stopping_patience": None, "warmup_ratio": 0.1,
                         "layer_decay": 1.0, "weight_decay": 0.0, "val_check_interval": 1.0},
                   {"enable_checkpointing": False, "limit_val_batches": 0})
    module = MaskedLM(model, optim_cfg=c.optim, freeze_cfg=_freeze("all"), log=log.info)
    trainer = build_trainer(c, out_dir, False, monitor=None, mode="min", max_epochs=10 ** 6)
    # from_pretrained returns eval mode and Lightning keeps submodule modes: switch dropout on
    # (EncoderModule.train keeps the frozen blocks in eval).
    module.train()
    trainer.fit(module, datamodule=dm)
    return int(trainer.global_step)


def _best_state_callback():
    import lightning as L

    class KeepBest(L.Callback):
        """Keeps the weights of the epoch with the lowest held-out MLM loss in memory (a copy on
        CPU): no multi-hundred-MB checkpoint is written just to restore them."""

        def __init__(self):
            self.best, self.state, self.epoch = math.inf, None, None

        def on_validation_end(self, trainer, pl_module):
            loss = trainer.callback_metrics.get("val/loss")
            if loss is not None and float(loss) < self.best:
                self.best, self.epoch = float(loss), trainer.current_epoch
                self.state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}

    return KeepBest()


def adapt_mlm(cfg: DictConfig, model, dm, out_dir: Path) -> dict:
    """Full-model MLM training with early stopping on held-out loss; keeps the best weights."""
    from tunelab.modules import MaskedLM
    from tunelab.training import build_trainer

    a = cfg.adapt
    c = _stage_cfg(cfg, {"lr": float(a.lr), "head_lr": None, "epochs": int(a.epochs),
                         "max_steps": int(a.max_steps), "warmup_ratio": float(a.warmup_ratio),
                         "early_stopping_patience": a.early_stopping_patience or None,
                         "val_check_interval": float(a.val_check_interval)},
                   {"enable_checkpointing": False})
    module = MaskedLM(model, optim_cfg=c.optim, freeze_cfg=_freeze("none"), log=log.info)
    keep = _best_state_callback()
    trainer = build_trainer(c, out_dir, False, monitor="val/loss", mode="min", extra_callbacks=[keep])
    module.train()
    trainer.fit(module, datamodule=dm)
    if keep.state is not None:
        module.model.load_state_dict(keep.state)
    module.cpu()
    es = trainer.early_stopping_callback
    return {"steps": int(trainer.global_step), "epochs_run": int(trainer.current_epoch),
            "best_val_loss": keep.best if keep.state is not None else None, "best_epoch": keep.epoch,
            "early_stopped": bool(es is not None and es.stopped_epoch)}


def save_encoder(cfg: DictConfig, model, tokenizer, path: Path) -> list[str]:
    """Save as a Hugging Face folder (safetensors + tokenizer); copy the original pooler in."""
    notes = []
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    model.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))
    if not cfg.model.random_init:
        try:
            copied = _copy_pooler(cfg.model, model, path)
            if copied:
                notes.append(f"copied the original pooler ({', '.join(copied)}) into the adapted encoder")
        except Exception as e:  # the encoder is still usable; stage 2 then starts a fresh pooler
            notes.append(f"could not copy the original pooler ({type(e).__name__}: {e})")
    return notes


def _copy_pooler(model_cfg, mlm_model, path: Path) -> list[str]:
    """MLM models have no pooler; put the source checkpoint's into the saved weights, so that
    a classifier built on the adapted encoder differs from ``adapt=none`` only by adaptation."""
    import warnings

    import transformers
    from safetensors.torch import load_file, save_file

    from tunelab.models import load_config, model_source

    weights = path / "model.safetensors"
    if not weights.is_file():
        return []
    prev = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            base, info = transformers.AutoModel.from_pretrained(
                model_source(model_cfg), config=load_config(model_cfg), output_loading_info=True,
                trust_remote_code=model_cfg.trust_remote_code)
    finally:
        transformers.logging.set_verbosity(prev)
    if any("pooler" in k for k in info.get("missing_keys", [])):
        return []  # the source had no trained pooler either
    prefix = getattr(mlm_model, "base_model_prefix", "") or ""
    extra = {f"{prefix}.{k}" if prefix else k: v.detach().contiguous().clone()
             for k, v in base.state_dict().items() if k.startswith("pooler.")}
    if not extra:
        return []
    tensors = load_file(str(weights))
    tensors.update({k: v for k, v in extra.items() if k not in tensors})
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return sorted(extra)


# --------------------------------------------------------------------------- the runner


def run_adapt(cfg: DictConfig, ctx) -> dict:
    """Stage 1 (MLM adaptation) then stage 2 (fine-tuning the adapted encoder)."""
    import lightning as L

    from tunelab.models import load_model, load_tokenizer, print_load_report

    a = cfg.adapt
    if cfg.task.name not in STAGE2_TASKS:
        raise ConfigError(f"adapt={a.name} fine-tunes the adapted encoder in stage 2, which task="
                          f"{cfg.task.name} does not; use task=seq_cls/token_cls/mlm, or give the "
                          f"adapted folder to that task with model.path=<job dir>/{ENCODER_DIR}.")
    if a.head_warmup_steps < 0:
        raise ConfigError(f"adapt.head_warmup_steps={a.head_warmup_steps} must be >= 0.")
    out_dir = ctx.out_dir
    tokenizer = load_tokenizer(cfg.model)

    # -- corpus (never the task's val/test texts)
    if a.name == "tapt" and a.corpus:
        raise ConfigError("adapt=tapt uses the task's own training texts; adapt.corpus is for "
                          "adapt=dapt (unset it, or use adapt=dapt).")
    task = None
    if a.name == "dapt":
        texts, source = corpus_texts(cfg)   # a bad corpus fails before the task data load
    task = task_splits(cfg)
    if a.name != "dapt":
        texts, source = corpus_texts(cfg, task)
    forbidden = {_norm(t) for df in (task.val, task.test) for t in texts_of(df)}
    corpus = prepare_corpus(texts, cfg, forbidden)
    log.info(f"[tunelab] adapt={a.name}: MLM corpus {source}: {len(corpus['train']):,} texts "
             f"+ {len(corpus['heldout']):,} held out for perplexity"
             + (f"; removed {corpus['n_removed_overlap']} that occur in the task's val/test splits"
                if corpus["n_removed_overlap"] else ""))
    dm = mlm_datamodule(cfg, tokenizer, corpus["train"], corpus["heldout"])
    device = _eval_device(cfg)

    original_dm = None
    if a.eval_original:
        from tunelab.data.sources import load_raw
        from tunelab.data.splits import make_splits

        if a.eval_original == cfg.data.name:
            held_texts = texts_of(task.test)  # the task's own test texts, as configured here
        else:
            dc = data_config(a.eval_original)
            held_texts = texts_of(make_splits(load_raw(dc, "mlm"), dc, "mlm").test)
        seen = {_norm(t) for t in corpus["train"]}
        otexts = [t for t in held_texts if t.strip() and _norm(t) not in seen][: int(a.max_heldout)]
        if not otexts:
            raise DataError(f"adapt.eval_original={a.eval_original!r}: no held-out texts left to score.")
        original_dm = mlm_datamodule(cfg, tokenizer, otexts[:1], otexts)

    # -- model and the starting point
    model, report = load_model(cfg.model, "mlm")
    print_load_report(report, log.info)
    fresh_head = any("predictions" in k or k.startswith("cls.") or "vocab" in k for k in report.missing)
    res: dict[str, Any] = {"name": a.name, "corpus": source, "n_texts": len(corpus["train"]),
                           "n_heldout": len(corpus["heldout"]),
                           "n_removed_overlap": corpus["n_removed_overlap"],
                           "fresh_mlm_head": fresh_head or bool(cfg.model.random_init),
                           "masking": {k: v for k, v in OmegaConf.to_container(mlm_task_cfg(a)).items()
                                       if k in ("mlm_probability", "mask_replace_prob",
                                                "random_replace_prob", "whole_word_mask")}}
    loss0 = heldout_loss(model, dm.val_dataloader(), device)
    res["ppl_before"] = ppl(loss0)
    log.info(f"[tunelab] adapt: held-out MLM perplexity before: {res['ppl_before']:.2f} "
             f"(uniform guess over the vocabulary: {len(tokenizer):,})")
    if fresh_head and not a.head_warmup_steps and not cfg.model.random_init:
        log.info("[tunelab] adapt: note: this encoder has no trained MLM head, so 'before' measures a "
                 "random head; set adapt.head_warmup_steps (e.g. 200) for an honest starting point.")
    res["warmup_steps"] = 0
    if a.head_warmup_steps > 0:
        res["warmup_steps"] = head_warmup(cfg, model, dm, out_dir)
        res["ppl_after_warmup"] = ppl(heldout_loss(model, dm.val_dataloader(), device))
        log.info(f"[tunelab] adapt: after {res['warmup_steps']} head-only steps: "
                 f"perplexity {res['ppl_after_warmup']:.2f} (the starting point)")
    else:
        res["ppl_after_warmup"] = res["ppl_before"]
    if original_dm is not None:
        res["original"] = {"data": a.eval_original, "n_texts": len(original_dm.splits.val),
                           "ppl_before": ppl(heldout_loss(model, original_dm.val_dataloader(), device))}

    # -- adaptation
    res.update(adapt_mlm(cfg, model, dm, out_dir))
    res["ppl_after"] = ppl(heldout_loss(model, dm.val_dataloader(), device))
    log.info(f"[tunelab] adapt: held-out perplexity {res['ppl_after_warmup']:.2f} -> {res['ppl_after']:.2f} "
             f"after {res['steps']} steps ({res['epochs_run']} epochs)")
    if original_dm is not None:
        res["original"]["ppl_after"] = ppl(heldout_loss(model, original_dm.val_dataloader(), device))
        log.info(f"[tunelab] adapt: original domain '{a.eval_original}' perplexity "
                 f"{res['original']['ppl_before']:.2f} -> {res['original']['ppl_after']:.2f}")

    enc_dir = out_dir / ENCODER_DIR
    res["save_notes"] = save_encoder(cfg, model, tokenizer, enc_dir)
    res["path"] = str(enc_dir)
    log.info(f"[tunelab] adapt: adapted encoder saved to {enc_dir} (use it with model.path={enc_dir})")
    del model

    metrics = {"adapt/ppl_before": res["ppl_before"], "adapt/ppl_after_warmup": res["ppl_after_warmup"],
               "adapt/ppl_after": res["ppl_after"]}
    if "original" in res:
        metrics["adapt/ppl_original_before"] = res["original"]["ppl_before"]
        metrics["adapt/ppl_original_after"] = res["original"]["ppl_after"]

    if a.skip_finetune:
        return {"metrics": metrics, "n_examples": task.sizes(), "label_names": task.label_names,
                "extra": {"adapt": res}}

    # -- stage 2: the normal fine-tuning path on the adapted encoder
    cfg2 = cfg.copy()
    with open_dict(cfg2):
        cfg2.model.path = str(enc_dir)
        cfg2.model.random_init = False
        cfg2.model.tokenizer = None
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = run_encoder(cfg2, ctx)
    out["metrics"] = {**out.get("metrics", {}), **metrics}
    out.setdefault("extra", {})["adapt"] = res
    if ctx.logger is not None and hasattr(ctx.logger, "log_metrics"):
        try:
            ctx.logger.log_metrics(metrics)
        except Exception:  # logging is a convenience; results.json has the numbers
            pass
    return out
