"""UCPE: Unified Camera Positional Encoding, per-token ray-local 4x4 transforms.

For a token with unit viewing ray d (world frame) seen from a camera with centre o and y axis y_c,
the ray-local frame is e3 = d, e1 = normalise(y_c x d), e2 = normalise(d x e1), origin o; the
transform P maps world -> ray-local. Half of every head's channels (grouped by 4) are transformed
(queries by Pᵀ, keys and values by P⁻¹, the output back by P); the other half carries RoPE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .rope import Rope, apply_rope


def ray_transforms(camera: torch.Tensor, grid: tuple[int, int], patch: tuple[int, int]) -> torch.Tensor:
    """World -> ray-local transforms for every token.

    camera: (B, T, 20) = row-major 4x4 camera-to-world, then (fx, fy, cx, cy) in latent-grid pixels.
    grid: (H, W) tokens per frame; patch: (ph, pw) latent pixels per token.
    Returns P: (B, T*H*W, 4, 4).
    """
    B, T, _ = camera.shape
    H, W = grid
    work = torch.float64 if camera.dtype == torch.float64 else torch.float32
    cam = camera.to(work)
    c2w = cam[..., :16].reshape(B, T, 4, 4)
    fx, fy, cx, cy = (cam[..., 16 + i].reshape(B, T, 1, 1) for i in range(4))
    v, u = torch.meshgrid(
        torch.arange(H, dtype=work, device=cam.device),
        torch.arange(W, dtype=work, device=cam.device),
        indexing="ij",
    )
    x = (u - cx / patch[1]) / (fx / patch[1])
    y = (v - cy / patch[0]) / (fy / patch[0])
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # (B, T, H, W, 3)
    R, t = c2w[..., :3, :3], c2w[..., :3, 3]
    d_world = F.normalize(torch.einsum("btij,bthwj->bthwi", R, d_cam), dim=-1, eps=1e-6)
    cam_y = R[..., :, 1][:, :, None, None].expand_as(d_world)
    e1 = F.normalize(torch.cross(cam_y, d_world, dim=-1), dim=-1, eps=1e-6)
    e2 = F.normalize(torch.cross(d_world, e1, dim=-1), dim=-1, eps=1e-6)
    R_w2l = torch.stack([e1, e2, d_world], -2)  # rows are the local axes
    P = torch.zeros(*R_w2l.shape[:-2], 4, 4, dtype=work, device=cam.device)
    P[..., :3, :3] = R_w2l
    P[..., :3, 3] = -torch.einsum("bthwij,btj->bthwi", R_w2l, t)
    P[..., 3, 3] = 1.0
    return P.reshape(B, T * H * W, 4, 4)


def invert_rigid(P: torch.Tensor) -> torch.Tensor:
    """Closed-form inverse of rigid 4x4 transforms (..., 4, 4)."""
    Rt = P[..., :3, :3].transpose(-1, -2)
    out = torch.zeros_like(P)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -torch.einsum("...ij,...j->...i", Rt, P[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


def apply_ucpe(x: torch.Tensor, mats: torch.Tensor, rope: Rope, inverse_rope: bool = False) -> torch.Tensor:
    """x (B, H, N, D): channels [0, D/2) in groups of 4 <- mats (B, N, 4, 4) @ group; channels
    [D/2, D) get RoPE (inverse rotation when `inverse_rope`)."""
    B, Hh, N, D = x.shape
    geo, rot = x.split(D // 2, dim=-1)
    geo = torch.einsum("bnij,bhngj->bhngi", mats.to(x.dtype), geo.reshape(B, Hh, N, -1, 4)).reshape(
        B, Hh, N, D // 2
    )
    return torch.cat([geo, apply_rope(rot, rope, inverse=inverse_rope)], -1)


def downscale_to_reference_rms(reference: torch.Tensor, x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each token's head vector (last dim) of x down to the RMS of `reference`; never up."""
    ref = reference.square().mean(-1, keepdim=True).add(eps).sqrt()
    cur = x.square().mean(-1, keepdim=True).add(eps).sqrt()
    return x * (ref / cur.clamp_min(eps)).clamp(max=1.0)
