"""Small builders shared by the model tests."""

from __future__ import annotations

import numpy as np
import torch

from sanawm.cameras import latent_camera_inputs
from sanawm.model import get_preset
from sanawm.model.ops.gdn import GDNInputs
from sanawm.model.transformer import SanaWMTransformer


def orbit_c2w(num_frames: int) -> np.ndarray:
    """A smooth 6-DoF path: forward/sideways motion with yaw and a little pitch (OpenCV axes)."""
    s = np.linspace(0.0, 1.0, num_frames)
    c2w = np.tile(np.eye(4), (num_frames, 1, 1))
    yaw, pitch = 0.8 * s, 0.2 * np.sin(3 * s)
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    Ry = np.stack(
        [
            np.stack([cy, 0 * s, sy], -1),
            np.stack([0 * s, 1 + 0 * s, 0 * s], -1),
            np.stack([-sy, 0 * s, cy], -1),
        ],
        -2,
    )
    Rx = np.stack(
        [
            np.stack([1 + 0 * s, 0 * s, 0 * s], -1),
            np.stack([0 * s, cp, -sp], -1),
            np.stack([0 * s, sp, cp], -1),
        ],
        -2,
    )
    c2w[:, :3, :3] = Ry @ Rx
    c2w[:, :3, 3] = np.stack([0.5 * s, 0.1 * s**2, 2.0 * s], -1)
    return c2w


def camera_inputs(latent_frames: int, latent_hw: tuple[int, int], c2w: np.ndarray | None = None):
    """(camera (1, T, 20), plucker (1, 48, T, H, W)) for a 32x-downsampled image of latent_hw tokens."""
    H, W = latent_hw[0] * 32, latent_hw[1] * 32
    raw = 8 * (latent_frames - 1) + 1
    c2w = orbit_c2w(raw) if c2w is None else c2w[:raw]
    cam = latent_camera_inputs(c2w, [0.9 * W, 0.9 * W, W / 2, H / 2], image_size=(H, W))
    return cam.batched()


@torch.no_grad()
def randomize(model: SanaWMTransformer, scale: float = 0.1, seed: int = 0) -> SanaWMTransformer:
    """Make every branch live: perturb zero-initialised projections, convs and gates."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def tiny_network(latent_frames: int = 7, device="cpu", dtype=torch.float32):
    """`sana-wm-tiny` with every branch live (seed 0) and one set of its inputs (seed 1) on `device` in
    `dtype`: (model, (latents, timesteps, text, text mask None, camera, plucker)) on a 4x6 token grid."""
    torch.manual_seed(0)
    model = randomize(SanaWMTransformer(get_preset("sana-wm-tiny")), scale=0.1).to(device=device, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    T, grid = latent_frames, (4, 6)
    lat = torch.randn(1, model.cfg.in_channels, T, *grid, generator=g)
    ts = torch.rand(1, T, generator=g) * 1000
    text = torch.randn(1, 5, model.cfg.caption_channels, generator=g)
    camera, plucker = camera_inputs(T, grid)
    lat, ts, text, camera, plucker = (
        t.to(device=device, dtype=dtype) for t in (lat, ts, text, camera, plucker)
    )
    return model, (lat, ts, text, None, camera, plucker)


def network_layout(x: GDNInputs) -> GDNInputs:
    """The same values in the memory layout `SelfAttention._gdn` hands to `gdn_scan` (differentiable).

    The network computes per token, then views heads and frames: q, k, v become head views of one
    token-major (B, T, S, 3 H D) buffer (the fused `qkv`), q_den, k_den head views of a (B, T, S, H D)
    buffer, β a (B, T, S, H) buffer permuted to (B, H, T, S) and γ a (B, T, H) buffer transposed to
    (B, H, T). Only the last dim is unit-stride; no view is contiguous."""

    def token_major(ts):
        B, H, T, S = ts[0].shape[:4]
        buf = torch.cat([t.permute(0, 2, 3, 1, 4).reshape(B, T, S, -1) for t in ts], -1)
        views, start = [], 0
        for t in ts:
            width = H * t.shape[-1]
            views.append(buf[..., start : start + width].unflatten(-1, (H, -1)).permute(0, 3, 1, 2, 4))
            start += width
        return views

    q, k, v = token_major([x.q, x.k, x.v])
    q_den, k_den = (None, None) if x.k_den is None else token_major([x.q_den, x.k_den])
    beta = x.beta.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    decay = x.decay.transpose(1, 2).contiguous().transpose(1, 2)
    return GDNInputs(q, k, v, beta, decay, q_den, k_den)
