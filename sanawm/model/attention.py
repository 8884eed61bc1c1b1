"""Self-attention of a SANA-WM block: frame-wise GDN or softmax, each with a UCPE camera branch.

Both kinds share one parameter layout (that of the released checkpoint), so any block loads from
the same keys: fused `qkv`, q/k RMSNorms, GDN gates (`beta_proj`, `gate_proj`, `A_log`, `dt_bias`;
unused by softmax blocks), a SiLU `output_gate`, `proj`, and the camera branch (`q/k/v_proj_cam`,
`q/k_norm_cam`, zero-initialised `out_proj_cam`). GDN blocks also own the K short convs.

    out = proj( (main(x) + out_proj_cam(camera(x))) * silu(output_gate(x)) )
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops.context_parallel import ContextParallel
from .ops.gdn import GDNInputs, GDNState, combine, gdn_scan
from .ops.rope import Rope, apply_rope
from .ops.temporal import conv_with_halo, symmetric_short_conv
from .ops.ucpe import apply_ucpe, downscale_to_reference_rms
from .state import AttentionState, KVWindow

_NO_STATE = AttentionState()  # the empty carry, built once (see blocks._NO_STATE)


@dataclass(frozen=True)
class AttentionContext:
    """What every block's attention needs to know about the current call.

    grid: (T, H, W) tokens of this call. rope / rope_cam: angles for the main heads (N, D/2) and the
    camera half-heads (N, D/4). ucpe: (P, P⁻¹) world->ray transforms (B, N, 4, 4), None without
    camera. chunks: frames per chunk in chunk-causal mode, None when bidirectional. kv_window: recent
    chunks a softmax query sees besides the sink and its own chunk (None: all). stream: this call is
    one chunk of a stream whose earlier chunks are in the state. chunk_offset: index of the call's
    first chunk in the whole video. cp: this rank's share of the frames under context parallelism
    (then `grid` counts local frames and `chunks` the whole clip).
    """

    grid: tuple[int, int, int]
    rope: Rope
    rope_cam: Rope
    ucpe: tuple[torch.Tensor, torch.Tensor] | None
    chunks: tuple[int, ...] | None = None
    kv_window: int | None = None
    stream: bool = False
    chunk_offset: int = 0
    cp: ContextParallel | None = None


def softmax_pad_dim(head_dim: int) -> int:
    """Head dim the release zero-pads the camera softmax branch to (so its logit scale is 1/sqrt(pad))."""
    if head_dim in (32, 64, 128, 256) or head_dim >= 256:
        return head_dim
    return 128 if head_dim <= 128 else 256


class SelfAttention(nn.Module):
    """kind='gdn' or 'softmax'. forward(x (B, N, C), ctx, state) -> (y (B, N, C), new state or None)."""

    def __init__(
        self,
        hidden_size: int,
        head_dim: int,
        kind: str,
        conv_kernel_size: int = 4,
        qk_norm: bool = True,
        norm_eps: float = 1e-5,
        gdn_eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if kind not in ("gdn", "softmax"):
            raise ValueError(f"attention kind must be 'gdn' or 'softmax', got {kind!r}")
        C = hidden_size
        self.kind, self.heads, self.head_dim, self.gdn_eps = kind, C // head_dim, head_dim, gdn_eps
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.proj = nn.Linear(C, C)
        self.q_norm = nn.RMSNorm(C, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(C, eps=norm_eps) if qk_norm else nn.Identity()
        self.beta_proj = nn.Linear(C, self.heads)
        self.gate_proj = nn.Linear(C, self.heads)
        self.A_log = nn.Parameter(torch.zeros(self.heads))
        self.dt_bias = nn.Parameter(torch.zeros(self.heads))
        self.output_gate = nn.Linear(C, C)
        self.q_proj_cam = nn.Linear(C, C)
        self.k_proj_cam = nn.Linear(C, C)
        self.v_proj_cam = nn.Linear(C, C)
        self.out_proj_cam = nn.Linear(C, C)
        self.q_norm_cam = nn.RMSNorm(C, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm_cam = nn.RMSNorm(C, eps=norm_eps) if qk_norm else nn.Identity()
        if kind == "gdn":
            self.conv_k = ShortConv(C, conv_kernel_size)
            self.conv_k_cam = ShortConv(C, conv_kernel_size)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Start as plain linear attention (β ≈ 0.98, γ ≈ 0.99) with a silent camera branch."""
        C = self.qkv.in_features
        for lin in (self.qkv, self.proj, self.output_gate):
            nn.init.xavier_uniform_(lin.weight)
            if lin.bias is not None:
                nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.beta_proj.weight)
        nn.init.constant_(self.beta_proj.bias, 4.0)
        nn.init.zeros_(self.gate_proj.weight)
        nn.init.zeros_(self.gate_proj.bias)
        self.A_log.zero_()
        self.dt_bias.fill_(-5.0)
        for i, lin in enumerate((self.q_proj_cam, self.k_proj_cam, self.v_proj_cam)):
            lin.weight.copy_(self.qkv.weight[i * C : (i + 1) * C])
            lin.bias.zero_()
        nn.init.zeros_(self.out_proj_cam.weight)
        nn.init.zeros_(self.out_proj_cam.bias)
        for norm in (self.q_norm, self.k_norm, self.q_norm_cam, self.k_norm_cam):
            if isinstance(norm, nn.RMSNorm):
                nn.init.ones_(norm.weight)
        if self.kind == "gdn":
            self.conv_k.reset_parameters()
            self.conv_k_cam.reset_parameters()

    def forward(self, x: torch.Tensor, ctx: AttentionContext, state: AttentionState | None = None):
        state = _NO_STATE if state is None else state
        run = self._gdn if self.kind == "gdn" else self._softmax
        main, cam, new_state = run(x, ctx, state)
        if cam is not None:
            main = main + self.out_proj_cam(cam)
        out = main * F.silu(self.output_gate(x).float())
        return self.proj(out.to(x.dtype)), (new_state if ctx.stream else None)

    # ---- shared pieces --------------------------------------------------------------------------

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, H, N, D)."""
        B, N, _ = t.shape
        return t.reshape(B, N, self.heads, self.head_dim).transpose(1, 2)

    def _tokens(self, t: torch.Tensor) -> torch.Tensor:
        """(B, H, N, D) -> (B, N, C)."""
        B, H, N, D = t.shape
        return t.transpose(1, 2).reshape(B, N, H * D)

    def _gates(self, x: torch.Tensor, grid):
        """β (B, H, T, S) per token; γ (B, H, T) per frame from the frame's mean token."""
        B, N, C = x.shape
        T, S = grid[0], grid[1] * grid[2]
        beta = self.beta_proj(x).sigmoid().reshape(B, T, S, self.heads).permute(0, 3, 1, 2)
        gate = self.gate_proj(x.reshape(B, T, S, C).mean(2)).float()
        rate = self.A_log.float().exp()
        decay = torch.exp(-rate * F.softplus(gate + self.dt_bias.float())).transpose(1, 2)
        return beta, decay

    def _camera_qkv(self, x, ctx, state, relu: bool):
        q = self.q_proj_cam(x)
        k = self.k_proj_cam(x)
        v = self.v_proj_cam(x)
        k_tail = None
        if self.kind == "gdn":
            k, k_tail = self.conv_k_cam(k, ctx, state.k_cam_tail)
        q, k = self.q_norm_cam(q), self.k_norm_cam(k)
        if relu:
            q, k = F.relu(q), F.relu(k)
        return self._heads(q), self._heads(k), self._heads(v), k_tail

    def _ucpe_encode(self, q, k, v, ctx):
        P, P_inv = ctx.ucpe
        qu = downscale_to_reference_rms(q, apply_ucpe(q, P.transpose(-1, -2), ctx.rope_cam))
        ku = downscale_to_reference_rms(k, apply_ucpe(k, P_inv, ctx.rope_cam))
        vu = downscale_to_reference_rms(v, apply_ucpe(v, P_inv, ctx.rope_cam))
        return qu, ku, vu

    def _ucpe_decode(self, o, ctx):
        return self._tokens(apply_ucpe(o, ctx.ucpe[0], ctx.rope_cam, inverse_rope=True))

    # ---- GDN ------------------------------------------------------------------------------------

    def _gdn(self, x, ctx: AttentionContext, state: AttentionState):
        B, N, C = x.shape
        T, S = ctx.grid[0], ctx.grid[1] * ctx.grid[2]
        chunks = None if ctx.stream else ctx.chunks
        beta, decay = self._gates(x, ctx.grid)
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        k, k_tail = self.conv_k(k, ctx, state.k_tail)
        q, k = F.relu(self.q_norm(q)), F.relu(self.k_norm(k))
        q, k, v = self._heads(q), self._heads(k) * (self.head_dim * S) ** -0.5, self._heads(v)
        frames = _frame_layout(T, S)
        inputs = GDNInputs(
            frames(apply_rope(q, ctx.rope)),
            frames(apply_rope(k, ctx.rope)),
            frames(v),
            beta,
            decay,
            frames(q),
            frames(k),
        )
        out = gdn_scan(inputs, chunks, state.gdn, cp=ctx.cp)
        main = self._tokens(combine(out, self.gdn_eps).flatten(2, 3).to(x.dtype))

        cam, cam_gdn, k_cam_tail = None, None, None
        if ctx.ucpe is not None:
            qc, kc, vc, k_cam_tail = self._camera_qkv(x, ctx, state, relu=True)
            kc = kc * (self.head_dim * S) ** -0.5
            pre = kc.norm(dim=-1).clamp_min(1e-6)
            qu, ku, vu = self._ucpe_encode(qc, kc, vc, ctx)
            inflation = (ku.norm(dim=-1).clamp_min(1e-6) / pre).square()  # (B, H, N)
            beta_cam = beta / inflation.reshape(B, self.heads, T, S).mean(-1, keepdim=True).clamp_min(1.0)
            cam_inputs = GDNInputs(frames(qu), frames(ku), frames(vu), beta_cam, decay)
            out_c = gdn_scan(cam_inputs, chunks, state.gdn_cam, cp=ctx.cp)
            cam = self._ucpe_decode(out_c.num.flatten(2, 3).to(x.dtype), ctx)
            cam_gdn = out_c.state
        new_state = AttentionState(gdn=out.state, gdn_cam=cam_gdn, k_tail=k_tail, k_cam_tail=k_cam_tail)
        return main, cam, new_state

    # ---- softmax --------------------------------------------------------------------------------

    def _softmax(self, x, ctx: AttentionContext, state: AttentionState):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = self._heads(self.q_norm(q)), self._heads(self.k_norm(k)), self._heads(v)
        q, k = apply_rope(q, ctx.rope), apply_rope(k, ctx.rope)
        main, kv = self._attend(q, k, v, ctx, state.kv, scale=self.head_dim**-0.5)
        main = self._tokens(main)

        cam, kv_cam = None, None
        if ctx.ucpe is not None:
            qc, kc, vc, _ = self._camera_qkv(x, ctx, state, relu=False)
            qu, ku, vu = self._ucpe_encode(qc, kc, vc, ctx)
            o, kv_cam = self._attend(
                qu, ku, vu, ctx, state.kv_cam, scale=softmax_pad_dim(self.head_dim) ** -0.5
            )
            cam = self._ucpe_decode(o, ctx)
        return main, cam, AttentionState(kv=kv, kv_cam=kv_cam)

    def _attend(self, q, k, v, ctx: AttentionContext, window: KVWindow | None, scale: float):
        """Softmax attention: over all tokens (bidirectional), chunk by chunk over the sink, the
        `kv_window` previous chunks and the own chunk (chunk-causal), or over the carried KV window
        plus this chunk (streaming). q, k, v (B, H, N, D)."""
        if ctx.stream:
            window = window or KVWindow(ctx.kv_window)
            cached = window.keys_values()
            kk, vv = (
                (k, v) if cached is None else (torch.cat([cached[0], k], 2), torch.cat([cached[1], v], 2))
            )
            return F.scaled_dot_product_attention(q, kk, vv, scale=scale), window.push(k, v)
        first_frame = 0
        if ctx.cp is not None:
            k, v, first_frame = ctx.cp.gather(k, 2), ctx.cp.gather(v, 2), ctx.cp.frame_start
        if ctx.chunks is None:
            return F.scaled_dot_product_attention(q, k, v, scale=scale), None
        S = ctx.grid[1] * ctx.grid[2]
        bounds = [0]
        for size in ctx.chunks:
            bounds.append(bounds[-1] + size * S)
        q_lo, q_hi = first_frame * S, (first_frame + ctx.grid[0]) * S  # this call's queries, in clip tokens
        outs = []
        for c in range(len(ctx.chunks)):
            lo, hi = max(bounds[c], q_lo), min(bounds[c + 1], q_hi)
            if lo >= hi:
                continue
            visible = visible_chunks(c, ctx.kv_window)
            kk = torch.cat([k[:, :, bounds[j] : bounds[j + 1]] for j in visible], 2)
            vv = torch.cat([v[:, :, bounds[j] : bounds[j + 1]] for j in visible], 2)
            outs.append(F.scaled_dot_product_attention(q[:, :, lo - q_lo : hi - q_lo], kk, vv, scale=scale))
        return torch.cat(outs, 2), None


def visible_chunks(c: int, kv_window: int | None) -> list[int]:
    """Chunks a softmax query of chunk c attends to: the sink (chunk 0), the `kv_window` previous
    chunks (all when None) and its own."""
    first = 1 if kv_window is None else max(1, c - kv_window)
    return sorted({0, *range(first, c + 1)})


class ShortConv(nn.Module):
    """The K short conv: a causal depthwise kernel `weight` (C, 1, K), mirrored into the future inside
    a chunk (see `symmetric_short_conv`). Identity at init (centre tap 1)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, 1, kernel_size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.weight.zero_()
        self.weight[:, 0, -1] = 1.0

    def forward(self, x: torch.Tensor, ctx: AttentionContext, tail: torch.Tensor | None):
        """x (B, N, C) -> (B, N, C), new tail (B, K-1, S, C)."""
        B, N, C = x.shape
        T = ctx.grid[0]
        frames = x.reshape(B, T, N // T, C)
        if ctx.cp is not None:
            y = conv_with_halo(
                symmetric_short_conv, frames, self.weight, ctx.chunks, ctx.cp, self.weight.shape[-1] - 1
            )
            return y.reshape(B, N, C), None
        chunks = None if ctx.stream else ctx.chunks
        y, new_tail = symmetric_short_conv(frames, self.weight, chunks, tail)
        return y.reshape(B, N, C), new_tail


def _frame_layout(T: int, S: int):
    def f(t: torch.Tensor) -> torch.Tensor:  # (B, H, N, D) -> (B, H, T, S, D)
        return t.unflatten(2, (T, S))

    return f


__all__ = ["AttentionContext", "SelfAttention", "ShortConv", "GDNState", "visible_chunks"]
