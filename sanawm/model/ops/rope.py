"""3D rotary position embedding (Wan-style split over t, h, w), on interleaved channel pairs.

A head of D channels holds D/2 complex pairs (x[2i], x[2i+1]). Pairs are split between the time,
height and width axes: D/2 - 2*(D//6) for time, D//6 each for height and width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def axis_pairs(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs given to (t, h, w) for a head of `head_dim` channels."""
    return head_dim // 2 - 2 * (head_dim // 6), head_dim // 6, head_dim // 6


def angle_table(head_dim: int, max_len: int, theta: float) -> torch.Tensor:
    """(max_len, head_dim/2) float64 angles: per axis, position x theta^(-2i/dim_axis), axes concatenated."""
    h_dim = 2 * (head_dim // 6)
    dims = (head_dim - 2 * h_dim, h_dim, h_dim)
    pos = torch.arange(max_len, dtype=torch.float64, device="cpu")
    parts = []
    for dim in dims:
        inv = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device="cpu")[: dim // 2] / dim)
        parts.append(torch.outer(pos, inv.double()))
    return torch.cat(parts, 1)


@dataclass(frozen=True)
class Rope:
    """cos / sin of the rotation angle for each token and pair: (N, D/2) each."""

    cos: torch.Tensor
    sin: torch.Tensor

    @staticmethod
    def for_grid(
        table: torch.Tensor, head_dim: int, grid: tuple[int, int, int], t_offset: int = 0, pairs=None
    ) -> Rope:
        """Angles for a (T, H, W) token grid whose first frame has absolute index `t_offset`.

        `pairs` picks how many leading pairs of each axis block to keep (the camera branch uses a
        smaller head, re-sliced from the same table); default: all of `axis_pairs(head_dim)`.
        """
        T, H, W = grid
        nt, nh, nw = axis_pairs(head_dim)
        kt, kh, kw = pairs or (nt, nh, nw)
        if t_offset + T > table.shape[0] or max(H, W) > table.shape[0]:
            raise ValueError(
                f"grid {grid} at frame offset {t_offset} exceeds the RoPE table ({table.shape[0]})"
            )
        at = table[t_offset : t_offset + T, :kt]
        ah = table[:H, nt : nt + kh]
        aw = table[:W, nt + nh : nt + nh + kw]
        angles = torch.cat(
            [
                at[:, None, None].expand(T, H, W, kt),
                ah[None, :, None].expand(T, H, W, kh),
                aw[None, None, :].expand(T, H, W, kw),
            ],
            -1,
        ).reshape(T * H * W, kt + kh + kw)
        return Rope(angles.cos(), angles.sin())

    def to(self, device, dtype) -> Rope:
        return Rope(self.cos.to(device, dtype), self.sin.to(device, dtype))


def apply_rope(x: torch.Tensor, rope: Rope, inverse: bool = False) -> torch.Tensor:
    """Rotate interleaved pairs of x (..., N, D) by the token angles; `inverse` rotates back."""
    dtype = x.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    pairs = x.to(work).unflatten(-1, (-1, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    cos, sin = rope.cos.to(x.device, work), rope.sin.to(x.device, work)
    if inverse:
        sin = -sin
    out = torch.stack([re * cos - im * sin, re * sin + im * cos], -1).flatten(-2)
    return out.to(dtype)
