"""``method=zeroshot``: classify with no training at all.

Default (embedding similarity): every label gets one or more natural-language descriptions,
``method.templates`` filled with ``{label}`` = ``method.descriptions[label]`` (or the label
name), e.g. "This text is positive.". Texts and descriptions are embedded by the same frozen
encoder (``tunelab.models.cache.features.extract``, mean pooling by default); a label's vector is the mean of
its unit-normalised description vectors, and each text gets the label of highest cosine
similarity. This only works with an encoder trained to produce sentence embeddings (the
packaged MiniLM is one: all-MiniLM-L6-v2); a randomly initialised model guesses.

With ``method.nli_model=<local folder or hub id>`` the transformers ``zero-shot-classification``
pipeline is used instead (an NLI model scores "<text>" entails "<template with the label>").
No NLI model is packaged, so offline a hub id fails with a message saying so.

The data are split exactly as for fine-tuning (same ``data.*`` settings, same test split), and the
job writes ``results.json`` with ``test/acc``, ``test/f1`` (positive class for binary tasks, macro
otherwise), ``test/f1_macro`` (all through :mod:`tunelab.methods.shared.shallow`, as for the other methods
without fine-tuning), the majority-class rate and prediction counts, so a zero-shot row sits next
to the fine-tuned ones in a report. The training split is used only for the majority baseline and
the class counts.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tunelab.errors import ConfigError, HubUnavailableError
from tunelab.methods.shared.data import load_splits, positive_index
from tunelab.methods.shared.record import baseline_record
from tunelab.metrics import classification_scores

log = logging.getLogger("tunelab")


def label_prompts(label_names: list[str], zcfg: Any) -> dict[str, list[str]]:
    """label -> its filled-in description templates (the templates are checked by the schema
    layer, :func:`tunelab.schemas.methods.check_zeroshot`)."""
    templates = list(zcfg.templates)
    desc = dict(OmegaConf.to_container(zcfg.descriptions, resolve=True) if OmegaConf.is_config(zcfg.descriptions)
                else (zcfg.descriptions or {}))
    unknown = sorted(set(desc) - set(label_names))
    if unknown:
        raise ConfigError(f"method.descriptions has labels {unknown} that the data do not have; "
                          f"labels: {label_names}.")
    return {name: [t.replace("{label}", str(desc.get(name, name))) for t in templates] for name in label_names}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=1, keepdims=True), 1e-12, None)


def embedding_scores(texts: list[str], prompts: dict[str, list[str]], cfg: DictConfig) -> np.ndarray:
    """Cosine similarity [n_texts, n_labels] between texts and label description vectors."""
    from tunelab.models.cache.features import extract

    flat = [p for ps in prompts.values() for p in ps]
    z = cfg.method
    X = extract(list(texts) + flat, model=cfg.model, pooling=z.pooling, max_length=cfg.model.max_length,
                batch_size=int(z.batch_size), cache_dir=cfg.cache_dir, seed=int(cfg.seed))
    X = _unit(np.asarray(X, dtype=np.float64))
    T, P = X[:len(texts)], X[len(texts):]
    vecs, i = [], 0
    for ps in prompts.values():
        vecs.append(P[i:i + len(ps)].mean(0))
        i += len(ps)
    return T @ _unit(np.stack(vecs)).T


def nli_scores(texts: list[str], prompts: dict[str, list[str]], cfg: DictConfig) -> np.ndarray:
    """Entailment scores [n_texts, n_labels] from the transformers zero-shot pipeline."""
    from tunelab.models.loading import resolve_source

    z = cfg.method
    spec = str(z.nli_model)
    src = resolve_source(spec, "method.nli_model")
    try:
        import transformers

        prev = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        try:
            import torch

            device = 0 if cfg.trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available() else -1
            clf = transformers.pipeline("zero-shot-classification", model=src, tokenizer=src, device=device)
        finally:
            transformers.logging.set_verbosity(prev)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:240]
        raise HubUnavailableError(
            f"method.nli_model={spec!r}: could not load an NLI model for the zero-shot pipeline "
            f"({type(e).__name__}: {first}). No NLI model is packaged with tunelab and the hub is not "
            f"reachable offline: give a local folder of an NLI model (e.g. a saved "
            f"facebook/bart-large-mnli), or leave method.nli_model unset to classify by "
            f"embedding similarity."
        ) from None
    names = list(prompts)
    # The pipeline fills one hypothesis template with each candidate; the candidate is the
    # label's description and the first template is the hypothesis.
    desc = {n: (OmegaConf.to_container(z.descriptions) if OmegaConf.is_config(z.descriptions)
                else dict(z.descriptions or {})).get(n, n) for n in names}
    hypothesis = str(z.templates[0]).replace("{label}", "{}")
    cands = [str(desc[n]) for n in names]
    out = clf(list(texts), candidate_labels=cands, hypothesis_template=hypothesis,
              batch_size=int(z.batch_size))
    if isinstance(out, dict):
        out = [out]
    scores = np.zeros((len(texts), len(names)))
    for i, o in enumerate(out):
        for lab, sc in zip(o["labels"], o["scores"]):
            scores[i, cands.index(lab)] = sc
    return scores


def run(cfg: DictConfig, ctx) -> dict:
    """Score the test (and with ``method.eval_val`` the val) split by description similarity."""
    z = cfg.method
    splits = load_splits(cfg)
    names = splits.label_names
    if not names or "text" not in splits.test.columns:
        raise ConfigError("method=zeroshot classifies whole texts: use a labelled text data set "
                          "(not token-level data such as NER).")
    prompts = label_prompts(names, z)
    method = "nli" if z.nli_model else "embedding_similarity"
    log.info(f"[tunelab] zero-shot ({method}); label descriptions: "
             + "; ".join(f"{k}: {v}" for k, v in prompts.items()))
    score_fn = nli_scores if z.nli_model else embedding_scores
    pos = positive_index(names, cfg.data)

    from tunelab import predictions

    metrics: dict[str, float] = {}
    todo = [("test", splits.test)] + ([("val", splits.val)] if z.eval_val and len(splits.val) else [])
    if splits.test_ood is not None:  # the out-of-domain test (tunelab.data.ood), its predictions kept
        todo.append(("test_ood", splits.test_ood))
    test_pred: Optional[np.ndarray] = None
    mean_margin = None
    others = {}
    for split, df in todo:
        scores = score_fn(df["text"].astype(str).tolist(), prompts, cfg)
        pred = scores.argmax(1)
        gold = df["label"].to_numpy()
        metrics.update(classification_scores(gold, pred, len(names), pos, split))
        if split == "test":
            test_pred = pred
            top2 = np.sort(scores, axis=1)[:, -2:] if len(names) > 1 else None
            mean_margin = float((top2[:, 1] - top2[:, 0]).mean()) if top2 is not None else None
        elif split == "test_ood":
            others[split] = predictions.for_classes(np.arange(len(gold)), gold, pred, names)
    rec = baseline_record(splits, metrics, test_pred, 0, others=others, extra={
        "zeroshot": {"method": method, "prompts": prompts, "pooling": z.pooling,
                     "nli_model": z.nli_model, "mean_top2_margin": mean_margin}})
    from tunelab.models.plan import fixed_record

    rec["plan"] = fixed_record(runner="zeroshot", cache="none", why=f"nothing is fitted ({method})",
                               encoder_params=0, classifier_params=0, pooling=z.pooling)
    log.info(f"[tunelab] zero-shot test accuracy {metrics['test/acc']:.4f} "
             f"(majority class: {rec['majority_rate']:.4f}); predictions {rec['pred_class_counts']}")
    return rec
