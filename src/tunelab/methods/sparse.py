"""``method=sparse``: a scikit-learn vectoriser and an L2 logistic regression.

The classic text classifier that fine-tuned encoders are measured against (Hart 2020 asks
whether BERT beats it). ``method.features=tfidf|count|hash`` picks the vectoriser; it trains on
the train split an encoder run of the same ``data`` config trains on and is scored on its test
split (:mod:`tunelab.methods.shared.shallow`).

``method.cv=k`` adds stratified k-fold cross-validation on the training data (the folds depend
on ``data.split_seed`` only): per-fold scores in ``extra.cv``, means and standard deviations in
``metrics`` as ``cv/acc_mean``, ``cv/f1_std``, ...
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from omegaconf import DictConfig

from tunelab.errors import ConfigError
from tunelab.methods.shared.data import class_space, load_splits
from tunelab.methods.shared.record import baseline_record
from tunelab.methods.shared.shallow import evaluate, fit_quietly, log_final, make_logreg, predict, scores
from tunelab.training import start_logger

log = logging.getLogger("tunelab")


def make_vectorizer(sp: Any):
    """The scikit-learn vectoriser that ``method.*`` describes (options checked by the schema)."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer

    ngram = tuple(int(x) for x in sp.ngram_range)
    if sp.features == "hash":
        return HashingVectorizer(ngram_range=ngram, lowercase=sp.lowercase, n_features=int(sp.n_features),
                                 alternate_sign=sp.alternate_sign)
    kw = dict(ngram_range=ngram, lowercase=sp.lowercase, min_df=sp.min_df, max_df=sp.max_df,
              max_features=sp.max_features)
    if sp.features == "tfidf":
        return TfidfVectorizer(sublinear_tf=sp.sublinear_tf, **kw)
    return CountVectorizer(**kw)


def make_pipeline(sp: Any, seed: int):
    from sklearn.pipeline import Pipeline

    return Pipeline([("vec", make_vectorizer(sp)),
                     ("clf", make_logreg(sp.C, sp.max_iter, seed, sp.solver, sp.class_weight))])


def check_cv(k: int, y: np.ndarray) -> None:
    """Each of k stratified folds needs an example of every class (k = 1 is refused by the schema)."""
    if k == 0:
        return
    smallest = int(np.bincount(y).min())
    if k > smallest:
        raise ConfigError(f"method.cv={k}: the smallest class has only {smallest} training examples; "
                          f"use method.cv<={smallest}.")


def cross_validate(make_model, X: list, y: np.ndarray, k: int, split_seed: int, n_classes: int, pos: int) -> dict:
    """Stratified k-fold CV on the training texts; folds depend on ``split_seed`` only."""
    from sklearn.model_selection import StratifiedKFold

    folds = []
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(split_seed))
    for i, (tr, va) in enumerate(skf.split(np.zeros(len(y)), y)):
        model = make_model()
        fit_quietly(model, [X[j] for j in tr], y[tr])
        pred, proba = predict(model, [X[j] for j in va], n_classes)
        m = scores(y[va], pred, proba, n_classes, pos, "fold")
        folds.append({"fold": i, "n_train": int(len(tr)), "n_val": int(len(va)),
                      **{key.split("/", 1)[1]: v for key, v in m.items()}})
    names = [key for key in folds[0] if key not in ("fold", "n_train", "n_val")]
    mean = {n: float(np.mean([f[n] for f in folds])) for n in names}
    std = {n: float(np.std([f[n] for f in folds], ddof=1)) for n in names}
    return {"k": k, "stratified": True, "split_seed": int(split_seed), "folds": folds, "mean": mean, "std": std}


def cv_metrics(cv: dict) -> dict[str, float]:
    out = {f"cv/{n}_mean": v for n, v in cv["mean"].items()}
    out.update({f"cv/{n}_std": v for n, v in cv["std"].items()})
    return out


def run(cfg: DictConfig, ctx) -> dict:
    """Vectoriser + logistic regression on the encoder runs' train split, scored on their test split."""
    sp = cfg.method
    seed = int(cfg.seed)
    splits = load_splits(cfg)
    n, pos = class_space(cfg, splits)
    texts = {split: getattr(splits, split)["text"].tolist() for split in splits.names
             if split != "val" or len(splits.val)}
    y_train = splits.train["label"].to_numpy()
    check_cv(int(sp.cv), y_train)
    logger = start_logger(cfg, ctx, job_type="sparse")
    t0 = time.time()
    pipe = make_pipeline(sp, seed)
    converged = fit_quietly(pipe, texts["train"], y_train)
    fit_s = time.time() - t0
    metrics, pred, proba, others = evaluate(pipe, splits, texts, n, pos)
    extra: dict[str, Any] = {"sparse": {"features": sp.features, "converged": converged, "fit_s": round(fit_s, 3)}}
    vec, clf = pipe.named_steps["vec"], pipe.named_steps["clf"]
    extra["sparse"]["n_features"] = int(clf.coef_.shape[1])
    if hasattr(vec, "vocabulary_"):
        extra["sparse"]["vocabulary_size"] = len(vec.vocabulary_)
    if sp.cv:
        cv = cross_validate(lambda: make_pipeline(sp, seed), texts["train"], y_train, int(sp.cv),
                            cfg.data.split_seed, n, pos)
        extra["cv"] = cv
        metrics.update(cv_metrics(cv))
    log_final(logger, metrics)
    n_params = int(clf.coef_.size + clf.intercept_.size)
    log.info(f"[tunelab] sparse {sp.features}: {extra['sparse']['n_features']:,} features, "
             f"{n_params:,} coefficients, fit in {fit_s:.1f} s")
    from tunelab.models.plan import fixed_record

    rec = baseline_record(splits, metrics, pred, n_params, extra, proba=proba, others=others)
    rec["plan"] = fixed_record(runner="sparse", cache="none", why="no encoder: a bag of words",
                               encoder_params=0, classifier_params=n_params)
    return rec
