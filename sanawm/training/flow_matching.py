"""Flow matching on the linear path: x_σ = (1 - σ) x₀ + σ ε, velocity target v = ε - x₀.

σ is per latent frame (B, T); the network sees timestep = 1000 σ.
"""

from __future__ import annotations

import torch


def noisy_latents(x0: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x0, noise (B, C, T, H, W); sigma (B, T) in [0, 1]."""
    s = sigma[:, None, :, None, None].to(x0.dtype)
    return (1 - s) * x0 + s * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def shift_sigma(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """The SD3/Sana flow shift: σ' = shift σ / (1 + (shift - 1) σ)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def logit_normal_sigma(
    shape, mean: float = 0.0, std: float = 1.0, shift: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """σ = shift(sigmoid(N(mean, std²)))."""
    return shift_sigma(torch.sigmoid(mean + std * torch.randn(shape, generator=generator)), shift)


def flow_matching_loss(
    model,
    x0,
    noise,
    sigma,
    text,
    text_mask=None,
    camera=None,
    plucker=None,
    chunks=None,
    frame_weight: torch.Tensor | None = None,
    kv_window: int | None = None,
    weight_total: torch.Tensor | float | None = None,
) -> torch.Tensor:
    """Mean squared velocity error. `frame_weight` (B, T) can drop frames from the loss (e.g. a clean
    conditioning first frame: weight 0).

    The weighted loss is Σ w·err / `weight_total`, with `weight_total` = Σ w by default. Under data
    parallelism pass the global batch's Σ w divided by the number of ranks: averaging the ranks'
    gradients then gives exactly the gradient of the global batch's loss."""
    pred = model(
        noisy_latents(x0, noise, sigma),
        sigma * 1000,
        text,
        text_mask,
        camera,
        plucker,
        chunks=chunks,
        kv_window=kv_window,
    )
    err = (pred.float() - velocity_target(x0, noise).float()).square().mean(dim=(1, 3, 4))  # (B, T)
    if frame_weight is None:
        return err.mean()
    total = frame_weight.sum() if weight_total is None else torch.as_tensor(weight_total)
    return (err * frame_weight.to(err)).sum() / total.to(err).clamp_min(1e-8)
