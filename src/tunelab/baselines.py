"""Baselines as first-class runs: ``task=sparse`` and ``task=features``.

Both runners train on exactly the train split an encoder run of the same ``data`` config
trains on and score exactly its test split (``load_raw`` + ``make_splits``: the split depends
on ``data.split_seed`` only), and they return the same record fields as ``run_encoder``, so a
sweep can put them next to fine-tuned BERT in one report.

* ``task=sparse``: a scikit-learn vectoriser (``sparse.features=tfidf|count|hash``) and an L2
  logistic regression. ``sparse.cv=k`` adds stratified k-fold cross-validation on the training
  data (the folds depend on ``data.split_seed`` only): per-fold scores in ``extra.cv``, means
  and standard deviations in ``metrics`` as ``cv/acc_mean``, ``cv/f1_std``, ...
* ``task=features``: frozen-encoder features (``features.pooling=cls|mean|concat_last4``, from
  the disk cache of ``tunelab.features.cached_features``) and logistic regression or a single
  dense layer (``features.classifier=logreg|linear``).

Metrics come from ``tunelab.stats`` (the scikit-learn-exact functions the report uses):
``test/acc``, ``test/f1`` (positive class; macro F1 for more than two classes, as for
``seq_cls``), ``test/f1_macro`` and ``test/loss`` (log loss of the predicted probabilities).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig, OmegaConf

from tunelab.errors import ConfigError
from tunelab.methods.finetune import label_counts, positive_index, train_transform_of
from tunelab.training import run_name

log = logging.getLogger("tunelab")

SPARSE_FEATURES = ("tfidf", "count", "hash")
POOLINGS = ("cls", "mean", "concat_last4", "pooler")
CLASSIFIERS = ("logreg", "linear")



# --------------------------------------------------------------------------- shared pieces


def load_splits(cfg: DictConfig):
    """The same splits (and training transform) an encoder run of this config would use."""
    from tunelab.data.sources import load_raw
    from tunelab.data.splits import make_splits

    raw = load_raw(cfg.data, "seq_cls")
    splits = make_splits(raw, cfg.data, "seq_cls")
    transform = train_transform_of(cfg)
    if transform is not None:
        splits.train = transform(splits.train, int(cfg.seed))
    for reason, n in splits.dropped.items():
        log.info(f"[tunelab] dropped {n} rows: {reason}")
    for note in splits.notes:
        log.info(f"[tunelab] note: {note}")
    log.info(f"[tunelab] data '{cfg.data.name}': " + ", ".join(f"{k} {v:,}" for k, v in splits.sizes().items())
             + f"; labels {splits.label_names}")
    return splits


def classification_metrics(y_true, y_pred, proba: Optional[np.ndarray], n_classes: int, pos: int,
                           prefix: str) -> dict[str, float]:
    """acc, f1 (positive class for binary, macro otherwise), f1_macro and log loss."""
    from tunelab import metrics as stats

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    macro = stats.f1_macro(y_true, y_pred)
    out = {
        f"{prefix}/acc": stats.accuracy(y_true, y_pred),
        f"{prefix}/f1": stats.f1_score_binary(y_true, y_pred, pos_label=pos) if n_classes == 2 else macro,
        f"{prefix}/f1_macro": macro,
    }
    if proba is not None:
        from sklearn.metrics import log_loss

        out[f"{prefix}/loss"] = float(log_loss(y_true, proba, labels=list(range(n_classes))))
    return out


def pred_counts(y_pred, names: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(y_pred, dtype=int), minlength=len(names))
    return {n: int(c) for n, c in zip(names, counts)}


def _start_logger(cfg: DictConfig, ctx):
    """The configured experiment logger (W&B/CSV), so baselines land in the same W&B group."""
    from tunelab.loggers import build_logger
    from tunelab.io import scrub_secrets

    logger = build_logger(cfg.logger, ctx.out_dir, run_name=run_name(ctx), group=ctx.group,
                          tags=ctx.swept_tags, config=scrub_secrets(OmegaConf.to_container(cfg, resolve=True)),
                          job_type=cfg.task.name)
    ctx.logger = logger
    return logger


def _log_final(logger, metrics: dict) -> None:
    if logger:
        logger.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=0)
        if hasattr(logger, "save"):
            logger.save()


def _record(splits, metrics: dict, y_pred, n_params: int, extra: dict, total: Optional[int] = None) -> dict:
    from tunelab.data.splits import majority_rate

    return {
        "metrics": metrics,
        "majority_rate": majority_rate(splits),
        "pred_class_counts": pred_counts(y_pred, splits.label_names),
        "label_names": splits.label_names,
        "n_examples": splits.sizes(),
        "params": {"trainable": int(n_params), "total": int(total if total is not None else n_params)},
        "extra": {"dropped_rows": splits.dropped, **label_counts(splits), "data_notes": splits.notes, **extra},
    }


def _check_cv(k: int, y: np.ndarray) -> None:
    if k == 0:
        return
    if k < 2:
        raise ConfigError(f"method.cv={k}: k-fold cross-validation needs k >= 2 (0 turns it off).")
    smallest = int(np.bincount(y).min())
    if k > smallest:
        raise ConfigError(f"method.cv={k}: the smallest class has only {smallest} training examples; "
                          f"use method.cv<={smallest}.")


# --------------------------------------------------------------------------- task=sparse


def _df(value: Any, key: str):
    """min_df/max_df: an int is a document count, a float a fraction (as in scikit-learn)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"sparse.{key}={value!r} must be a number (int = count, float = fraction).")
    return value


def make_vectorizer(sp: Any):
    """The scikit-learn vectoriser that ``sparse.*`` describes."""
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer, TfidfVectorizer

    ngram = tuple(int(x) for x in sp.ngram_range)
    if len(ngram) != 2 or ngram[0] < 1 or ngram[1] < ngram[0]:
        raise ConfigError(f"sparse.ngram_range={list(ngram)} must be [min, max] with 1 <= min <= max.")
    if sp.features == "hash":
        if sp.n_features < 1:
            raise ConfigError(f"sparse.n_features={sp.n_features} must be >= 1.")
        return HashingVectorizer(ngram_range=ngram, lowercase=sp.lowercase, n_features=int(sp.n_features),
                                 alternate_sign=sp.alternate_sign)
    kw = dict(ngram_range=ngram, lowercase=sp.lowercase, min_df=_df(sp.min_df, "min_df"),
              max_df=_df(sp.max_df, "max_df"), max_features=sp.max_features)
    if sp.features == "tfidf":
        return TfidfVectorizer(sublinear_tf=sp.sublinear_tf, **kw)
    if sp.features == "count":
        return CountVectorizer(**kw)
    raise ConfigError(f"method.features={sp.features!r} is not one of {list(SPARSE_FEATURES)}.")


def make_logreg(C: float, max_iter: int, seed: int, solver: str = "lbfgs", class_weight=None):
    from sklearn.linear_model import LogisticRegression

    if C <= 0:
        raise ConfigError(f"C={C} must be > 0.")
    return LogisticRegression(C=float(C), max_iter=int(max_iter), solver=solver, class_weight=class_weight,
                              random_state=int(seed))


def make_sparse_pipeline(sp: Any, seed: int):
    from sklearn.pipeline import Pipeline

    return Pipeline([("vec", make_vectorizer(sp)),
                     ("clf", make_logreg(sp.C, sp.max_iter, seed, sp.solver, sp.class_weight))])


def _fit_quietly(model, X, y):
    """Fit; a ConvergenceWarning is logged once (raise sparse.max_iter) instead of spamming."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning("[tunelab] logistic regression did not converge; raise max_iter")
        return False
    return True


def _predict(model, X) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(X)
    classes = model.classes_ if hasattr(model, "classes_") else model[-1].classes_
    return np.asarray(classes)[proba.argmax(1)], proba


def cross_validate(make_model, X, y: np.ndarray, k: int, split_seed: int, n_classes: int, pos: int) -> dict:
    """Stratified k-fold CV on the training data; folds depend on ``split_seed`` only."""
    from sklearn.model_selection import StratifiedKFold

    folds = []
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(split_seed))
    for i, (tr, va) in enumerate(skf.split(np.zeros(len(y)), y)):
        model = make_model()
        Xtr = [X[j] for j in tr] if isinstance(X, list) else X[tr]
        Xva = [X[j] for j in va] if isinstance(X, list) else X[va]
        _fit_quietly(model, Xtr, y[tr])
        pred, proba = _predict(model, Xva)
        m = classification_metrics(y[va], pred, _full_proba(model, proba, n_classes), n_classes, pos, "fold")
        folds.append({"fold": i, "n_train": int(len(tr)), "n_val": int(len(va)),
                      **{k2.split("/", 1)[1]: v for k2, v in m.items()}})
    names = [k2 for k2 in folds[0] if k2 not in ("fold", "n_train", "n_val")]
    mean = {n: float(np.mean([f[n] for f in folds])) for n in names}
    std = {n: float(np.std([f[n] for f in folds], ddof=1)) if k > 1 else float("nan") for n in names}
    return {"k": k, "stratified": True, "split_seed": int(split_seed), "folds": folds, "mean": mean, "std": std}


def _full_proba(model, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all classes (a fold's model may have seen fewer classes)."""
    classes = model.classes_ if hasattr(model, "classes_") else model[-1].classes_
    if proba.shape[1] == n_classes:
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


def cv_metrics(cv: dict) -> dict[str, float]:
    out = {f"cv/{n}_mean": v for n, v in cv["mean"].items()}
    out.update({f"cv/{n}_std": v for n, v in cv["std"].items()})
    return out


def run_sparse(cfg: DictConfig, ctx) -> dict:
    """Vectoriser + logistic regression on the encoder runs' train split, scored on their test split."""
    sp = cfg.method
    seed = int(cfg.seed)
    splits = load_splits(cfg)
    names = splits.label_names
    pos = positive_index(names, cfg.data)
    n = len(names)
    y_train = splits.train["label"].to_numpy()
    _check_cv(int(sp.cv), y_train)
    logger = _start_logger(cfg, ctx)
    t0 = time.time()
    pipe = make_sparse_pipeline(sp, seed)
    converged = _fit_quietly(pipe, splits.train["text"].tolist(), y_train)
    fit_s = time.time() - t0
    pred, proba = _predict(pipe, splits.test["text"].tolist())
    metrics = classification_metrics(splits.test["label"].to_numpy(), pred, _full_proba(pipe, proba, n), n, pos, "test")
    if len(splits.val):
        vpred, vproba = _predict(pipe, splits.val["text"].tolist())
        metrics.update(classification_metrics(splits.val["label"].to_numpy(), vpred, _full_proba(pipe, vproba, n),
                                              n, pos, "val"))
    extra: dict[str, Any] = {"sparse": {"features": sp.features, "converged": converged, "fit_s": round(fit_s, 3)}}
    vec, clf = pipe.named_steps["vec"], pipe.named_steps["clf"]
    extra["sparse"]["n_features"] = int(clf.coef_.shape[1])
    if hasattr(vec, "vocabulary_"):
        extra["sparse"]["vocabulary_size"] = len(vec.vocabulary_)
    if sp.cv:
        cv = cross_validate(lambda: make_sparse_pipeline(sp, seed), splits.train["text"].tolist(), y_train,
                            int(sp.cv), cfg.data.split_seed, n, pos)
        extra["cv"] = cv
        metrics.update(cv_metrics(cv))
    _log_final(logger, metrics)
    n_params = int(clf.coef_.size + clf.intercept_.size)
    log.info(f"[tunelab] sparse {sp.features}: {extra['sparse']['n_features']:,} features, "
             f"{n_params:,} coefficients, fit in {fit_s:.1f} s")
    return _record(splits, metrics, pred, n_params, extra)


# --------------------------------------------------------------------------- task=features


_LINEAR_HEAD = None


def linear_head(fc: Any, seed: int):
    """A single dense layer (softmax regression) trained with Adam on fixed features, as a
    scikit-learn classifier (the class is built on first use: sklearn is imported lazily)."""
    global _LINEAR_HEAD
    if _LINEAR_HEAD is None:
        from sklearn.base import BaseEstimator, ClassifierMixin

        class LinearHead(ClassifierMixin, BaseEstimator):
            def __init__(self, fc: Any = None, seed: int = 0):
                self.fc = fc
                self.seed = seed

            def __sklearn_is_fitted__(self) -> bool:
                return hasattr(self, "layer_")

            def fit(self, X: np.ndarray, y: np.ndarray):
                import torch

                fc = self.fc
                self.classes_ = np.arange(int(np.max(y)) + 1)
                g = torch.Generator().manual_seed(int(self.seed))
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(int(self.seed))
                    self.layer_ = torch.nn.Linear(X.shape[1], len(self.classes_))
                opt = torch.optim.Adam(self.layer_.parameters(), lr=float(fc.lr),
                                       weight_decay=float(fc.weight_decay))
                Xt = torch.as_tensor(np.asarray(X), dtype=torch.float32)
                yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
                bs = max(1, int(fc.train_batch_size))
                # Thousands of tiny steps: one thread is many times faster than several.
                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    for _ in range(int(fc.epochs)):
                        order = torch.randperm(len(yt), generator=g)
                        for i in range(0, len(yt), bs):
                            idx = order[i:i + bs]
                            opt.zero_grad()
                            torch.nn.functional.cross_entropy(self.layer_(Xt[idx]), yt[idx]).backward()
                            opt.step()
                finally:
                    torch.set_num_threads(threads)
                return self

            def predict_proba(self, X: np.ndarray) -> np.ndarray:
                import torch

                with torch.no_grad():
                    logits = self.layer_(torch.as_tensor(np.asarray(X), dtype=torch.float32))
                    return torch.softmax(logits.double(), -1).numpy()

            def predict(self, X: np.ndarray) -> np.ndarray:
                return self.classes_[self.predict_proba(X).argmax(1)]

            @property
            def n_params(self) -> int:
                return sum(p.numel() for p in self.layer_.parameters())

        _LINEAR_HEAD = LinearHead
    return _LINEAR_HEAD(fc=fc, seed=int(seed))


def make_feature_classifier(fc: Any, seed: int):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if fc.classifier == "logreg":
        clf = make_logreg(fc.C, fc.max_iter, seed)
    elif fc.classifier == "linear":
        if fc.epochs < 1 or fc.lr <= 0:
            raise ConfigError("method.epochs must be >= 1 and method.lr > 0 for method.classifier=linear.")
        clf = linear_head(fc, seed)
    else:
        raise ConfigError(f"method.classifier={fc.classifier!r} is not one of {list(CLASSIFIERS)}.")
    steps = [("scale", StandardScaler())] if fc.standardize else []
    return Pipeline(steps + [("clf", clf)])


def run_features(cfg: DictConfig, ctx) -> dict:
    """Frozen-encoder features (cached on disk) + logistic regression or a dense layer."""
    from tunelab import features as feats

    fc = cfg.method
    seed = int(cfg.seed)
    splits = load_splits(cfg)
    names = splits.label_names
    pos = positive_index(names, cfg.data)
    n = len(names)
    logger = _start_logger(cfg, ctx)
    cache_dir = str(cfg.cache_dir) if cfg.cache_dir else None
    # The encoder is a fixed function of the text: its random init (model.random_init) is drawn
    # under features.encoder_seed, not the run seed, so seeds vary the classifier only and reuse
    # one cache entry.
    enc_seed = seed if fc.encoder_seed is None else int(fc.encoder_seed)
    t0 = time.time()
    X, hits = {}, {}
    for split in ("train", "val", "test"):
        df = getattr(splits, split)
        if len(df):
            arr, hits[split] = feats.cached_features_with_info(
                cfg.model, df["text"].tolist(), pooling=fc.pooling, max_length=int(cfg.model.max_length),
                cache_dir=cache_dir, batch_size=int(fc.batch_size), seed=enc_seed)
            X[split] = np.asarray(arr, dtype=np.float32)
    feature_s = time.time() - t0
    cache_hit = all(hits.values())
    y_train = splits.train["label"].to_numpy()
    model = make_feature_classifier(fc, seed)
    t1 = time.time()
    converged = _fit_quietly(model, X["train"], y_train)
    fit_s = time.time() - t1
    pred, proba = _predict(model, X["test"])
    metrics = classification_metrics(splits.test["label"].to_numpy(), pred, _full_proba(model, proba, n), n, pos, "test")
    if "val" in X:
        vpred, vproba = _predict(model, X["val"])
        metrics.update(classification_metrics(splits.val["label"].to_numpy(), vpred, _full_proba(model, vproba, n),
                                              n, pos, "val"))
    _log_final(logger, metrics)
    clf = model.named_steps["clf"]
    n_params = clf.n_params if hasattr(clf, "layer_") else int(clf.coef_.size + clf.intercept_.size)
    extra = {
        "feature_cache_hit": cache_hit,
        "feature_cache_hits": hits,
        "features": {"pooling": fc.pooling, "classifier": fc.classifier, "dim": int(X["train"].shape[1]),
                     "encoder_seed": enc_seed, "extract_s": round(feature_s, 3), "fit_s": round(fit_s, 3), "converged": converged},
    }
    log.info(f"[tunelab] features {fc.pooling} ({X['train'].shape[1]} dims, cache "
             f"{'hit' if cache_hit else 'miss'}, {feature_s:.1f} s) + {fc.classifier}: fit in {fit_s:.1f} s")
    return _record(splits, metrics, pred, n_params, extra)
