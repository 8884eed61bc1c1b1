"""The SANA-WM generator: a hybrid linear DiT over VAE latents with dual-branch camera control.

Inputs (B = batch, T = latent frames, H x W = latent grid):
    latents   (B, C_in, T, H, W)
    timestep  (B, T) per latent frame, in [0, 1000] (truncated to integers, like the release)
    text      (B, L, caption_channels), text_mask (B, L) bool or None; L may be 0
    camera    (B, T, 20): c2w relative to raw frame 0 (row-major 4x4) + (fx, fy, cx, cy) in latent-grid
              pixels; latent frame k carries raw frame 8k (see `sanawm.cameras.latent_camera_inputs`)
    plucker   (B, 48, T, H, W): Plücker rays of the 8 raw frames folded into each latent frame

Modes: `forward(..., chunks=None)` is bidirectional; `forward(..., chunks=(4, 3, 3, ...))` is
chunk-causal; `stream_step` runs one chunk with a carried `StreamState` and reproduces the
chunk-causal forward chunk by chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import AttentionContext
from .blocks import Block
from .config import ModelConfig
from .ops.context_parallel import ContextParallel
from .ops.rope import Rope, angle_table, axis_pairs
from .ops.ucpe import invert_rigid, ray_transforms
from .state import StreamState


class SanaWMTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C, p = cfg.hidden_size, cfg.patch_size
        self.x_embedder = _PatchEmbed(cfg.in_channels, C, p)
        self.plucker_embedder = _PatchEmbed(cfg.plucker_channels, C, p)
        # Present in the release's checkpoints (an absolute ray-map embedder it never calls when the
        # Plücker branch is on); kept, unused, so those checkpoints load and save losslessly.
        self.raymap_embedder = _PatchEmbed(3, C, p)
        self.t_embedder = _TimestepEmbedding(C)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(C, 6 * C))
        self.y_embedder = _CaptionEmbedder(cfg.caption_channels, C)
        self.attention_y_norm = nn.RMSNorm(C, eps=cfg.norm_eps) if cfg.y_norm else nn.Identity()
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.num_layers))
        self.final_layer = _FinalLayer(C, math.prod(p) * cfg.in_channels)
        self._rope_table = angle_table(cfg.linear_head_dim, cfg.rope_max_len, cfg.rope_theta)
        self.reset_parameters()

    # ---- construction ---------------------------------------------------------------------------

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh weights. Camera and Plücker output projections and temporal convs start at zero, so the
        network ignores the camera until training moves them. The Plücker embedder keeps its default
        (non-zero) init: with it at zero too, neither it nor the zero projection behind it would ever
        receive a gradient."""
        if any(p.is_meta for p in self.parameters()):
            return
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            block.attn.reset_parameters()
            nn.init.zeros_(block.mlp.t_conv.weight)
            if block.plucker_proj is not None:
                nn.init.zeros_(block.plucker_proj.weight)
                nn.init.zeros_(block.plucker_proj.bias)
        for lin in (self.t_embedder.linear_1, self.t_embedder.linear_2):
            nn.init.normal_(lin.weight, std=0.02)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: 'camera' (UCPE branch: cam q/k/v/out projections, norms, K convs),
        'plucker' (raw-frame Plücker embedder and per-block projections), 'compat' (kept only so the
        release's checkpoints load: the ray-map embedder and the GDN gates of softmax blocks), and
        'main' (everything else)."""
        groups: dict[str, list[nn.Parameter]] = {"main": [], "camera": [], "plucker": [], "compat": []}
        for name, param in self.named_parameters():
            groups[_parameter_group(name, self.cfg)].append(param)
        return groups

    # ---- public entry points --------------------------------------------------------------------

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        plucker: torch.Tensor | None = None,
        chunks: Sequence[int] | None = None,
        kv_window: int | None = None,
        cp: ContextParallel | None = None,
    ) -> torch.Tensor:
        """Velocity prediction (B, C_in, T, H, W). `chunks=None`: bidirectional; else chunk-causal with
        softmax queries seeing the first chunk, the `kv_window` previous chunks (None: all) and their own.

        With `cp` (context parallelism), every per-frame input holds only this rank's
        `cp.frames` frames, `chunks` still describes the whole clip, and the output is this
        rank's frames of the whole-clip result."""
        T = latents.shape[2]
        if cp is not None and T != cp.frames:
            raise ValueError(f"under context parallelism each rank passes its {cp.frames} frames, got {T}")
        total = T if cp is None else cp.total_frames
        if chunks is not None:
            chunks = tuple(int(c) for c in chunks)
            if sum(chunks) != total or min(chunks) < 1:
                raise ValueError(
                    f"chunks {list(chunks)} must be positive and sum to the {total} latent frames"
                )
        out, _ = self._run(latents, timestep, text, text_mask, camera, plucker, chunks, kv_window, None, cp)
        return out

    def stream_step(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        text: torch.Tensor,
        state: StreamState,
        text_mask: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        plucker: torch.Tensor | None = None,
        ropes: tuple[Rope, Rope] | None = None,
    ) -> tuple[torch.Tensor, StreamState]:
        """Run one chunk (all of `latents`' frames) after the chunks summarised in `state`.

        Returns the prediction and the state that includes this chunk. `state` is not modified: to
        denoise a chunk, call repeatedly with the same state, then commit with one clean pass.

        `ropes`: the rotary angles of this call, `stream_ropes(latents, state)` (None: computed here).
        They are the only way `state.frames_done` reaches the network (`state.chunks_done` does not at
        all), so a caller that passes them makes the step a function of tensors alone: what the CUDA-graph
        replay (`sanawm.model.graphs.GraphedStreamStep`) needs.
        """
        if len(state.blocks) != len(self.blocks):
            raise ValueError(f"state has {len(state.blocks)} blocks but the model has {len(self.blocks)}")
        return self._run(
            latents, timestep, text, text_mask, camera, plucker, None, state.kv_window, state, ropes=ropes
        )

    def stream_ropes(self, latents: torch.Tensor, state: StreamState, device=None) -> tuple[Rope, Rope]:
        """The RoPE angles (main heads (N, D/2), camera half-heads (N, D/4); float32, on `device`, default
        `latents`' device) that `stream_step(latents, ..., state)` uses: its frames sit at absolute latent
        indices state.frames_done, state.frames_done + 1, ..."""
        device = latents.device if device is None else device
        return self._ropes(self._grid(latents), state.frames_done, device)

    def init_stream_state(self, kv_window: int | None = 2) -> StreamState:
        return StreamState.initial(len(self.blocks), kv_window)

    def compile_blocks(self, mode: str | None = None) -> SanaWMTransformer:
        """Put every block's forward under `torch.compile` (in place; weights, state-dict keys and outputs
        unchanged). The first calls compile, for each block kind (GDN / softmax) and each shape the
        sampler meets (first chunk, later chunks, a filling KV window); on a GPU this more than halves a
        streamed minute (docs/benchmarks.md). `mode`: torch.compile's mode (None: the default)."""
        import torch._dynamo

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        torch._dynamo.config.accumulated_recompile_limit = max(
            torch._dynamo.config.accumulated_recompile_limit, 512
        )
        for block in self.blocks:
            block.compile(mode=mode)
        return self

    # ---- the network ----------------------------------------------------------------------------

    def _run(
        self,
        latents,
        timestep,
        text,
        text_mask,
        camera,
        plucker,
        chunks,
        kv_window,
        state,
        cp=None,
        ropes=None,
    ):
        cfg = self.cfg
        B, _, T, Hl, Wl = latents.shape
        self._check_inputs(latents, timestep, text, text_mask, camera, plucker)
        dtype = self.x_embedder.proj.weight.dtype
        grid = self._grid(latents)
        offset = state.frames_done if state is not None else (cp.frame_start if cp is not None else 0)

        x = self.x_embedder(latents.to(dtype))
        plucker_emb = None if plucker is None else self.plucker_embedder(plucker.to(dtype))
        t_emb = self.t_embedder(timestep.long().float().reshape(-1)).to(dtype)  # (B*T, C)
        t_mod = self.t_block(t_emb).reshape(B, T, 6, -1)
        t_emb = t_emb.reshape(B, T, -1)
        y = self.attention_y_norm(self.y_embedder(text.to(dtype)))

        ctx = self._context(grid, offset, camera, chunks, kv_window, state, x.device, cp, ropes)
        new_blocks = []
        for i, block in enumerate(self.blocks):
            block_state = None if state is None else state.blocks[i]
            x, new_state = block(x, y, text_mask, t_mod, ctx, plucker_emb, block_state)
            new_blocks.append(new_state)

        x = self.final_layer(x, t_emb)
        out = _unpatchify(x, grid, cfg.patch_size, cfg.in_channels)
        if state is None:
            return out, None
        return out, StreamState(
            tuple(new_blocks), state.frames_done + T, state.chunks_done + 1, state.kv_window
        )

    def _grid(self, latents: torch.Tensor) -> tuple[int, int, int]:
        """(T, H, W) tokens of a latent clip (B, C, T, H, W): one token per latent frame and patch."""
        _, ph, pw = self.cfg.patch_size
        return latents.shape[2], latents.shape[3] // ph, latents.shape[4] // pw

    def _ropes(self, grid, offset: int, device) -> tuple[Rope, Rope]:
        D = self.cfg.linear_head_dim
        rope = Rope.for_grid(self._rope_table, D, grid, offset).to(device, torch.float32)
        cam_pairs = axis_pairs(D // 2)
        rope_cam = Rope.for_grid(self._rope_table, D, grid, offset, pairs=cam_pairs).to(device, torch.float32)
        return rope, rope_cam

    def _context(
        self, grid, offset, camera, chunks, kv_window, state, device, cp, ropes=None
    ) -> AttentionContext:
        if ropes is None:
            rope, rope_cam = self._ropes(grid, offset, device)
        else:
            rope, rope_cam = ropes
            if rope.cos.shape[0] != math.prod(grid) or rope_cam.cos.shape[0] != math.prod(grid):
                raise ValueError(
                    f"ropes are for {rope.cos.shape[0]} tokens but this call has {math.prod(grid)} "
                    f"({grid[0]} frames of {grid[1]}x{grid[2]}); build them with stream_ropes(latents, state)"
                )
        ucpe = None
        if camera is not None:
            P = ray_transforms(camera, grid[1:], self.cfg.patch_size[1:])
            ucpe = (P, invert_rigid(P))
        return AttentionContext(
            grid=grid,
            rope=rope,
            rope_cam=rope_cam,
            ucpe=ucpe,
            chunks=chunks,
            kv_window=kv_window,
            stream=state is not None,
            chunk_offset=0 if state is None else state.chunks_done,
            cp=cp,
        )

    def _check_inputs(self, latents, timestep, text, text_mask, camera, plucker) -> None:
        cfg = self.cfg
        if latents.ndim != 5 or latents.shape[1] != cfg.in_channels:
            raise ValueError(f"latents must be (B, {cfg.in_channels}, T, H, W), got {tuple(latents.shape)}")
        B, _, T, H, W = latents.shape
        if H % cfg.patch_size[1] or W % cfg.patch_size[2]:
            raise ValueError(f"latent size {H}x{W} must be divisible by the patch size {cfg.patch_size[1:]}")
        if tuple(timestep.shape) != (B, T):
            raise ValueError(
                f"timestep must be (B, T) = ({B}, {T}), one per latent frame; got {tuple(timestep.shape)}"
            )
        if text.ndim != 3 or text.shape[0] != B or text.shape[2] != cfg.caption_channels:
            raise ValueError(f"text must be (B, L, {cfg.caption_channels}), got {tuple(text.shape)}")
        if text_mask is not None and tuple(text_mask.shape) != tuple(text.shape[:2]):
            raise ValueError(
                f"text_mask must be (B, L) = {tuple(text.shape[:2])}, got {tuple(text_mask.shape)}"
            )
        if camera is not None and tuple(camera.shape) != (B, T, 20):
            raise ValueError(
                f"camera must be (B, T, 20) = ({B}, {T}, 20): one c2w + intrinsics per latent frame; "
                f"got {tuple(camera.shape)}. Build it with sanawm.cameras.latent_camera_inputs."
            )
        if plucker is not None and tuple(plucker.shape) != (B, cfg.plucker_channels, T, H, W):
            raise ValueError(
                f"plucker must be (B, {cfg.plucker_channels}, T, H, W) = "
                f"{(B, cfg.plucker_channels, T, H, W)}, got {tuple(plucker.shape)}"
            )


_CAMERA_KEYS = (
    "q_proj_cam",
    "k_proj_cam",
    "v_proj_cam",
    "out_proj_cam",
    "q_norm_cam",
    "k_norm_cam",
    "conv_k_cam",
)
_SOFTMAX_UNUSED = ("beta_proj", "gate_proj", "A_log", "dt_bias")


def _parameter_group(name: str, cfg: ModelConfig) -> str:
    parts = name.split(".")
    if parts[0] == "raymap_embedder":
        return "compat"
    if parts[0] == "plucker_embedder" or "plucker_proj" in parts:
        return "plucker"
    if any(p in _CAMERA_KEYS for p in parts):
        return "camera"
    if (
        parts[0] == "blocks"
        and len(parts) > 3
        and parts[2] == "attn"
        and parts[3] in _SOFTMAX_UNUSED
        and cfg.block_kinds[int(parts[1])] == "softmax"
    ):
        return "compat"
    return "main"


class _PatchEmbed(nn.Module):
    """Conv3d patchifier (B, C_in, T, H, W) -> tokens (B, N, C), N ordered (t, h, w)."""

    def __init__(self, in_channels: int, hidden_size: int, patch: tuple[int, int, int]) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _TimestepEmbedding(nn.Module):
    """Sinusoidal features (cos | sin, 256 channels) -> Linear -> SiLU -> Linear."""

    def __init__(self, hidden_size: int, freq_channels: int = 256) -> None:
        super().__init__()
        self.freq_channels = freq_channels
        self.linear_1 = nn.Linear(freq_channels, hidden_size)
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_channels // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half
        )
        args = t.float()[:, None] * freqs[None]
        emb = torch.cat([torch.cos(args), torch.sin(args)], -1).to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(emb)))


class _CaptionEmbedder(nn.Module):
    def __init__(self, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.y_proj = _Mlp(in_channels, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.y_proj(y)


class _Mlp(nn.Module):
    def __init__(self, in_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden_size)
        self.fc2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(y), approximate="tanh"))


class _FinalLayer(nn.Module):
    """LayerNorm -> per-frame shift/scale from the timestep embedding -> Linear to patch pixels."""

    def __init__(self, hidden_size: int, out_features: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, out_features)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden_size) / hidden_size**0.5)

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        """x (B, N, C), t_emb (B, T, C)."""
        B, N, C = x.shape
        T = t_emb.shape[1]
        shift, scale = (self.scale_shift_table[None, None] + t_emb[:, :, None]).unbind(2)
        x = self.norm_final(x).reshape(B, T, -1, C) * (1 + scale[:, :, None]) + shift[:, :, None]
        return self.linear(x.reshape(B, N, C))


def _unpatchify(x: torch.Tensor, grid, patch, channels) -> torch.Tensor:
    B = x.shape[0]
    T, H, W = grid
    pt, ph, pw = patch
    x = x.reshape(B, T, H, W, pt, ph, pw, channels)
    return torch.einsum("nfhwopqc->ncfohpwq", x).reshape(B, channels, T * pt, H * ph, W * pw)
