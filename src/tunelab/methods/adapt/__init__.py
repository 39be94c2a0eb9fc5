"""``method=adapt`` (``adapt=tapt|dapt``): masked-LM adaptation of the encoder, then fine-tuning.

One job, two stages:

1. **MLM on unlabelled text** (:mod:`.corpus`, :mod:`.mlm`). ``tapt`` (task-adaptive,
   Gururangan et al. 2020): the task's own *training* texts, exactly the rows stage 2 trains on
   (before any augmentation). ``dapt`` (domain-adaptive): a separate corpus, ``adapt.corpus`` = a
   data config name (its train split; e.g. ``drug_reviews``) or a ``.txt`` (one text per line),
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
   that were in the MLM training corpus are left out), measured at the starting point (after
   the head warm-up) and after adaptation. A rise means the encoder moved away from the
   original domain. (Stage 2's test metrics on the task answer the downstream half.)

   The adapted encoder is saved as a Hugging Face folder ``<job dir>/adapted_encoder``
   (:mod:`.save`); any later run can use it with ``model.path=<job dir>/adapted_encoder``.

2. **Fine-tuning** the way ``method=finetune`` does (:func:`tunelab.methods.shared.routes.run_route`) with a
   copy of the config whose ``model.path`` is that folder; the RNG is reseeded first, so the new
   classifier head starts from the same draw as the ``adapt=none`` run of the same seed.

Results: the stage-2 record, plus metrics ``adapt/ppl_before``, ``adapt/ppl_after_warmup``,
``adapt/ppl_after`` (and ``adapt/ppl_original_before``/``_after``) and ``extra.adapt``.
"""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, open_dict

log = logging.getLogger("tunelab")


def run(cfg: DictConfig, ctx) -> dict:
    """Stage 1 (MLM adaptation) then stage 2 (fine-tuning the adapted encoder)."""
    from tunelab.models.loading import load_tokenizer
    from tunelab.models.plan import check_depth, route_of

    from .corpus import corpus_texts, norm, original_texts, prepare_corpus, task_splits, texts_of
    from .mlm import mlm_datamodule

    a = cfg.adapt
    check_depth(cfg)  # stage 2's freeze policy against the encoder, before stage 1 runs
    route_of(cfg)  # and stage 2's route (a refusal there too), from the source's config
    tokenizer = load_tokenizer(cfg.model)
    # -- corpus (never the task's val/test texts); a bad dapt corpus fails before the task data load
    texts, source = corpus_texts(cfg) if a.name == "dapt" else (None, None)
    task = task_splits(cfg)
    if texts is None:
        texts, source = corpus_texts(cfg, task)
    forbidden = {norm(t) for df in (task.val, task.test) for t in texts_of(df)}
    corpus = prepare_corpus(texts, cfg, forbidden)
    log.info(f"[tunelab] adapt={a.name}: MLM corpus {source}: {len(corpus['train']):,} texts "
             f"+ {len(corpus['heldout']):,} held out for perplexity"
             + (f"; removed {corpus['n_removed_overlap']} that occur in the task's val/test splits"
                if corpus["n_removed_overlap"] else ""))
    dm = mlm_datamodule(cfg, tokenizer, corpus["train"], corpus["heldout"])
    original_dm = None
    if a.eval_original:
        otexts = original_texts(cfg, task, corpus["train"])
        original_dm = mlm_datamodule(cfg, tokenizer, otexts[:1], otexts)

    res = adapt_encoder(cfg, ctx, tokenizer, dm, original_dm)
    res = {"name": a.name, "corpus": source, "n_texts": len(corpus["train"]),
           "n_heldout": len(corpus["heldout"]), "n_removed_overlap": corpus["n_removed_overlap"], **res}
    metrics = {"adapt/ppl_before": res["ppl_before"], "adapt/ppl_after_warmup": res["ppl_after_warmup"],
               "adapt/ppl_after": res["ppl_after"]}
    if "original" in res:
        metrics["adapt/ppl_original_before"] = res["original"]["ppl_before"]
        metrics["adapt/ppl_original_after"] = res["original"]["ppl_after"]
    if a.skip_finetune:
        return {"metrics": metrics, "n_examples": task.sizes(), "label_names": task.label_names,
                "extra": {"adapt": res}}
    return finetune_adapted(cfg, ctx, res, metrics)


def adapt_encoder(cfg: DictConfig, ctx, tokenizer, dm, original_dm) -> dict:
    """Stage 1 on a freshly loaded MLM model: perplexity before, head warm-up, adaptation,
    perplexity after, the encoder saved. Returns ``extra.adapt`` (without the corpus fields)."""
    from tunelab.models import dropout
    from tunelab.models.loading import load_model, print_load_report

    from .mlm import MASKING_KEYS, adapt_mlm, head_warmup, heldout_perplexity
    from .save import ENCODER_DIR, save_encoder

    a, out_dir = cfg.adapt, ctx.out_dir

    def ppl(datamodule) -> float:
        return heldout_perplexity(cfg, model, datamodule.val_dataloader(), out_dir)

    model, report = load_model(cfg.model, "mlm", fast_dropout=dropout.wanted(cfg.trainer))
    print_load_report(report, log.info)
    fresh_head = bool(report.fresh_head)  # every family's head names (tunelab.models.loading)
    res: dict[str, Any] = {"fresh_mlm_head": fresh_head,
                           "masking": {k: a[k] for k in MASKING_KEYS}}
    res["ppl_before"] = ppl(dm)
    log.info(f"[tunelab] adapt: held-out MLM perplexity before: {res['ppl_before']:.2f} "
             f"(uniform guess over the vocabulary: {len(tokenizer):,})")
    if fresh_head and not a.head_warmup_steps and not cfg.model.random_init:
        log.info("[tunelab] adapt: note: this encoder has no trained MLM head, so 'before' measures a "
                 "random head; set adapt.head_warmup_steps (e.g. 200) for an honest starting point.")
    res["warmup_steps"] = 0
    if a.head_warmup_steps > 0:
        res["warmup_steps"] = head_warmup(cfg, model, dm, out_dir)
        res["ppl_after_warmup"] = ppl(dm)
        log.info(f"[tunelab] adapt: after {res['warmup_steps']} head-only steps: "
                 f"perplexity {res['ppl_after_warmup']:.2f} (the starting point)")
    else:
        res["ppl_after_warmup"] = res["ppl_before"]
    if original_dm is not None:
        res["original"] = {"data": a.eval_original, "n_texts": len(original_dm.splits.val),
                           "ppl_before": ppl(original_dm)}

    res.update(adapt_mlm(cfg, model, dm, out_dir))
    res["ppl_after"] = ppl(dm)
    log.info(f"[tunelab] adapt: held-out perplexity {res['ppl_after_warmup']:.2f} -> {res['ppl_after']:.2f} "
             f"after {res['steps']} steps ({res['epochs_run']} epochs)")
    if original_dm is not None:
        res["original"]["ppl_after"] = ppl(original_dm)
        log.info(f"[tunelab] adapt: original domain '{a.eval_original}' perplexity "
                 f"{res['original']['ppl_before']:.2f} -> {res['original']['ppl_after']:.2f}")

    enc_dir = out_dir / ENCODER_DIR
    res["save_notes"] = save_encoder(cfg, model, tokenizer, enc_dir)
    res["path"] = str(enc_dir)
    log.info(f"[tunelab] adapt: adapted encoder saved to {enc_dir} (use it with model.path={enc_dir})")
    return res


def finetune_adapted(cfg: DictConfig, ctx, res: dict, metrics: dict) -> dict:
    """Stage 2: fine-tuning (``method=finetune``'s route, freeze=all's probe included) on the
    adapted encoder (``res["path"]``)."""
    import lightning as L

    from tunelab.methods.shared.routes import run_route

    cfg2 = cfg.copy()
    with open_dict(cfg2):
        cfg2.model.path = res["path"]
        cfg2.model.random_init = False
        cfg2.model.tokenizer = None
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    out = run_route(cfg2, ctx)
    out["metrics"] = {**out.get("metrics", {}), **metrics}
    out.setdefault("extra", {})["adapt"] = res
    if ctx.logger is not None and hasattr(ctx.logger, "log_metrics"):
        try:
            ctx.logger.log_metrics(metrics)
        except Exception:  # logging is a convenience; results.json has the numbers
            pass
    return out
