"""Distribution matching distillation (DMD, Yin et al. 2024; as Self-Forcing uses it).

The student's rollout x (B, C, T, H, W) is noised to x_σ = (1 − σ) x + σ ε. A frozen real score (the
teacher, with guidance) and a trained fake score (the student's own distribution) predict x₀ from x_σ
(x₀ = x_σ − σ v for a velocity network). The KL gradient between the student's and the data
distribution, pushed to x, is the difference of the two predictions, normalised per sample:

    g = (x̂₀_fake − x̂₀_real) / mean |x − x̂₀_real|

and `dmd_loss` = ½ mean (x − sg(x − g))² has ∂/∂x = g / N (N elements), so descending it moves x towards
the real score's prediction and away from the fake's. The fake score follows the student with ordinary
flow matching on (detached) rollouts (`critic_loss`). Frame 0, the image, is conditioning: never noised,
never in a loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..sampling import Conditions, Guidance
from ..training.flow_matching import noisy_latents, shift_sigma, velocity_target

NO_GUIDANCE = Guidance(1.0)


def draw_sigma(batch: int, generator: torch.Generator, lo: float, hi: float, shift: float) -> torch.Tensor:
    """(B,) σ = shift(U(lo, hi)): the noise level of one score evaluation per sample."""
    return shift_sigma(lo + (hi - lo) * torch.rand(batch, generator=generator), shift)


def frame_sigmas(sigma: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T) per-frame σ: `sigma` everywhere except frame 0 (the clean image), 0."""
    out = sigma[:, None].expand(-1, frames).clone()
    out[:, 0] = 0.0
    return out


def predict_x0(
    model,
    x_sigma: torch.Tensor,
    sigma_frames: torch.Tensor,
    cond: Conditions,
    guidance: Guidance = NO_GUIDANCE,
    chunks: Sequence[int] | None = None,
    kv_window: int | None = None,
) -> torch.Tensor:
    """x̂₀ = x_σ − σ v, with v the (guided) velocity of `model` over the whole clip (chunk-causal with
    `chunks`, bidirectional without)."""

    def call(c: Conditions) -> torch.Tensor:
        t = sigma_frames * 1000.0
        return model(x_sigma, t, c.text, c.text_mask, c.camera, c.plucker, chunks=chunks, kv_window=kv_window)

    v = call(cond).float()
    if guidance.enabled:
        v = guidance.combine(call(guidance.unconditional(cond)).float(), v)
    return x_sigma.float() - sigma_frames[:, None, :, None, None].float() * v


def dmd_gradient(x: torch.Tensor, x0_real: torch.Tensor, x0_fake: torch.Tensor) -> torch.Tensor:
    """g (B, C, T − 1, H, W) over the output frames 1.. of x (B, C, T, H, W)."""
    x, real, fake = x[:, :, 1:].float(), x0_real[:, :, 1:].float(), x0_fake[:, :, 1:].float()
    scale = (x - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    return torch.nan_to_num((fake - real) / scale.clamp_min(1e-12))


def dmd_loss(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """½ mean (x − sg(x − g))² over frames 1..: its gradient with respect to x is g / N."""
    out = x[:, :, 1:].float()
    return 0.5 * (out - (out - grad).detach()).square().mean()


def distribution_matching(
    x: torch.Tensor,
    real,
    fake,
    cond: Conditions,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    real_guidance: Guidance,
    chunks: Sequence[int] | None = None,
    kv_window: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The DMD loss of a rollout x (gradients reach the student through x only) and diagnostics."""
    sigma_frames = frame_sigmas(sigma.to(x.device), x.shape[2])
    with torch.no_grad():
        x_sigma = noisy_latents(x.detach(), noise, sigma_frames)
        x0_real = predict_x0(real, x_sigma, sigma_frames, cond, real_guidance, chunks, kv_window)
        x0_fake = predict_x0(fake, x_sigma, sigma_frames, cond, Guidance(1.0), chunks, kv_window)
        grad = dmd_gradient(x.detach(), x0_real, x0_fake)
    loss = dmd_loss(x, grad)
    return loss, {"dmd_grad_rms": grad.square().mean().sqrt().item()}


def critic_loss(
    fake,
    x: torch.Tensor,
    cond: Conditions,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    chunks: Sequence[int] | None = None,
    kv_window: int | None = None,
) -> torch.Tensor:
    """Flow matching of the fake score on the student's (detached) rollout x, frames 1..."""
    x = x.detach()
    sigma_frames = frame_sigmas(sigma.to(x.device), x.shape[2])
    x_sigma = noisy_latents(x, noise, sigma_frames)
    v = fake(
        x_sigma,
        sigma_frames * 1000.0,
        cond.text,
        cond.text_mask,
        cond.camera,
        cond.plucker,
        chunks=chunks,
        kv_window=kv_window,
    )
    target = velocity_target(x, noise)
    return (v[:, :, 1:].float() - target[:, :, 1:].float()).square().mean()


__all__ = [
    "critic_loss",
    "distribution_matching",
    "dmd_gradient",
    "dmd_loss",
    "draw_sigma",
    "frame_sigmas",
    "predict_x0",
]
