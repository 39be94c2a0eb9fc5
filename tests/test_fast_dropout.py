"""trainer.fast_dropout: 15-bit masks keep 1 - p of the elements, independently, from the seeded generator."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from torch import nn

from conftest import FAST

P = 0.1
DROP = 3277                      # round(0.1 * 2**15), by hand: 3276.8 -> 3277
KEEP = 1 - DROP / 32768          # 0.899994...
SCALE = 32768 / (32768 - DROP)   # 1 / KEEP


def _mask(n: int, seed: int = 0) -> torch.Tensor:
    from tunelab.models.dropout import keep_mask

    torch.manual_seed(seed)
    return keep_mask(torch.Size([n]), P)


def _table(a: torch.Tensor, b: torch.Tensor) -> list[list[int]]:
    """2 x 2 contingency table of two bool masks."""
    return [[int((a & b).sum()), int((a & ~b).sum())], [int((~a & b).sum()), int((~a & ~b).sum())]]


def test_keep_rate_is_binomial_with_the_rounded_p():
    m = _mask(1_000_001)         # odd: the last word's high half is cut off
    assert m.dtype == torch.bool and m.shape == (1_000_001,)
    assert stats.binomtest(int(m.sum()), m.numel(), KEEP).pvalue > 1e-3
    # Torch's own p = 0.1 would sit 6e-6 away: the rounding is visible only in the constant.
    assert KEEP == pytest.approx(0.9, abs=1e-5)


def test_the_two_halves_of_a_word_are_independent():
    # Element i and element i + half come from the low and high bits of the same 32-bit draw.
    n = 400_000
    m = _mask(n).view(2, n // 2)
    assert stats.chi2_contingency(_table(m[0], m[1])).pvalue > 1e-3
    # Neighbours too (the mask is not built from runs of equal bits).
    assert stats.chi2_contingency(_table(m[0, :-1], m[0, 1:])).pvalue > 1e-3


def test_same_seed_same_mask_other_seed_other_mask():
    assert torch.equal(_mask(10_000, seed=5), _mask(10_000, seed=5))
    assert not torch.equal(_mask(10_000, seed=5), _mask(10_000, seed=6))


def test_module_scales_kept_elements_and_passes_gradients_through_the_mask():
    from tunelab.models.dropout import FastDropout

    torch.manual_seed(1)
    x = torch.full((64, 50, 32), 3.0, requires_grad=True)
    d = FastDropout(P)
    y = d(x)
    kept = y != 0
    # Every output is 0 or x / KEEP (hand constant), and the mean stays 3 in expectation.
    assert torch.allclose(y[kept], torch.tensor(3.0 * SCALE))
    frac = kept.float().mean().item()
    assert stats.binomtest(int(kept.sum()), kept.numel(), KEEP).pvalue > 1e-3
    y.sum().backward()
    assert torch.equal(x.grad, kept.float() * torch.tensor(SCALE, dtype=torch.float32))
    assert 0.85 < frac < 0.95
    # Eval mode and p = 0 are the identity; p = 1 drops everything, like nn.Dropout.
    assert torch.equal(d.eval()(x), x)
    assert torch.equal(FastDropout(0.0)(x), x)
    assert torch.count_nonzero(FastDropout(1.0)(x)) == 0
    # p within 2**-16 of 1 would round to "drop all" with an infinite scale: torch's dropout instead.
    assert torch.isfinite(FastDropout(1 - 1e-6)(x)).all()


def test_bf16_input_stays_bf16_and_the_scale_is_not_rounded_to_bf16():
    from tunelab.models.dropout import FastDropout

    torch.manual_seed(2)
    x = torch.linspace(0.5, 8.0, 4096).bfloat16()
    y = FastDropout(P)(x)
    assert y.dtype == torch.bfloat16
    kept = y != 0
    # Reference: the exact product rounded to bf16 once. A scale rounded to bf16 first
    # (1.109375 instead of 1.111118) gives other values for part of these x.
    once = (x.double() * SCALE).bfloat16()
    twice = (x * torch.tensor(SCALE).bfloat16()).bfloat16()
    assert not torch.equal(once[kept], twice[kept])
    assert torch.equal(y[kept], once[kept])


def test_use_fast_dropout_replaces_every_plain_dropout_of_a_tiny_bert(compose):
    from tunelab.models.dropout import FastDropout, use_fast_dropout
    from tunelab.models.loading import load_model

    cfg = compose(FAST)
    model, report = load_model(cfg.model, "seq_cls", num_labels=2, fast_dropout=True)
    n_layers = model.config.num_hidden_layers
    # By hand: embeddings 1 + per layer (attention probs, attention output, FFN output) 3 + classifier 1.
    fast = [m for m in model.modules() if isinstance(m, FastDropout)]
    assert len(fast) == 1 + 3 * n_layers + 1
    assert not [m for m in model.modules() if type(m) is nn.Dropout]
    assert model.config._attn_implementation == "eager"
    assert any("fast_dropout" in n for n in report.notes)
    plain, _ = load_model(cfg.model, "seq_cls", num_labels=2)
    assert not [m for m in plain.modules() if isinstance(m, FastDropout)]
    assert use_fast_dropout(plain) == 1 + 3 * n_layers + 1


def test_only_cpu_runs_want_it(compose):
    from tunelab.models.dropout import wanted

    assert not wanted(compose(FAST).trainer)                        # off by default
    assert wanted(compose(FAST + ["trainer.fast_dropout=true"]).trainer)
    assert not wanted(compose(FAST + ["trainer=gpu", "trainer.fast_dropout=true"]).trainer)


def test_prefix_cached_and_uncached_runs_agree_with_fast_dropout(compose, tmp_path):
    """The cache's equality (same masks in the trained layers) holds for these masks too."""
    from test_prefix_cache import OVR, _assert_same
    from tunelab.run import RunContext, run

    # A cache of its own: test_prefix_cache expects its first cached run of OVR to be a miss.
    ovr = OVR + ["trainer.fast_dropout=true", f"cache_dir={tmp_path}/cache"]
    slow = run(compose(ovr + ["trainer.feature_cache=false"]), RunContext(out_dir=tmp_path / "u"))
    fast = run(compose(ovr), RunContext(out_dir=tmp_path / "c"))
    _assert_same(slow, fast)
    stock = run(compose(OVR + ["trainer.feature_cache=false", f"cache_dir={tmp_path}/cache"]),
                RunContext(out_dir=tmp_path / "s"))
    # Another draw of the masks, so another result (with lr 1e-2 and dropout 0.3 it shows).
    assert stock["metrics"]["test/loss"] != pytest.approx(slow["metrics"]["test/loss"], abs=1e-6)
