"""Structured-config schemas for every config group.

The YAML files under ``conf/`` only fill these dataclasses in. Registering the root schema as
the base of ``conf/config.yaml`` makes Hydra reject unknown keys (a typo such as
``optim.lrr=1e-4`` fails at start-up, not after an hour of training) and type-check values.
Cross-field checks that a type cannot express live in ``validate()``.

Science (``model``, ``data``, ``task``, ``freeze``, ``optim``, curricula ...) is kept apart from
hardware (``trainer``, ``hydra/launcher``): a study moves to a cluster by changing only the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from tunelab.errors import ConfigError
from tunelab.schemas.adaptation import AdaptConfig, AugmentConfig, ZeroShotConfig
from tunelab.schemas.baselines import FeaturesConfig, SparseConfig
from tunelab.schemas.curriculum import CurriculumConfig, StrategyConfig
from tunelab.schemas.ops import ResumeConfig


@dataclass
class ModelConfig:
    # Hub id (``bert-base-uncased``), local folder, or ``pkg://<dist>/<path>``.
    name: str = MISSING
    # A local Hugging Face folder; when set it wins over ``name`` (e.g. an adapted encoder).
    path: Optional[str] = None
    # Where the tokenizer comes from when it differs from the weights (the ``tiny`` model).
    tokenizer: Optional[str] = None
    # Build the architecture from its config with random weights (tests, smoke runs).
    random_init: bool = False
    # Overrides applied to the model's config (e.g. ``num_hidden_layers: 2`` for ``tiny``).
    config_overrides: Dict[str, Any] = field(default_factory=dict)
    # Remote code runs arbitrary Python from the hub: off unless the user says so.
    trust_remote_code: bool = False
    max_length: int = 128
    dropout: Optional[float] = None


@dataclass
class DataConfig:
    name: str = MISSING
    # Loader: csv | jsonl | conll | bbc_dir | drug_zip | hf
    source: str = MISSING
    path: Optional[str] = None
    # Separate test/validation files instead of a split (the paper's train+test layout).
    test_path: Optional[str] = None
    val_path: Optional[str] = None
    encoding: str = "utf-8"
    delimiter: Optional[str] = None
    text_column: str = "text"
    label_column: str = "label"
    # Class names in index order; rows whose label is in ``drop_labels`` are removed (and
    # counted); any other label not in ``labels`` is an error. None: infer sorted unique labels.
    labels: Optional[List[str]] = None
    drop_labels: List[str] = field(default_factory=list)
    # Map raw label values to names before the checks above (e.g. {0: negative, 1: positive}).
    label_map: Optional[Dict[str, str]] = None
    # The class whose F1 is reported as ``f1`` in binary tasks (default: the second label).
    positive_label: Optional[str] = None
    # Keep only rows of this sub-domain (packaged tweets: airline, deflategate, ...).
    domain: Optional[str] = None
    # Hugging Face datasets: name, config, and column names.
    hf_name: Optional[str] = None
    hf_config: Optional[str] = None
    # Token-classification columns (conll/hf).
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    # Deterministic stratified split; split_seed is independent of the run seed so every seed
    # of a study sees the same held-out examples.
    val_size: float = 0.1
    test_size: float = 0.1
    split_seed: int = 1234
    max_train_samples: Optional[int] = None
    max_eval_samples: Optional[int] = None
    num_workers: int = 0
    # Group training batches by length (less padding); evaluation is always length-sorted.
    bucket_by_length: bool = True


@dataclass
class TaskConfig:
    # seq_cls | token_cls | mlm (later issues add sparse, features, zeroshot)
    name: str = MISSING
    # token_cls: label every sub-token (True) or only the first of each word (False, rest -100).
    label_all_tokens: bool = False
    # mlm
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    whole_word_mask: bool = False
    # Metric that early stopping and checkpointing watch.
    monitor: str = "val/loss"
    monitor_mode: str = "min"


@dataclass
class FreezeConfig:
    name: str = "none"
    # none | all | last_n | first_n | embeddings | gradual
    mode: str = "none"
    # last_n: the top n encoder layers (+ pooler + head) train; first_n: embeddings and the
    # first n layers are frozen.
    n: int = 0
    # gradual: unfreeze one more layer from the top every epoch ("epoch") or every k steps.
    unfreeze_every: str = "epoch"
    unfreeze_k_steps: int = 100


@dataclass
class OptimConfig:
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    # Layer-wise lr decay (Sun et al. 2019): layer l's lr = lr * layer_decay ** (L - l).
    layer_decay: float = 1.0
    # Learning rate of the new head; None = lr.
    head_lr: Optional[float] = None
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 3
    max_steps: int = -1
    grad_clip: float = 1.0
    accumulate_grad_batches: int = 1
    early_stopping_patience: Optional[int] = 3
    val_check_interval: float = 1.0
    adam_eps: float = 1e-8


@dataclass
class TrainerConfig:
    """Hardware only: where and how the loop runs, never what it learns."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    # Each run keeps its best checkpoint (and last, for resume); off saves disk in big sweeps.
    enable_checkpointing: bool = True
    # After a successful run keep: best | all (best + last) | none.
    keep_checkpoints: str = "best"
    deterministic: bool = False
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    # Threads for CPU runs (0 = torch default).
    num_threads: int = 0
    # Limit batches, for smoke tests (1.0 = all).
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    limit_test_batches: float = 1.0
    # freeze=all: compute the frozen encoder's output once per (model, data, max length) and
    # train only the head on the cached features (same metrics; tunelab.frozen).
    feature_cache: bool = True


@dataclass
class LoggerConfig:
    # wandb | csv | none
    name: str = "wandb"
    project: str = "tunelab"
    entity: Optional[str] = None
    # auto: online if the user has configured W&B credentials, else offline. Never prompts.
    mode: str = "auto"
    # Runs of one sweep share a group (default: the sweep dir name).
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # study-level groups (schemas in tunelab.schemas.*)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    zeroshot: ZeroShotConfig = field(default_factory=ZeroShotConfig)
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    seed: int = 0
    # Resume from this Lightning checkpoint.
    ckpt_path: Optional[str] = None
    # Where caches (tokenised data, frozen features) live; shared by all runs of a sweep.
    cache_dir: str = "${oc.env:TUNELAB_CACHE,${oc.env:HOME}/.cache/tunelab}"
    # Free-form note stored in results.json.
    notes: str = ""


_ALLOWED = {
    ("data", "source"): {"csv", "jsonl", "conll", "bbc_dir", "drug_zip", "hf"},
    ("task", "name"): {"seq_cls", "token_cls", "mlm"},
    ("task", "monitor_mode"): {"min", "max"},
    ("freeze", "mode"): {"none", "all", "last_n", "first_n", "embeddings", "gradual"},
    ("freeze", "unfreeze_every"): {"epoch", "steps"},
    ("logger", "name"): {"wandb", "csv", "none"},
    ("trainer", "keep_checkpoints"): {"best", "all", "none"},
    ("logger", "mode"): {"auto", "online", "offline", "disabled"},
}


def allow(section: str, key: str, *values: str) -> None:
    """Let a later module add choices (e.g. new task names) to the validated sets."""
    _ALLOWED.setdefault((section, key), set()).update(values)


def validate(cfg: Any) -> None:
    """Checks a type cannot express. Raises ConfigError naming the key and the fix."""
    for (section, key), allowed in _ALLOWED.items():
        node = cfg.get(section) if hasattr(cfg, "get") else getattr(cfg, section, None)
        if node is None:
            continue
        value = node.get(key) if hasattr(node, "get") else getattr(node, key, None)
        if value is not None and value not in allowed:
            raise ConfigError(
                f"{section}.{key}={value!r} is not one of {sorted(allowed)}."
            )
    d, o, f = cfg.data, cfg.optim, cfg.freeze
    for key in ("val_size", "test_size"):
        v = d[key]
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"data.{key}={v} must be in [0, 1).")
    if d.val_size + d.test_size >= 1.0:
        raise ConfigError("data.val_size + data.test_size must leave some training data (< 1).")
    for key in ("max_train_samples", "max_eval_samples"):
        if d[key] is not None and d[key] <= 0:
            raise ConfigError(f"data.{key}={d[key]} must be a positive number (or null for all).")
    if o.lr <= 0:
        raise ConfigError(f"optim.lr={o.lr} must be > 0.")
    if not 0 < o.layer_decay <= 1:
        raise ConfigError(f"optim.layer_decay={o.layer_decay} must be in (0, 1]; 1 disables it.")
    if not 0 <= o.warmup_ratio < 1:
        raise ConfigError(f"optim.warmup_ratio={o.warmup_ratio} must be in [0, 1).")
    if o.batch_size < 1 or o.eval_batch_size < 1:
        raise ConfigError("optim.batch_size and optim.eval_batch_size must be >= 1.")
    if o.epochs < 1 and o.max_steps < 1:
        raise ConfigError("optim.epochs must be >= 1 (or set optim.max_steps).")
    if f.mode in ("last_n", "first_n") and f.n < 0:
        raise ConfigError(f"freeze.n={f.n} must be >= 0.")
    if cfg.model.max_length < 8:
        raise ConfigError(f"model.max_length={cfg.model.max_length} is too small (>= 8).")


def register_configs() -> None:
    """Register the root schema so ``conf/config.yaml`` can extend it (``- base_config``)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
