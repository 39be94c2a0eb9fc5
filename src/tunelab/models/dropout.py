"""Dropout with a cheaper mask on CPUs: ``trainer.fast_dropout=true`` (off by default).

Why: torch's CPU dropout draws its mask with ``bernoulli_(1 - p)``. Except on Intel CPUs (where
it calls MKL's vectorised generator) that is a serial loop drawing one double-precision uniform,
two 32-bit Mersenne-Twister words, per element: 1.9 ms for one [32, 34, 384] activation on this
project's AMD EPYC, 8.5 % of a MiniLM training step with two trained layers (profiled; seven
dropouts a step), more of a bf16 step whose matmuls are twice as fast. Here one 32-bit draw from
the same generator gives two 15-bit uniforms: a quarter of the draws, 0.65 ms for that mask.

What stays as it was: the masks come from torch's default CPU generator, so ``seed`` and exact
resume (which saves and restores that generator) reproduce a run bit for bit; every element is
kept independently with probability 1 - p and scaled by 1 / (1 - p), so the expected activation
is unchanged. What differs: p is rounded to a multiple of 2**-15 (0.1 -> 0.100006; 0.25, 0.5 exact)
and, for a given seed, the masks are other masks than torch's: a run with the switch on is
another draw of the same experiment, not the same numbers (compare over seeds, as for bf16).

Only ``nn.Dropout`` modules are replaced. Attention-probability dropout is a module only in the
"eager" attention implementation (SDPA draws it inside the kernel), so models are loaded with
eager attention when the switch is on; on CPUs the two cost the same at these sizes (measured:
4 frozen MiniLM layers 88 ms both). On GPUs torch's fused dropout is fast and SDPA much faster
than eager, so the switch applies to CPU runs only (:func:`wanted`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

BITS = 15
LEVELS = 1 << BITS  # a uniform on [0, LEVELS)


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bool mask of ``shape``, each element True with probability ``1 - round(p * 2**15) / 2**15``."""
    n = 1
    for s in shape:
        n *= int(s)
    drop = round(p * LEVELS)
    # random_(0, 2**30) on int32: one 32-bit draw per word, reduced mod 2**30 (exactly uniform,
    # since 2**30 divides 2**32), so its low and high 15 bits are two independent uniforms.
    words = torch.empty((n + 1) // 2, dtype=torch.int32).random_(0, 1 << (2 * BITS))
    low, high = words & (LEVELS - 1), words >> BITS
    return torch.cat((low >= drop, high >= drop))[:n].view(shape)


class FastDropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask comes from :func:`keep_mask` (same module API and ``p``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        drop = round(self.p * LEVELS)
        # p that rounds to 0 or 1 (incl. exactly 0 and 1) is left to torch, which handles both exactly.
        if not self.training or drop in (0, LEVELS) or x.device.type != "cpu":
            return super().forward(x)
        # x * mask first keeps x's dtype (bf16 under autocast); the Python-float scale is applied
        # in the kernel's float arithmetic, so 1 / (1 - p) is not itself rounded to bf16.
        return x * keep_mask(x.shape, self.p) * (LEVELS / (LEVELS - drop))


def wanted(trainer_cfg: Any) -> bool:
    """Whether a run with this ``trainer`` config should use :class:`FastDropout`."""
    if not bool(getattr(trainer_cfg, "fast_dropout", False)):
        return False
    accel = str(getattr(trainer_cfg, "accelerator", "cpu"))
    return accel == "cpu" or (accel == "auto" and not torch.cuda.is_available())


def use_fast_dropout(model: nn.Module) -> int:
    """Replace every plain ``nn.Dropout`` in ``model`` by a :class:`FastDropout`; return how many."""
    swapped = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                fast = FastDropout(child.p, inplace=child.inplace)
                fast.train(child.training)
                setattr(parent, name, fast)
                swapped += 1
    return swapped
