"""The LightningDataModule: load -> split -> tokenise (cached) -> length-grouped batches.

Tokenisation goes through ``datasets.map`` and the result is saved under
``<cache_dir>/tokenized/<key>``, with the description of what it was built from (the
tokenizer's content, max length, task options, the label -> id list and the exact split
contents; :mod:`tunelab.caching`), which every read checks. All runs of a sweep (ten seeds, three freeze schemes) therefore
tokenise once. Padding is dynamic (per batch), and training batches group similar lengths:
tweets are ~25 tokens, so padding everything to 128 would waste most of the compute.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import datasets
import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader

from tunelab.caching import check, digest, entry_name, tokenizer_identity, tokenizer_versions, usable, write_description
from tunelab.data.sampler import LengthGroupedBatchSampler
from tunelab.data.sources import TOKEN_TASKS, UNLABELLED_TASKS, load_raw
from tunelab.data.splits import Splits, make_splits

datasets.disable_progress_bars()


def _frame_digest(df: pd.DataFrame) -> str:
    """Every column a tokenised split is built from: texts, tokens, tags as strings and as ids."""
    cols = sorted(c for c in df.columns if c in ("text", "label", "tokens", "tags", "labels"))
    return digest({c: df[c].tolist() for c in cols})


def tokenizer_fingerprint(tokenizer) -> str:
    """A short, stable name of the tokenizer's full content (see tunelab.caching.tokenizer_identity)."""
    return digest(tokenizer_identity(tokenizer))[:24]


def for_pre_split_words(tokenizer):
    """The tokenizer as token classification needs it: words given one by one (``is_split_into_words``).

    A byte-level BPE vocabulary (RoBERTa, ModernBERT, GPT-2 style) spells a word that follows a
    space differently (``Ġword``) from one that starts the text. Pre-split words lose their spaces,
    so such a tokenizer must add one in front of every word (``add_prefix_space=True``): RoBERTa's
    refuses pre-split input without it, and a plain fast tokenizer would silently spell every word
    as if it began the text. Returns a copy with the prefix space when the tokenizer's
    pre-tokenizer is byte-level without it, else the tokenizer itself (WordPiece, Unigram).
    """
    import copy
    import json

    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = backend.pre_tokenizer if backend is not None else None
    if pre is None:
        return tokenizer
    state = json.loads(pre.__getstate__())
    if state.get("type") != "ByteLevel" or state.get("add_prefix_space"):
        return tokenizer
    tok = copy.deepcopy(tokenizer)
    state.pop("type")
    state["add_prefix_space"] = True
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(**state)
    tok.add_prefix_space = True  # what RobertaTokenizerFast checks before it takes pre-split words
    tok.init_kwargs["add_prefix_space"] = True
    return tok


class ResumableDataLoader(DataLoader):
    """The training loader, with a position saved in every checkpoint.

    Lightning checkpoints the state of loaders that have ``state_dict``/``load_state_dict``,
    but 2.6 does not restore it in our set-up (Lightning issue #20550), so
    ``tunelab.ops.resume.ResumeStateCallback`` saves and restores it through these two methods; a run
    resumed from a mid-epoch checkpoint continues with exactly the batches it had not trained on.
    The position is the length-grouped batch sampler's (epoch, batches trained); the batches
    are recomputed from (seed, epoch). ``consumed_fn`` gives the batches actually trained (the
    data fetcher runs one batch ahead, so the sampler's own count is one too many).
    """

    def __init__(self, *args, consumed_fn=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._consumed_fn = consumed_fn

    def state_dict(self) -> dict:
        consumed = self._consumed_fn() if self._consumed_fn is not None else None
        return self.batch_sampler.state_dict(consumed=consumed)

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.load_state_dict(state)


class EvalDataLoader(DataLoader):
    """An evaluation loader whose every pass starts the collator's mask RNG afresh.

    Lightning reuses one validation loader for every epoch. A seeded masked-LM collator keeps
    one generator for its lifetime, so each validation pass would see *different* masks: the
    epochs' val/loss would not be comparable, and a run resumed from a checkpoint (with a
    fresh collator) would measure other masks than the uninterrupted run. Resetting the
    generator at ``iter()`` makes every pass use the masks of the first. (Both collators
    re-create it from their ``seed`` when it is None; collators without a seed are untouched.)
    """

    def __iter__(self):
        if getattr(self.collate_fn, "seed", None) is not None and hasattr(self.collate_fn, "generator"):
            self.collate_fn.generator = None
        return super().__iter__()


class TextDataModule(L.LightningDataModule):
    """Data for seq_cls, token_cls and mlm.

    ``splits`` can be given directly (curricula build their own); otherwise they are loaded
    from ``data_cfg``.
    """

    def __init__(self, data_cfg: Any, task_cfg: Any, tokenizer, *, max_length: int,
                 batch_size: int, eval_batch_size: int, seed: int, cache_dir: Optional[str],
                 splits: Optional[Splits] = None, train_transform=None):
        super().__init__()
        self.data_cfg, self.task_cfg = data_cfg, task_cfg
        self.task = task_cfg.name
        self.tokenizer = for_pre_split_words(tokenizer) if self.task in TOKEN_TASKS else tokenizer
        self.max_length, self.batch_size, self.eval_batch_size = max_length, batch_size, eval_batch_size
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.splits = splits
        # A function (texts_df, seed) -> texts_df applied to train only (augmentation).
        self.train_transform = train_transform
        self.tokenized: dict[str, datasets.Dataset] = {}
        self.cache_hits: dict[str, bool] = {}

    # ------------------------------------------------------------------ loading
    def load(self) -> Splits:
        if self.splits is None:
            raw = load_raw(self.data_cfg, self.task)
            self.splits = make_splits(raw, self.data_cfg, self.task)
            if self.train_transform is not None:
                self.splits.train = self.train_transform(self.splits.train, self.seed)
        return self.splits

    @property
    def label_names(self) -> Optional[list[str]]:
        return self.load().label_names

    @property
    def num_labels(self) -> int:
        names = self.label_names
        return len(names) if names else 0

    # ------------------------------------------------------------------ tokenising
    def _tokenize_fn(self):
        tok, max_len = self.tokenizer, self.max_length
        if self.task in TOKEN_TASKS:
            label_all = self.task_cfg.label_all_tokens

            def fn(batch):
                enc = tok(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_len)
                labels = []
                for i, word_labels in enumerate(batch["labels"]):
                    word_ids = enc.word_ids(i)
                    out, prev = [], None
                    for w in word_ids:
                        if w is None:
                            out.append(-100)          # special tokens: ignored by the loss
                        elif w != prev:
                            out.append(word_labels[w])  # first sub-token carries the word's tag
                        else:
                            # Later sub-tokens: ignored, or (label_all_tokens) given the tag,
                            # with B- turned into I- so entity spans stay well-formed.
                            out.append(self._inside_id(word_labels[w]) if label_all else -100)
                        prev = w
                    labels.append(out)
                enc["labels"] = labels
                return enc

            return fn, ["tokens", "tags", "labels"]
        if self.task in UNLABELLED_TASKS:
            def fn(batch):
                return tok(batch["text"], truncation=True, max_length=max_len,
                           return_special_tokens_mask=True)
            return fn, ["text", "label"]

        def fn(batch):
            enc = tok(batch["text"], truncation=True, max_length=max_len)
            enc["labels"] = batch["label"]
            return enc

        return fn, ["text", "label"]

    def _inside_id(self, label_id: int) -> int:
        names = self.label_names
        name = names[label_id]
        if name.startswith("B-") and ("I-" + name[2:]) in names:
            return names.index("I-" + name[2:])
        return label_id

    def cache_description(self, split: str, df: pd.DataFrame) -> dict:
        """What a tokenised split is a function of (tunelab.caching): the tokenizer's content, the
        length limit, the task and its options, the label -> id list, the split's rows and the
        tokenising libraries' versions."""
        return {
            "kind": "tokenized", "split": split, "tokenizer": tokenizer_identity(self.tokenizer),
            "versions": tokenizer_versions(),
            "max_length": int(self.max_length), "task": self.task,
            "label_all_tokens": bool(getattr(self.task_cfg, "label_all_tokens", False)),
            "label_names": list(self.label_names or []), "rows": len(df), "data": _frame_digest(df),
        }

    def _tokenize_split(self, split: str, df: pd.DataFrame) -> datasets.Dataset:
        desc = self.cache_description(split, df)
        target = self.cache_dir / "tokenized" / entry_name(split, desc) if self.cache_dir else None
        if target is not None and usable(target, desc, "tokenisation"):
            try:
                ds = datasets.load_from_disk(str(target))
                self.cache_hits[split] = True
                return ds
            except Exception:
                shutil.rmtree(target, ignore_errors=True)  # a broken cache entry is rebuilt
        self.cache_hits[split] = False
        fn, drop = self._tokenize_fn()
        cols = [c for c in ("text", "label", "tokens", "tags", "labels") if c in df.columns]
        ds = datasets.Dataset.from_pandas(df[cols], preserve_index=False)
        ds = ds.map(fn, batched=True, remove_columns=[c for c in drop if c in ds.column_names])
        ds = ds.map(lambda b: {"length": [len(x) for x in b["input_ids"]]}, batched=True)
        if target is not None:
            # Written to a temp dir (data, then its description) and renamed: two jobs of a sweep
            # may race to fill the cache, and a reader must never see a half-written entry.
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
            try:
                ds.save_to_disk(str(tmp))
                write_description(tmp, desc)
                if target.exists() and check(target, desc) is not None:
                    shutil.rmtree(target, ignore_errors=True)  # an entry of other inputs: replaced
                os.replace(tmp, target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
            if target.exists() and usable(target, desc, "tokenisation"):
                ds = datasets.load_from_disk(str(target))
        return ds

    def setup(self, stage: Optional[str] = None) -> None:
        if self.tokenized:
            return
        splits = self.load()
        for name in splits.names:
            df = getattr(splits, name)
            if len(df):
                self.tokenized[name] = self._tokenize_split(name, df)

    # ------------------------------------------------------------------ batching
    def collator(self, train: bool):
        from transformers import (DataCollatorForLanguageModeling, DataCollatorForTokenClassification,
                                  DataCollatorWithPadding)

        if self.task in TOKEN_TASKS:
            return DataCollatorForTokenClassification(self.tokenizer)
        if self.task in UNLABELLED_TASKS:
            t = self.task_cfg
            # Held-out perplexity must use the same masks every time it is measured, or
            # "before" and "after" adaptation are not comparable.
            seed = None if train else self.seed + 10_000
            if t.whole_word_mask:
                # transformers' whole-word option needs offset mappings and, in 4.57, breaks with
                # mask_replace_prob < 1; ours masks every piece of a chosen word.
                from tunelab.data.masking import WholeWordMaskCollator

                return WholeWordMaskCollator(self.tokenizer, mlm_probability=t.mlm_probability,
                                             mask_replace_prob=t.mask_replace_prob,
                                             random_replace_prob=t.random_replace_prob, seed=seed)
            return DataCollatorForLanguageModeling(
                self.tokenizer, mlm=True, mlm_probability=t.mlm_probability,
                mask_replace_prob=t.mask_replace_prob, random_replace_prob=t.random_replace_prob,
                seed=seed,
            )
        return DataCollatorWithPadding(self.tokenizer)

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.tokenized[split]
        keep = [c for c in ("input_ids", "attention_mask", "token_type_ids", "labels",
                            "special_tokens_mask") if c in ds.column_names]
        lengths = ds["length"]
        bs = self.batch_size if train else self.eval_batch_size
        if train and not getattr(self.data_cfg, "bucket_by_length", True):
            # Chunks of one batch: sorting inside a batch changes nothing, so batches are random.
            sampler = LengthGroupedBatchSampler(lengths, bs, shuffle=True, seed=self.seed,
                                                bucket_size_multiplier=1)
        else:
            # Evaluation shards are not padded (even_shards=False): under DDP every val/test
            # example is counted exactly once.
            sampler = LengthGroupedBatchSampler(lengths, bs, shuffle=train, seed=self.seed, even_shards=train)
        # A generator of its own: creating an iterator then draws its worker base seed from it,
        # not from torch's global RNG, so dropout masks do not depend on when loaders are
        # (re)created, which makes a resumed run's random stream match an uninterrupted one.
        gen = torch.Generator().manual_seed(int(self.seed))
        collate = self.collator(train)
        workers = getattr(self.data_cfg, "num_workers", 0)
        # Persistent workers keep their own copy of the collator across passes, out of
        # EvalDataLoader's reach: an evaluation collator with seeded masks gets fresh workers
        # (copies of the reset collator) each pass instead.
        restarts_masks = not train and getattr(collate, "seed", None) is not None
        kw = dict(batch_sampler=sampler, collate_fn=collate, generator=gen, num_workers=workers,
                  persistent_workers=workers > 0 and not restarts_masks)
        if train:
            return ResumableDataLoader(ds.select_columns(keep), consumed_fn=self._batches_trained, **kw)
        return EvalDataLoader(ds.select_columns(keep), **kw)

    def _batches_trained(self) -> Optional[int]:
        """Batches of the current epoch the trainer has trained on (None outside fit)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return None
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        return self._loader("val", train=False) if "val" in self.tokenized else []

    def test_dataloader(self):
        return self._loader("test", train=False)

    def ood_dataloader(self):
        """The out-of-domain test split's loader (tunelab.data.ood), None without one: not a
        Lightning hook; ``tunelab.training`` runs a second test pass on it."""
        return self._loader("test_ood", train=False) if "test_ood" in self.tokenized else None
