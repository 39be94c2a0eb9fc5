"""Whole-word masking for masked-LM training and evaluation."""

from __future__ import annotations

from typing import Optional


class WholeWordMaskCollator:
    """BERT-style masking of whole words: a WordPiece continuation (``##xx``) is masked with the
    word it belongs to. Words are selected with probability ``mlm_probability``; each token of a
    selected word becomes [MASK] / a random token / itself with the 80/10/10 split.

    (transformers' own ``whole_word_mask=True`` needs offset mappings the data module does not
    produce, and in 4.57 crashes when ``mask_replace_prob < 1``.) ``seed`` fixes the masks
    (held-out evaluation); None draws from torch's global RNG (training).
    """

    def __init__(self, tokenizer, *, mlm_probability: float, mask_replace_prob: float,
                 random_replace_prob: float, seed: Optional[int] = None):
        import torch

        self.tok = tokenizer
        self.p, self.p_mask, self.p_rand = mlm_probability, mask_replace_prob, random_replace_prob
        # Created from ``seed`` at the first batch; setting it back to None restarts the masks
        # (the evaluation loader does, so every evaluation pass uses the same masks).
        self.seed, self.generator = seed, None
        vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.continuation = torch.tensor([str(t).startswith("##") for t in vocab], dtype=torch.bool)

    def __call__(self, examples):
        import torch

        batch = self.tok.pad(examples, return_tensors="pt")
        ids = batch["input_ids"]
        special = batch.pop("special_tokens_mask", None)
        special = special.bool() if special is not None else torch.zeros_like(ids, dtype=torch.bool)
        special |= ids == self.tok.pad_token_id
        if self.seed is not None and self.generator is None:
            self.generator = torch.Generator().manual_seed(self.seed)
        g = self.generator
        cont = self.continuation[ids.clamp(max=len(self.continuation) - 1)] & ~special
        starts = ~cont & ~special
        word = torch.cumsum(starts.long(), dim=1)            # word index of each token (per row)
        chosen_start = starts & (torch.rand(ids.shape, generator=g) < self.p)
        # A token is masked when the start of its word was chosen.
        chosen = torch.zeros(ids.shape[0], ids.shape[1] + 1, dtype=torch.bool)
        chosen.scatter_(1, torch.where(chosen_start, word, torch.zeros_like(word)), chosen_start)
        chosen[:, 0] = False
        masked = torch.gather(chosen, 1, word) & ~special
        labels = ids.clone()
        labels[~masked] = -100
        r = torch.rand(ids.shape, generator=g)
        to_mask = masked & (r < self.p_mask)
        to_rand = masked & (r >= self.p_mask) & (r < self.p_mask + self.p_rand)
        ids = ids.clone()
        ids[to_mask] = self.tok.mask_token_id
        ids[to_rand] = torch.randint(len(self.tok), ids.shape, generator=g)[to_rand]
        batch["input_ids"], batch["labels"] = ids, labels
        return batch
