"""Samplers: streaming == chunk-causal reference, determinism, guidance, schedules, context noise."""

import pytest
import torch

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.sampling import (
    ChunkSession,
    Conditions,
    EulerSchedule,
    FewStepSchedule,
    Guidance,
    chunk_layout,
    sample_bidirectional,
    sample_chunked,
)
from tests.model.helpers import camera_inputs, randomize

T, GRID = 6, (2, 3)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).eval()
    cfg = model.cfg
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(1, cfg.in_channels, T, *GRID, generator=g)
    first = torch.randn(1, cfg.in_channels, 1, *GRID, generator=g)
    camera, plucker = camera_inputs(T, GRID)
    text = torch.randn(1, 3, cfg.caption_channels, generator=g)
    negative = torch.randn(1, 2, cfg.caption_channels, generator=g)
    return model, noise, first, Conditions(text, None, camera, plucker), negative


def _seeded(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "schedule, guidance, context_sigma",
    [
        (EulerSchedule(steps=3, shift=3.0), Guidance(scale=1.0), 0.0),
        (EulerSchedule(steps=2, shift=8.0), Guidance(scale=4.0), 0.0),
        (EulerSchedule(steps=2, shift=8.0), Guidance(scale=3.0, drop_text=True, drop_camera=True), 0.0),
        (FewStepSchedule(), Guidance(scale=1.0), 0.0),
        (EulerSchedule(steps=2, shift=8.0), Guidance(scale=4.0), 0.05),
        (FewStepSchedule(), Guidance(scale=1.0), 0.1),
    ],
)
def test_streaming_equals_chunk_causal_reference(setup, schedule, guidance, context_sigma):
    model, noise, first, cond, negative = setup
    chunks = chunk_layout(T, chunk=2, first=2)

    def renoise(i, step):  # same re-noising draws in both runs
        return _seeded((1, model.cfg.in_channels, chunks[i], *GRID), 100 * i + step)

    def context_noise(i):  # same context noise in both runs
        return _seeded((1, model.cfg.in_channels, chunks[i], *GRID), 7000 + i)

    kwargs = dict(schedule=schedule, guidance=guidance, negative_text=negative, kv_window=1, renoise=renoise)
    kwargs.update(context_sigma=context_sigma, context_noise=context_noise)
    streamed = sample_chunked(model, noise, first, cond, chunks, streaming=True, **kwargs)
    reference = sample_chunked(model, noise, first, cond, chunks, streaming=False, **kwargs)
    assert torch.equal(streamed[:, :, :1], first)
    rel = ((streamed - reference).abs().max() / reference.abs().max()).item()
    print(f"context_sigma {context_sigma}: streaming vs reference, max relative |Δ| = {rel:.1e}")
    assert rel <= (1e-4 if context_sigma == 0 else 1e-5)


def test_context_sigma_zero_is_clean_context_and_positive_changes_the_output(setup):
    model, noise, first, cond, negative = setup
    chunks = chunk_layout(T, chunk=2, first=2)
    kwargs = dict(schedule=EulerSchedule(steps=2), guidance=Guidance(scale=2.0), negative_text=negative)
    kwargs.update(kv_window=1, streaming=True)

    def context_noise(seed):
        return lambda i: _seeded((1, model.cfg.in_channels, chunks[i], *GRID), seed + i)

    def run(sigma, seed=0):
        noised = dict(context_sigma=sigma, context_noise=context_noise(seed))
        return sample_chunked(model, noise, first, cond, chunks, **noised, **kwargs)

    default = sample_chunked(model, noise, first, cond, chunks, **kwargs)
    torch.manual_seed(0)
    before = torch.randn(3)
    torch.manual_seed(0)
    zero = run(0.0)
    assert torch.equal(zero, default)  # bit for bit, and without touching the global RNG
    assert torch.equal(torch.randn(3), before)
    a, b, c = run(0.05), run(0.05), run(0.05, seed=1)
    assert torch.equal(a, b) and not torch.allclose(a, default) and not torch.allclose(a, c)
    assert torch.equal(a[:, :, :1], first)
    n = chunks[0]  # the first chunk is denoised before any context exists
    assert torch.equal(a[:, :, :n], default[:, :, :n])


def test_context_keeps_the_image_frame_clean(setup):
    model, _, first, cond, _ = setup
    x, eps = torch.randn(1, model.cfg.in_channels, 2, *GRID), torch.randn(1, model.cfg.in_channels, 2, *GRID)
    session = ChunkSession(model, [cond], Guidance(1.0), 1, streaming=False, context_sigma=0.1)
    session.commit(x, eps)
    session.commit(x, eps)
    assert torch.equal(session.history[0][:, :, :1], x[:, :, :1])
    assert torch.allclose(session.history[0][:, :, 1:], 0.9 * x[:, :, 1:] + 0.1 * eps[:, :, 1:])
    assert torch.allclose(session.history[1], 0.9 * x + 0.1 * eps)
    assert session.history_timesteps[0].tolist() == [[0.0, 100.0]]
    assert session.history_timesteps[1].tolist() == [[100.0, 100.0]]
    later = ChunkSession(model, [cond], Guidance(1.0), 1, streaming=False, context_sigma=0.1)
    later.commit(x, eps, clean_first=False)  # e.g. a session restarted mid-video: no image frame
    assert torch.allclose(later.history[0], 0.9 * x + 0.1 * eps)
    clean = ChunkSession(model, [cond], Guidance(1.0), 1, streaming=False)
    clean.commit(x, eps)
    assert clean.history[0] is x and clean.history_timesteps[0].tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_context_sigma_names_the_fix(setup, bad):
    model, noise, first, cond, _ = setup
    with pytest.raises(ValueError, match=r"context_sigma must be in \[0, 1\).*--context-sigma"):
        sample_chunked(model, noise, first, cond, (T,), context_sigma=bad)


def test_same_seed_same_latents_different_seed_differs(setup):
    model, _, first, cond, _ = setup

    def run(seed):
        noise = torch.randn(1, model.cfg.in_channels, T, *GRID, generator=torch.Generator().manual_seed(seed))
        return sample_bidirectional(model, noise, first, cond, EulerSchedule(steps=3), Guidance(scale=2.0))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert torch.equal(a[:, :, :1], first)


def test_guidance_scale_one_is_the_conditional_branch(setup):
    model, noise, first, cond, negative = setup
    a = sample_bidirectional(model, noise, first, cond, EulerSchedule(steps=2), Guidance(scale=1.0), negative)
    b = sample_bidirectional(model, noise, first, cond, EulerSchedule(steps=2), Guidance(scale=1.0))
    c = sample_bidirectional(model, noise, first, cond, EulerSchedule(steps=2), Guidance(scale=3.0), negative)
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_euler_on_exact_velocity_recovers_data():
    """With the true velocity of a single data point, Euler lands on that point for any schedule."""
    x0 = torch.randn(1, 2, 3, 2, 2)
    noise = torch.randn_like(x0)

    class Exact(torch.nn.Module):
        def forward(self, x, t, *a, **k):
            return noise - x0

    out = sample_bidirectional(
        Exact(),
        noise,
        x0[:, :, :1],
        Conditions(torch.zeros(1, 0, 1)),
        EulerSchedule(steps=7, shift=5.0),
        Guidance(scale=1.0),
    )
    assert torch.allclose(out, x0, atol=1e-5)


def test_schedules_and_layout():
    s = EulerSchedule(steps=10, shift=8.0).sigmas()
    assert s[0] == 1.0 and s[-1] == 0.0 and len(s) == 11 and bool((s[1:] < s[:-1]).all())
    assert torch.allclose(FewStepSchedule().sigmas(), torch.tensor([1.0, 0.96, 0.889, 0.727, 0.0]))
    with pytest.raises(ValueError, match="decrease"):
        FewStepSchedule((1000, 1200, 0)).sigmas()
    assert chunk_layout(121) == (4,) + (3,) * 39
    assert chunk_layout(8, chunk=3, first=4) == (4, 3, 1)
