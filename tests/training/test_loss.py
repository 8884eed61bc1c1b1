"""The flow-matching loss on known cases, and the claims the trainer builds on it."""

import torch
import torch.nn as nn

from sanawm.model import SanaWMTransformer, get_preset
from sanawm.training.flow_matching import flow_matching_loss, noisy_latents, velocity_target
from tests.model.helpers import camera_inputs, randomize


class Oracle(nn.Module):
    """Predicts the exact velocity: it knows x0 and recovers ε from x_σ = (1 − σ) x0 + σ ε."""

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0

    def forward(self, x, timestep, *args, **kwargs):
        s = (timestep / 1000)[:, None, :, None, None]
        return (x - (1 - s) * self.x0) / s - self.x0


class Zero(nn.Module):
    def forward(self, x, *args, **kwargs):
        return torch.zeros_like(x)


def batch(B=3, T=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(B, 2, T, 3, 3, generator=g, dtype=torch.float64)
    noise = torch.randn(B, 2, T, 3, 3, generator=g, dtype=torch.float64)
    sigma = torch.rand(B, T, generator=g, dtype=torch.float64) * 0.9 + 0.05
    return x0, noise, sigma


def test_linear_path_and_target():
    x0, noise, sigma = batch()
    torch.testing.assert_close(noisy_latents(x0, noise, torch.zeros_like(sigma)), x0)
    torch.testing.assert_close(noisy_latents(x0, noise, torch.ones_like(sigma)), noise)
    torch.testing.assert_close(velocity_target(x0, noise), noise - x0)


def test_exact_velocity_gives_zero_loss():
    x0, noise, sigma = batch()
    text = torch.zeros(3, 0, 4)
    loss = flow_matching_loss(Oracle(x0), x0, noise, sigma, text)
    assert loss.item() < 1e-20


def test_zero_model_loss_is_the_weighted_mean_of_squared_velocity():
    x0, noise, sigma = batch()
    text = torch.zeros(3, 0, 4)
    per_frame = (noise - x0).square().mean(dim=(1, 3, 4))  # (B, T)
    loss = flow_matching_loss(Zero(), x0, noise, sigma, text)
    torch.testing.assert_close(loss, per_frame.mean().float())
    weight = torch.tensor([[0.0, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1]])
    loss = flow_matching_loss(Zero(), x0, noise, sigma, text, frame_weight=weight)
    torch.testing.assert_close(loss, ((per_frame * weight).sum() / weight.sum()).float())


def test_split_batch_with_global_weight_total_averages_to_the_full_loss():
    """What data parallelism relies on: the ranks' losses with weight_total = Σw / ranks average to the
    full batch's loss (and so do their gradients)."""
    x0, noise, sigma = batch(B=4)
    text = torch.zeros(4, 0, 4)
    weight = torch.tensor([[0.0, 1, 1, 1], [0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]])
    full = flow_matching_loss(Zero(), x0, noise, sigma, text, frame_weight=weight)
    parts = [
        flow_matching_loss(
            Zero(), x0[s], noise[s], sigma[s], text[s], frame_weight=weight[s], weight_total=weight.sum() / 2
        )
        for s in (slice(0, 2), slice(2, 4))
    ]
    torch.testing.assert_close((parts[0] + parts[1]) / 2, full)


def test_masked_out_text_is_the_samplers_empty_text():
    """Text dropout per sample (an all-False mask) equals the unconditional branch (zero-length text)."""
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")))
    camera, plucker = camera_inputs(3, (2, 2))
    x = torch.randn(2, 8, 3, 2, 2)
    t = torch.full((2, 3), 500.0)
    text = torch.randn(2, 5, 32)
    mask = torch.tensor([[True] * 5, [False] * 5])
    with torch.no_grad():
        both = model(x, t, text, mask, camera.expand(2, -1, -1), plucker.expand(2, -1, -1, -1, -1))
        empty = model(x[1:], t[1:], text[1:, :0], None, camera, plucker)
    assert torch.isfinite(both).all()
    torch.testing.assert_close(both[1:], empty, atol=1e-5, rtol=1e-5)
