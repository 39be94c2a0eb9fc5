"""Load a Hugging Face encoder with the right head, from a package, a folder or the hub.

One code path serves all three: ``locate.resolve_local`` turns package specs and local folders
into paths, and anything else goes to ``from_pretrained`` as a hub id. When the hub cannot be
reached the user gets one sentence naming the packaged alternative, not a stack of retries.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

from tunelab.errors import ConfigError, HubUnavailableError
from tunelab.locate import PKG_PREFIX, resolve_local

AUTO_CLASSES = {
    "seq_cls": "AutoModelForSequenceClassification",
    "token_cls": "AutoModelForTokenClassification",
    "mlm": "AutoModelForMaskedLM",
    "encoder": "AutoModel",
}


@dataclass
class LoadReport:
    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # kind=mlm: whether the MLM head (or part of it) was initialised here, not read from the checkpoint.
    fresh_head: Optional[bool] = None


def model_label(model_cfg: Any) -> str:
    """A short, stable name for results: the package or hub id, or the folder name."""
    spec = model_cfg.path or model_cfg.name
    if spec.startswith(PKG_PREFIX):
        spec = spec[len(PKG_PREFIX):].split("/")[0]
    label = spec.rstrip("/").split("/")[-1] if model_cfg.path else spec
    return label + ("-random-init" if model_cfg.random_init else "")


def resolve_source(spec: str, key: str) -> str:
    """Local path (package or folder) as a string, or the hub id unchanged."""
    local = resolve_local(spec)
    if local is not None:
        return str(local)
    if spec.startswith(PKG_PREFIX) or spec.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"{key}: '{spec}' does not exist.")
    return spec


def _hub_error(name: str, err: Exception, what: str = "model") -> HubUnavailableError:
    first = str(err).strip().splitlines()[0][:240] if str(err).strip() else type(err).__name__
    return HubUnavailableError(
        f"could not load {what} '{name}': not a local folder, and the Hugging Face hub did not "
        f"provide it ({first}). Offline, use the packaged encoder (model=minilm) or a local "
        f"Hugging Face folder (model.path=/path/to/folder)."
    )


def model_source(model_cfg: Any) -> str:
    if model_cfg.path:
        local = resolve_local(model_cfg.path)
        if local is None:
            raise ConfigError(f"model.path: folder not found: '{model_cfg.path}'.")
        return str(local)
    return resolve_source(model_cfg.name, "model.name")


def load_tokenizer(model_cfg: Any):
    from transformers import AutoTokenizer

    spec = model_cfg.tokenizer or None
    src = resolve_source(spec, "model.tokenizer") if spec else model_source(model_cfg)
    try:
        return AutoTokenizer.from_pretrained(src, trust_remote_code=model_cfg.trust_remote_code)
    except OSError as e:
        raise _hub_error(src, e, "tokenizer") from None
    except Exception as e:  # noqa: BLE001 - only the converter's missing libraries are turned into a sentence
        missing = converter_libraries_missing(e)
        if missing:
            raise ConfigError(
                f"the tokenizer of '{src}' has no tokenizer.json, only its original files (a SentencePiece "
                f"model such as spm.model or spiece.model), and transformers needs {' and '.join(missing)} "
                f"to convert them: pip install sentencepiece protobuf.") from None
        if isinstance(e, ValueError):
            raise _hub_error(src, e, "tokenizer") from None
        raise


# What transformers needs to build a fast tokenizer from a SentencePiece model when a checkpoint
# ships no tokenizer.json (microsoft/deberta-v3-*, mDeBERTa: spm.model only). Both are tunelab
# dependencies (pyproject.toml); an environment without them fails inside transformers 4.57 with
# "AttributeError: 'NoneType' object has no attribute 'endswith'" (convert_slow_tokenizer), a
# ValueError ("Couldn't instantiate the backend tokenizer") or an ImportError naming protobuf.
CONVERTER_LIBRARIES = ("sentencepiece", "protobuf")


def converter_libraries_missing(err: BaseException) -> list[str]:
    """The converter's libraries absent from this environment, when ``err`` came from converting a
    tokenizer's original files (the slow→fast converter in its traceback, or a message naming a
    library); else ``[]``, so that an unrelated error keeps its own message."""
    from transformers.utils import is_protobuf_available, is_sentencepiece_available

    available = {"sentencepiece": is_sentencepiece_available(), "protobuf": is_protobuf_available()}
    missing = [name for name in CONVERTER_LIBRARIES if not available[name]]
    if not missing:
        return []
    frames, tb = [], err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    text = str(err).lower()
    if "transformers.convert_slow_tokenizer" in frames or any(w in text for w in (*CONVERTER_LIBRARIES, "tiktoken")):
        return missing
    return []


# Config keys that hold a dropout probability, whatever the family calls them: BERT's
# hidden_dropout_prob / attention_probs_dropout_prob / classifier_dropout, DistilBERT's dropout /
# attention_dropout / seq_classif_dropout, ModernBERT's embedding_ / attention_ / mlp_dropout,
# DeBERTa's pooler_dropout, ALBERT's classifier_dropout_prob ...
DROPOUT_KEY_ENDINGS = ("dropout", "dropout_prob", "dropout_rate")


def dropout_keys(config) -> list[str]:
    """The keys of ``config`` that set a dropout probability (None-valued ones fall back to another)."""
    return sorted(k for k, v in config.to_dict().items()
                  if k.endswith(DROPOUT_KEY_ENDINGS) and (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))))


def load_config(model_cfg: Any, **extra):
    """The model's config with ``config_overrides``, then ``model.dropout`` on every dropout key."""
    from transformers import AutoConfig

    src = model_source(model_cfg)
    kwargs = dict(model_cfg.config_overrides or {})
    kwargs.update(extra)
    try:
        config = AutoConfig.from_pretrained(src, trust_remote_code=model_cfg.trust_remote_code, **kwargs)
    except (OSError, ValueError) as e:
        raise _hub_error(src, e) from None
    if model_cfg.dropout is not None:
        for key in dropout_keys(config):
            setattr(config, key, float(model_cfg.dropout))
    return config


def load_model(model_cfg: Any, kind: str, *, num_labels: Optional[int] = None,
               label_names: Optional[list[str]] = None, fast_dropout: bool = False):
    """Return ``(model, LoadReport)`` for ``kind`` in AUTO_CLASSES.

    ``fast_dropout`` (a CPU run with ``trainer.fast_dropout``: :func:`tunelab.models.dropout.wanted`)
    loads eager attention, whose dropout is a module, and swaps the dropout modules.
    """
    import transformers

    auto = getattr(transformers, AUTO_CLASSES[kind])
    extra = {}
    if fast_dropout and "attn_implementation" not in (model_cfg.config_overrides or {}):
        extra["attn_implementation"] = "eager"
    if num_labels:
        extra["num_labels"] = num_labels
    if label_names:
        extra["id2label"] = dict(enumerate(label_names))
        extra["label2id"] = {n: i for i, n in enumerate(label_names)}
    config = load_config(model_cfg, **extra)
    src = model_source(model_cfg)
    report = LoadReport(source=src)
    if model_cfg.random_init:
        model = auto.from_config(config, trust_remote_code=model_cfg.trust_remote_code)
        report.notes.append("weights randomly initialised from the config (model.random_init=true)")
        report.fresh_head = True if kind == "mlm" else None
        return _with_dropout(model, report, fast_dropout), report
    prev = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # we print our own, shorter load report
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = auto.from_pretrained(src, config=config, output_loading_info=True,
                                               trust_remote_code=model_cfg.trust_remote_code)
    except (OSError, ValueError) as e:
        raise _hub_error(src, e) from None
    finally:
        transformers.logging.set_verbosity(prev)
    report.missing = sorted(info.get("missing_keys", []))
    report.unexpected = sorted(info.get("unexpected_keys", []))
    if kind == "mlm":
        report.fresh_head = bool(set(head_param_names(model)) & set(report.missing))
        if report.fresh_head:
            report.notes.append(
                "the checkpoint has no trained MLM head: a fresh head was initialised "
                "(its decoder is tied to the trained word embeddings); expect a high starting perplexity"
            )
    return _with_dropout(model, report, fast_dropout), report


def head_param_names(model) -> list[str]:
    """Names of the parameters outside the base encoder (the task head), less any tied to the word
    embeddings (an MLM decoder that is the embedding matrix is not a fresh head when missing)."""
    prefix = getattr(model, "base_model_prefix", "") + "."
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = {id(emb.weight)} if emb is not None else set()
    return [n for n, p in model.named_parameters(remove_duplicate=False)
            if not n.startswith(prefix) and id(p) not in tied]


def _with_dropout(model, report: LoadReport, fast: bool):
    if fast:
        from tunelab.models.dropout import use_fast_dropout

        n = use_fast_dropout(model)
        report.notes.append(f"trainer.fast_dropout: {n} dropout modules draw 15-bit masks "
                            f"(tunelab.models.dropout), attention {model.config._attn_implementation}")
    return model


def print_load_report(report: LoadReport, log=print) -> None:
    log(f"[tunelab] model loaded from {report.source}")
    for note in report.notes:
        log(f"[tunelab]   note: {note}")
    if report.missing:
        shown = ", ".join(report.missing[:6]) + (" ..." if len(report.missing) > 6 else "")
        log(f"[tunelab]   newly initialised ({len(report.missing)} tensors): {shown}")
    if report.unexpected:
        shown = ", ".join(report.unexpected[:4]) + (" ..." if len(report.unexpected) > 4 else "")
        log(f"[tunelab]   unused from checkpoint ({len(report.unexpected)} tensors): {shown}")
