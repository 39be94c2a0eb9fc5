"""A classifier fitted on frozen-encoder features: ``method=features`` and ``freeze=all``'s probe.

How much of fine-tuning's gain comes from the pretrained representation alone? The encoder's
pooled output (``cls|mean|concat_last4|pooler``) is computed once per model and data and read
from the disk cache of :mod:`tunelab.models.cache.features` afterwards, so a sweep over seeds or
classifiers pays for the encoder once. On the (standardised) features it fits a logistic
regression (C chosen by CV) or a single dense layer, on the same splits and with the same scores
as fine-tuning (:mod:`.shallow`).

``freeze=all`` (the plan's ``logreg`` route, :func:`run_logreg`) is this very computation with
the probe's settings: ``freeze=all`` and ``method=features method.pooling=mean`` give the same
numbers (tested). Why the head of a frozen encoder is not trained like a fine-tuned model, and
what each ``freeze.probe.fit`` does, is in :mod:`tunelab.schemas.probe`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

import numpy as np
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, ClassifierMixin

from tunelab.errors import DataError
from tunelab.methods.shared.data import class_space, load_splits
from tunelab.methods.shared.record import baseline_record
from tunelab.methods.shared.shallow import evaluate, fit_quietly, log_final, make_logreg
from tunelab.training import start_logger

log = logging.getLogger("tunelab")


class LinearHead(ClassifierMixin, BaseEstimator):
    """A single dense layer (softmax regression) trained with Adam on fixed features.

    The same kind of head fine-tuning puts on the encoder, but trained on cached features as a
    scikit-learn classifier, so it drops into the same pipeline, CV and scoring as ``logreg``.
    Mini-batch Adam (``method.train_batch_size``, ``method.epochs``, ``method.lr``), shuffled by
    a generator seeded with the run seed.
    """

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
        opt = torch.optim.Adam(self.layer_.parameters(), lr=float(fc.lr), weight_decay=float(fc.weight_decay))
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


def make_classifier(fc: Any, seed: int):
    """(Standardiser +) the classifier ``method.classifier`` names (choices checked by the schema).

    ``logreg`` with ``C: null`` picks C from ``Cs`` by stratified ``cv``-fold cross-validation on
    the training rows (log loss: a proper score, smoother than accuracy on a few hundred rows),
    then refits on all of them: the L2 strength a frozen feature needs differs by model and data
    size by orders of magnitude, so no fixed C is safe. The folds are shuffled with the run seed.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if fc.classifier != "logreg":
        clf = LinearHead(fc=fc, seed=int(seed))
    elif fc.C is not None:
        clf = make_logreg(fc.C, fc.max_iter, seed)
    else:
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold

        # Newton-Cholesky: a few exact Newton steps per C on hundreds of dense features; lbfgs
        # needed minutes for the weakly regularised end of the path (measured: 2.9 s vs 257 s).
        clf = LogisticRegressionCV(Cs=[float(c) for c in fc.Cs], scoring="neg_log_loss", solver="newton-cholesky",
                                   max_iter=int(fc.max_iter),
                                   cv=StratifiedKFold(int(fc.cv), shuffle=True, random_state=int(seed)),
                                   random_state=int(seed))
    steps = [("scale", StandardScaler())] if fc.standardize else []
    return Pipeline(steps + [("clf", clf)])


def _check_folds(fc: Any, y: np.ndarray, where: str) -> None:
    """CV needs every class in every fold: say so in one sentence instead of sklearn's traceback."""
    if fc.classifier == "logreg" and fc.C is None:
        smallest = int(np.bincount(y).min()) if len(y) else 0
        if smallest < int(fc.cv):
            raise DataError(f"{where}.cv={fc.cv}-fold CV to choose C needs >= {fc.cv} training examples of every "
                            f"class, but one class has {smallest}: lower {where}.cv, set {where}.C, or add data.")


def fit_features(cfg: DictConfig, ctx, fc: Any, *, job_type: str, where: str, cache_dir: Optional[str],
                 total_params: Optional[int] = None, seed: Optional[int] = None) -> dict:
    """Features of every split (``fc.pooling``), the classifier fitted on train, the record.

    Shared by ``method=features`` and ``freeze=all``'s logistic-regression probe
    (:func:`run_logreg`), so the two frozen rows of a study are the same computation.
    """
    from tunelab.models.cache import features as feats

    seed = int(cfg.seed) if seed is None else int(seed)
    splits = load_splits(cfg)
    n, pos = class_space(cfg, splits)
    y_train = splits.train["label"].to_numpy()
    _check_folds(fc, y_train, where)
    logger = start_logger(cfg, ctx, job_type=job_type)
    enc_seed = seed if fc.encoder_seed is None else int(fc.encoder_seed)
    t0 = time.time()
    X, hits = {}, {}
    for split in splits.names:
        df = getattr(splits, split)
        if len(df):
            arr, hits[split] = feats.cached_features_with_info(
                cfg.model, df["text"].tolist(), pooling=fc.pooling, max_length=int(cfg.model.max_length),
                cache_dir=cache_dir, batch_size=int(fc.batch_size), seed=enc_seed)
            X[split] = np.asarray(arr, dtype=np.float32)
    feature_s = time.time() - t0
    cache_hit = bool(cache_dir) and all(hits.values())
    model = make_classifier(fc, seed)
    t1 = time.time()
    converged = fit_quietly(model, X["train"], y_train)
    fit_s = time.time() - t1
    metrics, pred, proba, others = evaluate(model, splits, X, n, pos)
    log_final(logger, metrics)
    clf = model.named_steps["clf"]
    n_params = clf.n_params if isinstance(clf, LinearHead) else int(clf.coef_.size + clf.intercept_.size)
    chosen_c = float(np.ravel(clf.C_)[0]) if hasattr(clf, "C_") else (None if fc.classifier != "logreg" else float(fc.C))
    extra = {
        "feature_cache_hit": cache_hit,
        "feature_cache_hits": hits,
        "features": {"pooling": fc.pooling, "classifier": fc.classifier, "dim": int(X["train"].shape[1]),
                     "encoder_seed": enc_seed, "extract_s": round(feature_s, 3), "fit_s": round(fit_s, 3),
                     "converged": converged, "C": chosen_c},
    }
    how = f"C={chosen_c:g}" + (" (CV)" if fc.classifier == "logreg" and fc.C is None else "") if chosen_c else ""
    log.info(f"[tunelab] features {fc.pooling} ({X['train'].shape[1]} dims, cache "
             f"{'hit' if cache_hit else 'miss'}, {feature_s:.1f} s) + {fc.classifier} {how}: fit in {fit_s:.1f} s")
    total = None if total_params is None else total_params + n_params
    return baseline_record(splits, metrics, pred, n_params, extra, total=total, proba=proba, others=others)


def encoder_params(model_cfg) -> int:
    """Parameters of the frozen encoder, counted on the meta device (no weights read)."""
    import torch
    from transformers import AutoModel

    from tunelab.models.loading import load_config

    with torch.device("meta"):
        model = AutoModel.from_config(load_config(model_cfg))
    return int(sum(p.numel() for p in model.parameters()))


def run_logreg(cfg: DictConfig, ctx, route) -> dict:
    """The plan's ``logreg`` route: logistic regression on the frozen encoder's pooled features,
    C chosen by CV (``freeze.probe``)."""
    from omegaconf import OmegaConf

    from tunelab.models.plan import fixed_record
    from tunelab.seeds import order_seed

    probe = route.policy.probe
    # The method=features node this probe is: same code, same numbers as method=features
    # method.pooling=<pooling> (random-init encoders drawn under seed 0 in both).
    fc = OmegaConf.create({"pooling": probe.pooling, "classifier": "logreg", "standardize": True,
                           "batch_size": max(int(cfg.optim.eval_batch_size), 64), "encoder_seed": 0,
                           "C": probe.C, "Cs": list(probe.Cs), "cv": int(probe.cv),
                           "max_iter": int(probe.max_iter)})
    cache = str(cfg.cache_dir) if route.cache == "features" else None
    log.info(f"[tunelab] freeze=all: logistic regression on the frozen encoder's {probe.pooling}-pooled "
             f"features (freeze.probe.fit=logreg; fit=head or fit=paper train the HF head instead)")
    total = encoder_params(cfg.model)
    # A convex fit has no initialisation; the CV folds are its only randomness: the data order.
    rec = fit_features(cfg, ctx, fc, job_type="finetune", where="freeze.probe", cache_dir=cache,
                       total_params=total, seed=order_seed(cfg))
    rec["plan"] = fixed_record(runner="logreg", cache=route.cache, why=route.why, encoder_params=total,
                               classifier_params=rec["params"]["trainable"], pooling=probe.pooling,
                               policy=route.policy)
    return rec
