"""A SANA-WM block and its parts: text cross-attention and the Mix-FFN.

x = x + gate_msa * attn(modulate(norm1(x), shift_msa, scale_msa))      (per latent frame)
x = x + plucker_proj(plucker_emb)                                          (zero at init)
x = x + cross_attn(x, text)
x = x + gate_mlp * mix_ffn(modulate(norm2(x), shift_mlp, scale_mlp))
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import AttentionContext, SelfAttention
from .ops.temporal import conv_with_halo, temporal_conv3
from .state import BlockState

# The empty carry, built once: torch.compile (torch 2.11's dynamo) cannot trace the construction of a
# dataclass with a default_factory inside a compiled block, which `BlockState()` would be there.
_NO_STATE = BlockState()


class CrossAttention(nn.Module):
    """Multi-head attention from video tokens to text tokens; a query with no valid text reads zero."""

    def __init__(self, hidden_size: int, heads: int, qk_norm: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(hidden_size, hidden_size)
        self.kv_linear = nn.Linear(hidden_size, 2 * hidden_size)
        self.proj = nn.Linear(hidden_size, hidden_size)
        self.q_norm = nn.RMSNorm(hidden_size, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(hidden_size, eps=1e-6) if qk_norm else nn.Identity()

    def forward(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, N, C), text (B, L, C), text_mask (B, L) bool or None -> (B, N, C)."""
        B, N, C = x.shape
        L = text.shape[1]
        if L == 0:
            return self.proj(x.new_zeros(B, N, C))
        k, v = self.kv_linear(text).chunk(2, dim=-1)
        q = self.q_norm(self.q_linear(x)).reshape(B, N, self.heads, -1).transpose(1, 2)
        k = self.k_norm(k).reshape(B, L, self.heads, -1).transpose(1, 2)
        v = v.reshape(B, L, self.heads, -1).transpose(1, 2)
        mask = None
        if text_mask is not None:
            valid = text_mask.bool()
            has_text = valid.any(-1, keepdim=True)
            # A fully masked row is unmasked for the kernel (cuDNN attention returns NaN gradients for
            # it) and its output zeroed below, so "no text" reads zero.
            mask = (valid | ~has_text)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if text_mask is not None:
            out = out * has_text.to(out.dtype)[:, :, None, None]
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class MixFFN(nn.Module):
    """1x1 conv -> SiLU -> 3x3 depthwise conv -> GLU (SiLU gate) -> 1x1 conv, plus a residual
    temporal conv (kernel 3 over frames, zero at init). Keys match the release (`*.conv.weight`)."""

    def __init__(self, hidden_size: int, mlp_ratio: float) -> None:
        super().__init__()
        C, Hd = hidden_size, int(hidden_size * mlp_ratio)
        self.inverted_conv = _Conv(nn.Conv2d(C, 2 * Hd, 1, bias=True))
        self.depth_conv = _Conv(nn.Conv2d(2 * Hd, 2 * Hd, 3, padding=1, groups=2 * Hd, bias=True))
        self.point_conv = _Conv(nn.Conv2d(Hd, C, 1, bias=False))
        self.t_conv = nn.Conv2d(C, C, kernel_size=(3, 1), padding=(1, 0), bias=False)

    def forward(self, x: torch.Tensor, ctx: AttentionContext, tail: torch.Tensor | None):
        """x (B, N, C) -> (B, N, C) and the new temporal-conv tail (B, 1, S, C)."""
        B, N, C = x.shape
        T, H, W = ctx.grid
        h = F.silu(_pointwise(x, self.inverted_conv.conv))
        h = h.reshape(B * T, H, W, -1).permute(0, 3, 1, 2)
        h = self.depth_conv.conv(h).permute(0, 2, 3, 1)
        value, gate = h.chunk(2, dim=-1)
        h = _pointwise(value * F.silu(gate), self.point_conv.conv).reshape(B, T, H * W, C)
        if ctx.cp is not None:
            dh, new_tail = conv_with_halo(temporal_conv3, h, self.t_conv.weight, ctx.chunks, ctx.cp, 1), None
        else:
            chunks = None if ctx.stream else ctx.chunks
            dh, new_tail = temporal_conv3(h, self.t_conv.weight, chunks, tail)
        return (h + dh).reshape(B, N, C), new_tail


class _Conv(nn.Module):
    """Holder that keeps the release's `<name>.conv.weight` key layout."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv


def _pointwise(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 conv applied to (..., C_in) token features as a linear map."""
    return F.linear(x, conv.weight[:, :, 0, 0], conv.bias)


class Block(nn.Module):
    def __init__(self, cfg, index: int) -> None:
        super().__init__()
        C = cfg.hidden_size
        self.kind = cfg.block_kinds[index]
        self.norm1 = nn.LayerNorm(C, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(
            C, cfg.linear_head_dim, self.kind, cfg.conv_kernel_size, cfg.qk_norm, cfg.norm_eps, cfg.gdn_eps
        )
        self.plucker_proj = nn.Linear(C, C) if cfg.has_plucker(index) else None
        self.cross_attn = CrossAttention(C, cfg.num_attention_heads, cfg.cross_norm)
        self.norm2 = nn.LayerNorm(C, elementwise_affine=False, eps=1e-6)
        self.mlp = MixFFN(C, cfg.mlp_ratio)
        self.scale_shift_table = nn.Parameter(torch.randn(6, C) / C**0.5)

    def forward(
        self, x, text, text_mask, t_mod, ctx: AttentionContext, plucker=None, state: BlockState | None = None
    ):
        """x (B, N, C); t_mod (B, T, 6, C) per-frame modulation; plucker (B, N, C) or None.

        Returns x and, when `ctx.stream`, the new BlockState.
        """
        B, N, C = x.shape
        T = ctx.grid[0]
        state = _NO_STATE if state is None else state
        mod = self.scale_shift_table + t_mod  # (B, T, 6, C)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod.unbind(2)

        h = _modulate(self.norm1(x), shift_msa, scale_msa, T)
        attn, attn_state = self.attn(h, ctx, state.attn)
        x = x + _per_frame(attn, gate_msa, T)
        if plucker is not None and self.plucker_proj is not None:
            x = x + self.plucker_proj(plucker)
        x = x + self.cross_attn(x, text, text_mask)
        h = _modulate(self.norm2(x), shift_mlp, scale_mlp, T)
        ffn, ffn_tail = self.mlp(h, ctx, state.ffn_tail)
        x = x + _per_frame(ffn, gate_mlp, T)
        return x, (BlockState(attn_state, ffn_tail) if ctx.stream else None)


def _modulate(x, shift, scale, T):
    """x (B, N, C) with per-frame shift/scale (B, T, C)."""
    B, N, C = x.shape
    return (x.reshape(B, T, -1, C) * (1 + scale[:, :, None]) + shift[:, :, None]).reshape(B, N, C)


def _per_frame(x, gate, T):
    B, N, C = x.shape
    return (x.reshape(B, T, -1, C) * gate[:, :, None]).reshape(B, N, C)
