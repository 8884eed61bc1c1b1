"""DMD on Gaussians, where every score is known in closed form.

If x₀ ~ N(μ, s²) (each element), x_σ = (1 − σ) x₀ + σ ε has E[x₀ | x_σ] = μ + a (x_σ − (1 − σ) μ) with
a = (1 − σ) s² / ((1 − σ)² s² + σ²). With exact real (μ_r) and fake (μ_f) scores the DMD gradient is
therefore g = (μ_f − μ_r)(1 − a (1 − σ)) / mean|x − x̂₀_real|, whatever x_σ is."""

import pytest
import torch

from sanawm.distill import critic_loss, distribution_matching
from sanawm.sampling import Conditions, Guidance
from sanawm.training.flow_matching import flow_matching_loss

S = 0.7  # the Gaussians' standard deviation


class GaussianScore(torch.nn.Module):
    """The exact flow-matching velocity of N(μ, S²) data, with the network's call signature. `mean_uncond`
    is the mean it models when the camera is dropped (guidance's unconditional branch)."""

    def __init__(self, mean, mean_uncond=None):
        super().__init__()
        self.mean, self.mean_uncond = mean, mean if mean_uncond is None else mean_uncond

    def forward(
        self, x, timestep, text, text_mask=None, camera=None, plucker=None, chunks=None, kv_window=None
    ):
        mu = self.mean if camera is not None else self.mean_uncond
        sigma = (timestep / 1000.0)[:, None, :, None, None]
        a = (1 - sigma) * S**2 / ((1 - sigma) ** 2 * S**2 + sigma**2)
        x0 = mu + a * (x - (1 - sigma) * mu)
        return torch.where(sigma > 0, (x - x0) / sigma.clamp_min(1e-12), torch.zeros_like(x))


def _setup(seed=0, B=2, T=4):
    g = torch.Generator().manual_seed(seed)
    shape = (B, 3, T, 2, 2)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    noise = torch.randn(shape, generator=g, dtype=torch.float64)
    mu_r, mu_f, mu_u = (torch.randn(1, 3, 1, 2, 2, generator=g, dtype=torch.float64) for _ in range(3))
    cond = Conditions(torch.zeros(B, 0, 4), None, torch.zeros(B, T, 20), torch.zeros(B, 48, T, 2, 2))
    return x, noise, mu_r, mu_f, mu_u, cond


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_dmd_gradient_matches_the_closed_form(scale):
    x, noise, mu_r, mu_f, mu_u, cond = _setup()
    sigma = torch.tensor([0.3, 0.8], dtype=torch.float64)
    x = x.requires_grad_(True)
    guidance = Guidance(scale, drop_text=False, drop_camera=True)
    real, fake = GaussianScore(mu_r, mu_u), GaussianScore(mu_f)
    loss, diag = distribution_matching(x, real, fake, cond, sigma, noise, guidance)
    loss.backward()

    s = sigma[:, None, None, None, None]
    a = (1 - s) * S**2 / ((1 - s) ** 2 * S**2 + s**2)
    x_s = (1 - s) * x.detach() + s * noise
    x0_c = mu_r + a * (x_s - (1 - s) * mu_r)
    x0_u = mu_u + a * (x_s - (1 - s) * mu_u)
    x0_real = x0_u + scale * (x0_c - x0_u)  # guidance on velocities = guidance on x̂₀ (x̂₀ = x_σ − σ v)
    mu_real = mu_u + scale * (mu_r - mu_u)
    norm = (x.detach() - x0_real)[:, :, 1:].abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    g = (mu_f - mu_real) * (1 - a * (1 - s)) / norm  # the closed form
    n = x[:, :, 1:].numel()
    assert torch.allclose(x.grad[:, :, 1:], (g / n).expand_as(x[:, :, 1:]), rtol=1e-5, atol=1e-12)
    assert not x.grad[:, :, 0].any()  # frame 0, the image, is conditioning
    assert diag["dmd_grad_rms"] == pytest.approx(
        g.expand_as(x[:, :, 1:]).square().mean().sqrt().item(), rel=1e-5
    )


def test_dmd_moves_a_generator_to_the_real_distribution():
    """A one-parameter generator x = μ_g + S z, its exact fake score, descent on the DMD loss: μ_g → μ_r."""
    x, noise, mu_r, _, _, cond = _setup(1, B=8)
    mu_g = torch.zeros_like(mu_r, requires_grad=True)
    opt = torch.optim.SGD([mu_g], lr=5.0)
    g = torch.Generator().manual_seed(2)
    start = (mu_g - mu_r).abs().max().item()
    for _ in range(60):
        z = torch.randn(x.shape, generator=g, dtype=torch.float64)
        out = mu_g + S * z
        sigma = 0.05 + 0.9 * torch.rand(x.shape[0], generator=g, dtype=torch.float64)
        eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
        fake = GaussianScore(mu_g.detach())
        loss, _ = distribution_matching(out, GaussianScore(mu_r), fake, cond, sigma, eps, Guidance(1.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (mu_g - mu_r).abs().max().item() < 0.05 * start


def test_critic_loss_is_flow_matching_on_the_rollout_without_the_image_frame(one_thread):
    from sanawm.model import SanaWMTransformer, get_preset
    from tests.model.helpers import camera_inputs, randomize

    model = randomize(SanaWMTransformer(get_preset("sana-wm-micro")), scale=0.1)
    g = torch.Generator().manual_seed(0)
    x, noise = torch.randn(2, 4, 5, 2, 2, generator=g), torch.randn(2, 4, 5, 2, 2, generator=g)
    camera, plucker = camera_inputs(5, (2, 2))
    camera, plucker = camera.expand(2, -1, -1), plucker.expand(2, -1, -1, -1, -1)
    cond = Conditions(torch.zeros(2, 0, 16), None, camera, plucker)
    sigma = torch.tensor([0.2, 0.9])
    chunks = (2, 3)
    got = critic_loss(model, x, cond, sigma, noise, chunks, 1)
    per_frame = sigma[:, None].expand(2, 5).clone()
    per_frame[:, 0] = 0
    weight = torch.ones(2, 5)
    weight[:, 0] = 0
    want = flow_matching_loss(
        model, x, noise, per_frame, cond.text, None, camera, plucker, chunks, weight, kv_window=1
    )
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
