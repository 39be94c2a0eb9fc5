"""Tiny folders in the file layout the Hugging Face hub ships, without a fast tokenizer's JSON.

``tests/families.py`` saves every folder with ``save_pretrained``, so each carries a
``tokenizer.json`` and ``model.safetensors``. Many real checkpoints do not: transformers has to
build the fast tokenizer from the original files (the slow→fast converter), which needs
``sentencepiece`` and ``protobuf`` for a SentencePiece model, and read ``pytorch_model.bin``.

* ``deberta_v3`` — ``microsoft/deberta-v3-base``: ``spm.model`` (``[PAD]``/``[CLS]``/``[SEP]``/``[UNK]``
  at 0-3, ``[MASK]`` added after the pieces), ``tokenizer_config.json``, ``config.json``,
  ``pytorch_model.bin``;
* ``albert`` — ``albert-base-v2``: ``spiece.model`` (``<pad>``, ``<unk>``, ``[CLS]``, ``[SEP]``,
  ``[MASK]`` at 0-4), lower-cased by the tokenizer;
* ``xlmr`` — ``xlm-roberta-base``: ``sentencepiece.bpe.model`` (``<unk>``, ``<s>``, ``</s>`` at 0-2;
  the tokenizer puts fairseq's ``<s> <pad> </s> <unk>`` first and shifts every piece by one);
* ``roberta`` — ``roberta-base``'s GPT-2 files ``vocab.json`` + ``merges.txt``;
* ``deberta_v1`` — ``microsoft/deberta-base``: GPT-2 ``vocab.json`` + ``merges.txt`` with
  ``[CLS]``/``[SEP]``.

The SentencePiece models are trained here with ``sentencepiece``'s own trainer on packaged tweets
(a fraction of a second), so the tests can compare the converted fast tokenizer with the
``sentencepiece`` processor's own ``encode`` — an implementation the converter does not share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from families import HEADS, HIDDEN, LAYERS, POSITIONS, SEED, DEBERTA_RELATIVE, FFN, training_texts

HUB_FORMATS = ("deberta_v3", "albert", "xlmr", "roberta", "deberta_v1")
SPM_FORMATS = ("deberta_v3", "albert", "xlmr")
BYTE_LEVEL = ("roberta", "deberta_v1")
SPM_VOCAB = 1000

# The tokenizer files each layout ships: nothing else of the tokenizer is in the folder.
TOKENIZER_FILES = {
    "deberta_v3": {"spm.model", "tokenizer_config.json"},
    "albert": {"spiece.model"},
    "xlmr": {"sentencepiece.bpe.model"},
    "roberta": {"vocab.json", "merges.txt"},
    "deberta_v1": {"vocab.json", "merges.txt", "tokenizer_config.json"},
}


def train_spm(texts: list[str], path: Path, **special) -> Path:
    """A Unigram SentencePiece model of ``SPM_VOCAB`` pieces trained on ``texts`` (seeded by its input:
    the trainer is deterministic on one thread), written to ``path``."""
    import io

    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(texts), model_writer=buf, vocab_size=SPM_VOCAB,
                                   model_type="unigram", num_threads=1, minloglevel=2,
                                   hard_vocab_limit=True, **special)
    path.write_bytes(buf.getvalue())
    return path


# SentencePiece ids as each family's model was trained (the trainer's own specials and the control symbols).
SPM_SPECIALS = {
    "deberta_v3": dict(pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                       eos_piece="[SEP]", unk_piece="[UNK]"),
    "albert": dict(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, pad_piece="<pad>", unk_piece="<unk>",
                   control_symbols=["[CLS]", "[SEP]", "[MASK]"]),
    "xlmr": dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1),
}
SPM_FILE = {"deberta_v3": "spm.model", "albert": "spiece.model", "xlmr": "sentencepiece.bpe.model"}


def _gpt2_files(folder: Path, texts: list[str], specials: list[str]) -> None:
    """``vocab.json`` + ``merges.txt`` of a byte-level BPE trained on ``texts`` (the GPT-2 layout)."""
    from families import _byte_level_bpe

    _byte_level_bpe(texts, specials).model.save(str(folder))


def _write_tokenizer(fmt: str, folder: Path, texts: list[str]) -> None:
    if fmt in SPM_FORMATS:
        train_spm(texts, folder / SPM_FILE[fmt], **SPM_SPECIALS[fmt])
    elif fmt == "roberta":
        _gpt2_files(folder, texts, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    elif fmt == "deberta_v1":
        _gpt2_files(folder, texts, ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"])
    else:
        raise KeyError(fmt)
    if fmt == "deberta_v3":  # as microsoft/deberta-v3-base's tokenizer_config.json
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False, "vocab_type": "spm"}))
    if fmt == "deberta_v1":
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))


def _sizes(**extra) -> dict:
    sizes = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=FFN,
                 max_position_embeddings=POSITIONS)
    return {**sizes, **extra}


def _config(fmt: str, vocab_size: int):
    import transformers as T

    if fmt == "deberta_v3":
        return T.DebertaV2Config(**_sizes(), **DEBERTA_RELATIVE, vocab_size=vocab_size, pad_token_id=0)
    if fmt == "albert":
        return T.AlbertConfig(embedding_size=16, **_sizes(), vocab_size=vocab_size, pad_token_id=0,
                              bos_token_id=2, eos_token_id=3)
    if fmt in ("xlmr", "roberta"):
        cls = T.XLMRobertaConfig if fmt == "xlmr" else T.RobertaConfig
        return cls(**_sizes(max_position_embeddings=POSITIONS + 2, type_vocab_size=1), vocab_size=vocab_size,
                   pad_token_id=1, bos_token_id=0, eos_token_id=2)
    if fmt == "deberta_v1":  # microsoft/deberta-base: relative attention, no absolute positions
        return T.DebertaConfig(**_sizes(), relative_attention=True, max_relative_positions=-1,
                               pos_att_type=["c2p", "p2c"], position_biased_input=False, type_vocab_size=0,
                               vocab_size=vocab_size, pad_token_id=0)
    raise KeyError(fmt)


def _vocab_size(fmt: str, folder: Path) -> int:
    """Rows of the embedding matrix: every piece, plus what the tokenizer adds after them
    (DeBERTa-v3's ``[MASK]``; XLM-R's fairseq offset and ``<mask>``)."""
    if fmt in SPM_FORMATS:
        import sentencepiece as spm

        n = spm.SentencePieceProcessor(model_file=str(folder / SPM_FILE[fmt])).get_piece_size()
        return n + {"deberta_v3": 1, "albert": 0, "xlmr": 2}[fmt]
    return len(json.loads((folder / "vocab.json").read_text()))


@dataclass(frozen=True)
class HubFolder:
    fmt: str
    path: Path


def build(fmt: str, folder: Path, *, texts: list[str] | None = None) -> HubFolder:
    """Write ``fmt``'s hub-layout folder: the original tokenizer files, ``config.json`` and seeded
    base-model weights as ``pytorch_model.bin`` (no ``tokenizer.json``, no safetensors)."""
    import torch
    from transformers import AutoModel

    folder.mkdir(parents=True, exist_ok=True)
    _write_tokenizer(fmt, folder, training_texts() if texts is None else texts)
    config = _config(fmt, _vocab_size(fmt, folder))
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = AutoModel.from_config(config)
    model.save_pretrained(str(folder), safe_serialization=False)
    return HubFolder(fmt, folder)


def build_all(root: Path, formats: tuple[str, ...] = HUB_FORMATS) -> dict[str, HubFolder]:
    return {f: build(f, root / f) for f in formats}
