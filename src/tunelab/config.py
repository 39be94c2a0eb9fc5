"""Structured-config schemas for every config group.

The YAML files under ``conf/`` only fill these dataclasses in. Registering the root schema as
the base of ``conf/config.yaml`` makes Hydra reject unknown keys (a typo such as
``optim.lrr=1e-4`` fails at start-up, not after an hour of training) and type-check values.
Closed choices and ranges are declared on the fields (``choice``/``bounded``, checked by
``tunelab.schemas.checks``); checks across fields and groups live in ``tunelab.validation``.

Science (``model``, ``data``, ``task``, ``freeze``, ``optim``, curricula ...) is kept apart from
hardware (``trainer``, ``hydra/launcher``): a study moves to a cluster by changing only the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from tunelab.schemas.adaptation import AdaptConfig, AugmentConfig
from tunelab.schemas.checks import bounded, choice
from tunelab.schemas.curriculum import CurriculumConfig, StrategyConfig
from tunelab.schemas.methods import METHOD_SCHEMAS
from tunelab.schemas.peft import PeftConfig
from tunelab.schemas.ops import ResumeConfig
from tunelab.schemas.probe import ProbeConfig
from tunelab.schemas.study import StudyConfig


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
    max_length: int = bounded(128, 8)
    dropout: Optional[float] = bounded(None, 0, 1, hi_open=True)


# The sources that are one file of rows (data.path, with optional val_path/test_path), read by
# tunelab.data.sources.load_files; kept here, light, so the start-up file check needs no pandas.
FILE_SOURCES = ("csv", "jsonl", "conll")


@dataclass
class DataConfig:
    name: str = MISSING
    # Loader: csv | jsonl | conll | bbc_dir | drug_zip | hf
    source: str = choice(MISSING, *FILE_SOURCES, "bbc_dir", "drug_zip", "hf")
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
    # Map raw label values to names before the checks above (e.g. {0: negative, 1: positive}; on
    # the command line +data.label_map={0:negative,1:positive}: Hydra adds keys to a dict only
    # with +, and to a null node not at all, hence {} and not null). Keys may be numbers.
    label_map: Dict[Any, str] = field(default_factory=dict)
    # Token classification: the tags in id order (any other tag is an error). None: O, then the
    # tags found, by entity type then B/I.
    tags: Optional[List[str]] = None
    # With labels/tags inferred, one seen in < 5 rows and < 0.5 % of them is an error (a typo is
    # likelier than a class: tunelab.data.labels); true keeps such labels as classes.
    allow_rare_labels: bool = False
    # The class whose F1 is reported as ``f1`` in binary tasks (default: the second label).
    positive_label: Optional[str] = None
    # Keep only rows of this sub-domain (packaged tweets: airline, deflategate, ...).
    domain: Optional[str] = None
    # An out-of-domain test split (tunelab.data.ood), scored by every evaluating job as test_ood/*:
    # topics of the same corpus left out of train, validation and the in-domain test
    # (``ood_domains: [apple, coachella]``), or another file of the same format and labels
    # (``ood_test_path``); one or the other.
    ood_domains: List[str] = field(default_factory=list)
    ood_test_path: Optional[str] = None
    # Downsample every class to the rarest one's count (seeded by split_seed) before splitting,
    # so always guessing one class scores 1/k. For sub-domains whose labels are 80/20: there a
    # model that learned nothing scores 0.80 and a stage that flips the prior "forgets" by it.
    balance_classes: bool = False
    # Hugging Face datasets: name, config, and column names.
    hf_name: Optional[str] = None
    hf_config: Optional[str] = None
    # Token-classification columns (conll/hf).
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    # Deterministic stratified split; split_seed is independent of the run seed so every seed
    # of a study sees the same held-out examples.
    val_size: float = bounded(0.1, 0, 1, hi_open=True)
    test_size: float = bounded(0.1, 0, 1, hi_open=True)
    split_seed: int = bounded(1234, 0, 2**32 - 1)
    max_train_samples: Optional[int] = bounded(None, 1, hint=" (or null for all)")
    max_eval_samples: Optional[int] = bounded(None, 1, hint=" (or null for all)")
    num_workers: int = bounded(0, 0)
    # Group training batches by length (less padding); evaluation is always length-sorted.
    bucket_by_length: bool = True


@dataclass
class TaskConfig:
    # What is predicted. How a model is obtained (fine-tuning, sparse features, ...) is ``method``.
    name: str = choice(MISSING, "seq_cls", "token_cls", "mlm")
    # token_cls: label every sub-token (True) or only the first of each word (False, rest -100).
    label_all_tokens: bool = False
    # mlm
    mlm_probability: float = bounded(0.15, 0, 1, lo_open=True)
    mask_replace_prob: float = bounded(0.8, 0, 1)
    random_replace_prob: float = bounded(0.1, 0, 1)
    whole_word_mask: bool = False
    # Metric that early stopping and checkpointing watch.
    monitor: str = "val/loss"
    monitor_mode: str = choice("min", "min", "max")


@dataclass
class FreezeConfig:
    name: str = "none"
    # none | all | last_n | first_n | embeddings | gradual | bitfit | lpft (tunelab.models.policy)
    mode: str = choice("none", "none", "all", "last_n", "first_n", "embeddings", "gradual", "bitfit", "lpft")
    # last_n: the top n encoder layers (+ pooler + head) train; first_n: embeddings and the
    # first n layers are frozen.
    n: int = bounded(0, 0)
    # gradual: unfreeze one more block from the top in equal stages of the run ("stage": n blocks
    # to thaw -> n + 1 stages, the last trains everything, whatever the number of epochs; the
    # default of conf/freeze/gradual.yaml), every epoch ("epoch", ULMFiT's: fewer epochs than
    # blocks leave the lower ones frozen) or every k optimiser steps ("steps"). The default here
    # stays "epoch": it is part of every job's identity (tunelab.ops.identity), and a new default
    # would make every finished job of a resumable study look like another job.
    unfreeze_every: str = choice("epoch", "epoch", "steps", "stage")
    unfreeze_k_steps: int = bounded(100, 1)
    # freeze=all: how the classifier is fitted on the frozen encoder (schemas/probe.py);
    # freeze=lpft: how the head is fitted before everything is fine-tuned (fit: head).
    probe: Optional[ProbeConfig] = None


@dataclass
class OptimConfig:
    lr: float = bounded(5e-5, 0, lo_open=True)
    weight_decay: float = bounded(0.01, 0)
    warmup_ratio: float = bounded(0.1, 0, 1, hi_open=True)
    # Layer-wise lr decay (Sun et al. 2019): layer l's lr = lr * layer_decay ** (L - l).
    layer_decay: float = bounded(1.0, 0, 1, lo_open=True, hint="; 1 disables it")
    # Learning rate of the new head; None = lr.
    head_lr: Optional[float] = bounded(None, 0, lo_open=True)
    batch_size: int = bounded(32, 1)
    eval_batch_size: int = bounded(64, 1)
    epochs: int = 3
    max_steps: int = -1
    grad_clip: float = bounded(1.0, 0)
    accumulate_grad_batches: int = bounded(1, 1)
    early_stopping_patience: Optional[int] = bounded(3, 0)
    val_check_interval: float = bounded(1.0, 0, lo_open=True)
    adam_eps: float = bounded(1e-8, 0, lo_open=True)


@dataclass
class TrainerConfig:
    """Hardware only: where and how the loop runs, never what it learns."""

    # (the accelerators and precisions Lightning 2.x takes; a misspelt one failed after the model loaded)
    accelerator: str = choice("cpu", "cpu", "gpu", "cuda", "mps", "tpu", "auto")
    devices: Any = 1
    strategy: str = "auto"
    precision: str = choice("32-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true",
                            "32", "16", "bf16", "64", "transformer-engine", "transformer-engine-float16")
    num_nodes: int = bounded(1, 1)
    # Each run keeps its best checkpoint (and last, for resume); off saves disk in big sweeps.
    enable_checkpointing: bool = True
    # After a successful run keep: best | all (best + last) | none.
    keep_checkpoints: str = choice("best", "best", "all", "none")
    deterministic: bool = False
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    # Batch jobs (stdout not a terminal): a plain progress line every this many optimiser steps
    # and after each validation (tunelab.progress); 0 turns the lines off.
    progress_every_n_steps: int = bounded(50, 0)
    # Threads for CPU runs (0 = torch default).
    num_threads: int = bounded(0, 0)
    # Limit batches, for smoke tests (1.0 = all).
    limit_train_batches: float = bounded(1.0, 0, 1, lo_open=True, hint=" (a fraction of the batches; 1.0 = all)")
    limit_val_batches: float = bounded(1.0, 0, 1, lo_open=True, hint=" (a fraction of the batches; 1.0 = all)")
    limit_test_batches: float = bounded(1.0, 0, 1, lo_open=True, hint=" (a fraction of the batches; 1.0 = all)")
    # freeze=all: compute the frozen encoder's output once per (model, data, max length) and
    # train only the head on the cached features (same metrics; tunelab.models.cache.frozen).
    # Frozen bottom layers (freeze=last_n|first_n): their output is cached likewise and only the
    # top layers train (tunelab.models.cache.prefix_module).
    feature_cache: bool = True
    # How the frozen-prefix cache stores hidden states: float32 (exact) or bfloat16 (half the
    # disk and page cache; results then carry bf16 rounding of the cached states).
    feature_cache_dtype: str = choice("float32", "float32", "bfloat16")
    # CPU runs: dropout masks from 15-bit uniforms (a quarter of torch's random draws) and eager
    # attention, whose dropout is then one of them (tunelab.models.dropout). Same generator and
    # seeding, same keep probability (p rounded to 2**-15); other masks than torch's for a seed.
    fast_dropout: bool = False


@dataclass
class LoggerConfig:
    name: str = choice("wandb", "wandb", "csv", "none")
    project: str = "tunelab"
    entity: Optional[str] = None
    # auto: online if the user has configured W&B credentials, else offline. Never prompts.
    mode: str = choice("auto", "auto", "online", "offline", "disabled")
    # Runs of one sweep share a group (default: the sweep dir name).
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    # How a model is obtained for the task: one YAML per method under conf/method/, whose
    # ``_target_`` names the function that runs the job (tunelab.methods.*).
    method: Any = MISSING
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    # Parameter-efficient modules trained on the frozen encoder (LoRA, adapters, IA3): one task.
    peft: PeftConfig = field(default_factory=PeftConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Options of one method each, present only when chosen (null otherwise), so a saved config
    # holds only what ran: curriculum + strategy (method=curriculum), adapt (method=adapt),
    # augment (training-text augmentation, fine-tuning methods).
    curriculum: Optional[CurriculumConfig] = None
    strategy: Optional[StrategyConfig] = None
    adapt: Optional[AdaptConfig] = None
    augment: Optional[AugmentConfig] = None
    resume: ResumeConfig = field(default_factory=ResumeConfig)
    seed: int = bounded(0, 0, 2**32 - 1)
    # Optional split of ``seed`` (method=finetune; null = ``seed``, bit-identical to a run without
    # them): init_seed -> random initial weights and dropout masks, order_seed -> batch order and
    # augmentation (tunelab.seeds). Sweep both for a crossed design the report decomposes.
    init_seed: Optional[int] = bounded(None, 0, 2**32 - 1)
    order_seed: Optional[int] = bounded(None, 0, 2**32 - 1)
    # Resume from this Lightning checkpoint.
    ckpt_path: Optional[str] = None
    # Where caches (tokenised data, frozen features) live; shared by all runs of a sweep.
    cache_dir: str = "${oc.env:TUNELAB_CACHE,${oc.env:HOME}/.cache/tunelab}"
    # Free-form note stored in results.json.
    notes: str = ""
    # hydra/sweeper=tune only (tunelab.schemas.study), inert in a run of its own: the arm's search
    # space (dotted key -> Hydra sweep syntax, e.g. optim.lr: tag(log, interval(1e-5, 1e-4))) and
    # the job's phase and trial, which the sweeper sets.
    search: Dict[str, str] = field(default_factory=dict)
    study: StudyConfig = field(default_factory=StudyConfig)


def register_configs() -> None:
    """Register the schemas the YAML files extend: the root (``- base_config`` in
    ``conf/config.yaml``) and one per method (``- schema`` in each ``conf/method/*.yaml``), and
    the resolvers ``conf/resume/auto.yaml`` names (job dirs by identity: tunelab.ops.identity)."""
    from omegaconf import OmegaConf

    from tunelab.ops.identity import register_resolvers

    register_resolvers()
    if not OmegaConf.has_resolver("tunelab_help_groups"):
        OmegaConf.register_new_resolver("tunelab_help_groups", help_groups)
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=RunConfig)
    for name, schema in METHOD_SCHEMAS.items():
        cs.store(group="method", name=f"{name}_schema", node=schema)


# The help text's group list, per search path. OmegaConf evaluates the template's
# ``${tunelab_help_groups:}`` whenever a merge touches ``hydra.help`` (to see whether it names a
# node), i.e. on every compose, not only for --help; listing every group of conf/ costs ~0.5 s
# (Hydra deep-copies its repository per group), which was a third of a one-step test's time and
# part of every job's start. The list depends only on the config files on the search path.
_HELP_GROUPS: dict[tuple, str] = {}


def help_groups() -> str:
    """``group: option, ...`` per config group, for ``--help`` (conf/hydra/help/tunelab.yaml).

    Hydra's own list (``$APP_CONFIG_GROUPS``) also shows the schemas stored above as options of
    ``method`` (``finetune_schema``), which are not methods; this one leaves them out."""
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    key = tuple((e.provider, e.path) for e in loader.get_search_path().get_path())
    if key not in _HELP_GROUPS:
        _HELP_GROUPS[key] = _list_groups(loader)
    return _HELP_GROUPS[key]


def _list_groups(loader) -> str:
    lines = []

    def walk(parent: str) -> None:
        for name in sorted(loader.list_groups(parent)):
            group = f"{parent}/{name}" if parent else name
            if group == "hydra":
                continue
            options = [o for o in sorted(loader.get_group_options(group)) if not o.endswith("_schema")]
            if options:
                lines.append(f"{group}: {', '.join(options)}")
            walk(group)

    walk("")
    return "\n".join(lines)


def compose_option(group: str, name: str) -> Any:
    """One group option's node (``conf/<group>/<name>.yaml``), composed by Hydra on the schema.

    Curricula, adaptation corpora and feature extraction name other configs (``drug_reviews``,
    ``minilm``); Hydra composes them, so the run's search path applies and no module reads a
    YAML by file path. Inside a job Hydra is initialised already; elsewhere (a test, a notebook)
    the packaged configs ``tunelab.conf`` are used.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from tunelab.errors import ConfigError

    def _compose():
        try:
            return compose(config_name="config", overrides=[f"{group}={name}"])[group]
        except HydraException:
            options = GlobalHydra.instance().config_loader().get_group_options(group)
            raise ConfigError(f"no {group} config named {name!r}; the {group} options are "
                              f"{sorted(options)}.") from None

    if GlobalHydra.instance().is_initialized():
        return _compose()
    register_configs()
    with initialize_config_module(config_module="tunelab.conf", version_base="1.3"):
        return _compose()
