"""Timestep sampling: the shifted logit-normal, the clean first frame, the chunk-causal patterns and
their loss weights, and guidance dropout."""

import pytest
import torch

from sanawm.training.flow_matching import shift_sigma
from sanawm.training.timesteps import PATTERNS, ConditionDropout, TimestepSampler

ONLY = {name: {f"p_{n}": float(n == name) for n in PATTERNS} for name in PATTERNS}
CHUNKS = (4, 3, 3)  # T = 10


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_logit_normal_before_shift_and_shift_formula():
    n = 40_000
    plain = TimestepSampler(logit_mean=0.3, logit_std=0.8, shift=1.0, clean_first_prob=0.0)
    sigma, weight = plain.sample(n, 1, None, gen())
    logit = torch.logit(sigma.double())
    assert abs(logit.mean().item() - 0.3) < 0.02 and abs(logit.std().item() - 0.8) < 0.02
    assert bool((weight == 1).all())
    shifted, _ = TimestepSampler(logit_mean=0.3, logit_std=0.8, shift=10.0, clean_first_prob=0.0).sample(
        n, 1, None, gen()
    )
    torch.testing.assert_close(shifted, 10 * sigma / (1 + 9 * sigma))
    torch.testing.assert_close(shifted, shift_sigma(sigma, 10.0))
    assert shifted.median() > 0.85  # shift 10 pushes σ towards noise


@pytest.mark.parametrize("p", [0.0, 0.9, 1.0])
def test_clean_first_frame_probability_and_weight(p):
    n = 20_000
    sigma, weight = TimestepSampler(clean_first_prob=p).sample(n, 7, None, gen(1))
    clean = sigma[:, 0] == 0
    assert abs(clean.float().mean().item() - p) < 0.01
    assert bool((weight[clean, 0] == 0).all()) and bool((weight[~clean, 0] == 1).all())
    assert bool((sigma[:, 1:] > 0).all()) and bool((weight[:, 1:] == 1).all())


def test_bidirectional_is_one_sigma_per_sample():
    sigma, _ = TimestepSampler(clean_first_prob=0.0).sample(64, 6, None, gen())
    assert bool((sigma == sigma[:, :1]).all())
    assert sigma[:, 0].unique().numel() == 64


def _per_chunk(x):
    return torch.stack([c[:, 0] for c in x.split(CHUNKS, dim=1)], 1), x.split(CHUNKS, dim=1)


def test_same_pattern():
    sigma, weight = TimestepSampler(clean_first_prob=0.0, **ONLY["same"]).sample(256, 10, CHUNKS, gen())
    assert bool((sigma == sigma[:, :1]).all()) and bool((weight == 1).all())


def test_increasing_pattern():
    sigma, weight = TimestepSampler(clean_first_prob=0.0, **ONLY["increasing"]).sample(256, 10, CHUNKS, gen())
    heads, parts = _per_chunk(sigma)
    assert all(bool((p == p[:, :1]).all()) for p in parts)  # one σ per chunk
    assert bool((heads[:, 1:] >= heads[:, :-1]).all())
    assert bool((heads[:, 1:] > heads[:, :-1]).any(dim=1).all())  # not all equal
    assert bool((weight == 1).all())


@pytest.mark.parametrize("context_weight", [0.0, 1.0])
def test_last_chunk_anchor_pattern(context_weight):
    sampler = TimestepSampler(
        clean_first_prob=0.0, anchor_max_sigma=0.1, anchor_context_weight=context_weight, **ONLY["anchor"]
    )
    sigma, weight = sampler.sample(512, 10, CHUNKS, gen())
    heads, parts = _per_chunk(sigma)
    assert all(bool((p == p[:, :1]).all()) for p in parts)
    last = heads[:, -1:]
    assert bool((heads[:, :-1] <= torch.minimum(torch.full_like(last, 0.1), last)).all())
    assert bool((heads[:, :-1] > 0).all())
    assert last.mean() > 0.7  # the last chunk is a full draw
    assert bool((weight[:, 7:] == 1).all()) and bool((weight[:, :7] == context_weight).all())


def test_clean_context_pattern():
    sigma, weight = TimestepSampler(clean_first_prob=0.0, **ONLY["clean_context"]).sample(
        256, 10, CHUNKS, gen()
    )
    assert bool((sigma[:, :7] == 0).all()) and bool((weight[:, :7] == 0).all())
    assert bool((sigma[:, 7:] > 0).all()) and bool((sigma[:, 7:] == sigma[:, 7:8]).all())
    assert bool((weight[:, 7:] == 1).all())


def test_first_chunk_pattern():
    """Chunk 0 a free draw (as noisy as the other patterns' single draws, not the minimum of n), later
    chunks sorted and never below it; every chunk a target."""
    n = 4096
    sampler = TimestepSampler(clean_first_prob=0.0, **ONLY["first_chunk"])
    sigma, weight = sampler.sample(n, 10, CHUNKS, gen())
    heads, parts = _per_chunk(sigma)
    assert all(bool((p == p[:, :1]).all()) for p in parts)
    assert bool((heads[:, 1:] >= heads[:, :-1]).all()) and bool((weight == 1).all())
    same, _ = TimestepSampler(clean_first_prob=0.0, **ONLY["same"]).sample(n, 10, CHUNKS, gen())
    increasing, _ = TimestepSampler(clean_first_prob=0.0, **ONLY["increasing"]).sample(n, 10, CHUNKS, gen())
    assert abs(heads[:, 0].mean() - same[:, 0].mean()) < 0.02  # the first draw itself
    assert heads[:, 0].mean() > increasing[:, 0].mean() + 0.05  # not the smallest of the three


def test_pattern_mix_follows_weights_and_clean_first_applies_to_all():
    sampler = TimestepSampler()  # SPEC 6: 0.1 / 0.4 / 0.4 / 0.1, clean first 0.9
    sigma, weight, pattern = sampler.sample_with_patterns(20_000, 10, CHUNKS, gen(3))
    freq = torch.bincount(pattern, minlength=5).float() / len(pattern)
    torch.testing.assert_close(freq, torch.tensor([0.1, 0.4, 0.4, 0.1, 0.0]), atol=0.015, rtol=0)
    mixed = TimestepSampler(p_clean_context=0.0, p_first_chunk=0.1)
    _, _, pattern = mixed.sample_with_patterns(20_000, 10, CHUNKS, gen(3))
    assert abs((pattern == PATTERNS.index("first_chunk")).float().mean().item() - 0.1) < 0.015
    assert abs((sigma[:, 0] == 0).float().mean().item() - 0.9) < 0.01
    assert bool((weight[sigma == 0] == 0).all())


def test_sampling_is_deterministic_and_single_chunk_is_same():
    a = TimestepSampler().sample(8, 10, CHUNKS, gen(5))
    b = TimestepSampler().sample(8, 10, CHUNKS, gen(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    _, _, pattern = TimestepSampler(**ONLY["anchor"]).sample_with_patterns(8, 4, (4,), gen())
    assert bool((pattern == 0).all())


def test_sampler_errors_name_the_problem():
    with pytest.raises(ValueError, match="summing to T = 10"):
        TimestepSampler().sample(2, 10, (4, 3), gen())
    with pytest.raises(ValueError, match="pattern weights"):
        TimestepSampler(p_same=0, p_increasing=0, p_anchor=0, p_clean_context=0)
    with pytest.raises(ValueError, match="clean_first_prob"):
        TimestepSampler(clean_first_prob=1.5)


def test_condition_dropout_rates():
    drop = ConditionDropout(text=0.25, camera=0.3)
    g = gen()
    text = torch.stack([drop.sample(100, g)[0] for _ in range(50)])
    assert abs(text.float().mean().item() - 0.25) < 0.02
    camera = [drop.sample(4, g)[1] for _ in range(4000)]
    assert abs(sum(camera) / len(camera) - 0.3) < 0.03
    assert not ConditionDropout(text=0.0, camera=0.0).sample(100, g)[0].any()
