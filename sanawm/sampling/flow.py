"""Flow-matching samplers for the SANA-WM network. They know the network's call signature and nothing
about files, VAEs or text encoders.

The network predicts the velocity v = ε - x₀ of the linear path x_σ = (1 - σ) x₀ + σ ε, per latent
frame (timestep = 1000 σ). Latent frame 0 holds the encoded first image and stays clean (σ = 0).

Three samplers:
- `sample_bidirectional`: Euler over a σ schedule, all frames at once (the release's stage 1).
- `sample_chunked`: chunk by chunk, each chunk denoised over the σ schedule while the earlier chunks
  are context; `streaming=True` carries a `StreamState` (constant memory), `streaming=False`
  re-runs the chunk-causal forward over the whole prefix (the reference the streaming path equals).
  Context is clean by default; `context_sigma` σ_c > 0 shows the network each finished chunk lightly
  re-noised, (1 - σ_c) x + σ_c ε at timestep 1000 σ_c (the image frame stays clean), as training's
  "anchor" timestep pattern shows earlier chunks (σ <= 0.1): the history noise augmentation of
  GameNGen / Diffusion Forcing against autoregressive drift. The chunks returned stay the clean x.
- Few-step students: `sample_chunked(..., schedule=FewStepSchedule((1000, 960, 889, 727, 0)))` predicts
  x₀ at each listed timestep and re-noises it to the next one.
Guidance: classifier-free, `v = v_uncond + scale (v_cond - v_uncond)`, where the unconditional branch
drops the text (negative prompt) and/or the camera.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from ..model.graphs import GraphedStreamStep
from ..model.state import StreamState
from ..model.transformer import SanaWMTransformer


@dataclass(frozen=True)
class Conditions:
    """What one guidance branch shows the network: text (B, L, D) with mask (B, L), camera (B, T, 20)
    and plucker (B, 48, T, H, W) over all latent frames, or None where the branch drops them."""

    text: torch.Tensor
    text_mask: torch.Tensor | None = None
    camera: torch.Tensor | None = None
    plucker: torch.Tensor | None = None

    def frames(self, sl: slice) -> Conditions:
        return replace(
            self,
            camera=None if self.camera is None else self.camera[:, sl],
            plucker=None if self.plucker is None else self.plucker[:, :, sl],
        )


@dataclass(frozen=True)
class Guidance:
    """Classifier-free guidance. `scale` <= 1 disables it (one branch, the conditional one)."""

    scale: float = 5.0
    drop_text: bool = True
    drop_camera: bool = False

    @property
    def enabled(self) -> bool:
        return self.scale > 1.0

    def unconditional(self, cond: Conditions, negative_text=None, negative_mask=None) -> Conditions:
        out = cond
        if self.drop_text:
            if negative_text is None:
                negative_text = cond.text[:, :0]
                negative_mask = None
            out = replace(out, text=negative_text, text_mask=negative_mask)
        if self.drop_camera:
            out = replace(out, camera=None, plucker=None)
        return out

    def combine(self, v_uncond: torch.Tensor, v_cond: torch.Tensor) -> torch.Tensor:
        return v_uncond + self.scale * (v_cond - v_uncond)


@dataclass(frozen=True)
class EulerSchedule:
    """σ_0 = 1 > σ_1 > ... > σ_N = 0 from diffusers' FlowMatchEulerDiscreteScheduler: built with
    `shift`, or from a pipeline's `scheduler_config` (whose own shift then applies) when given."""

    steps: int = 60
    shift: float = 8.0
    scheduler_config: dict | None = field(default=None, compare=False)

    def sigmas(self) -> torch.Tensor:
        from diffusers import FlowMatchEulerDiscreteScheduler

        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.scheduler_config:
            scheduler = FlowMatchEulerDiscreteScheduler.from_config(self.scheduler_config)
        else:
            scheduler = FlowMatchEulerDiscreteScheduler(shift=self.shift)
        scheduler.set_timesteps(self.steps)
        return scheduler.sigmas.to(torch.float32)


@dataclass(frozen=True)
class FewStepSchedule:
    """An explicit decreasing timestep list ending at 0, e.g. the distilled (1000, 960, 889, 727, 0)."""

    timesteps: tuple[float, ...] = (1000.0, 960.0, 889.0, 727.0, 0.0)

    def sigmas(self) -> torch.Tensor:
        t = torch.tensor(self.timesteps, dtype=torch.float32)
        if len(t) < 2 or t[-1] != 0 or not bool((t[1:] < t[:-1]).all()) or t[0] > 1000:
            raise ValueError(f"timesteps must decrease from <= 1000 to 0, got {list(self.timesteps)}")
        return t / 1000.0


Denoise = Callable[[torch.Tensor, torch.Tensor, Conditions], torch.Tensor]


def _velocity(model_call: Denoise, x, timestep, branches, guidance: Guidance):
    if not guidance.enabled:
        return model_call(x, timestep, branches[-1])
    v_u = model_call(x, timestep, branches[0])
    v_c = model_call(x, timestep, branches[1])
    return guidance.combine(v_u, v_c)


def _branches(cond: Conditions, guidance: Guidance, negative_text, negative_mask) -> list[Conditions]:
    if not guidance.enabled:
        return [cond]
    return [guidance.unconditional(cond, negative_text, negative_mask), cond]


@torch.no_grad()
def sample_bidirectional(
    model: SanaWMTransformer,
    noise: torch.Tensor,
    first_latent: torch.Tensor,
    cond: Conditions,
    schedule: EulerSchedule = EulerSchedule(),
    guidance: Guidance = Guidance(),
    negative_text: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Euler from noise (B, C, T, H, W) to latents; latent frame 0 pinned to `first_latent` (B, C, 1, H, W)"""
    sigmas = schedule.sigmas().to(noise.device)
    x = noise.clone()
    x[:, :, :1] = first_latent.to(x.dtype)
    B, T = x.shape[0], x.shape[2]
    branches = _branches(cond, guidance, negative_text, negative_mask)

    def call(x_in, timestep, c: Conditions):
        return model(x_in, timestep, c.text, c.text_mask, c.camera, c.plucker)

    for i in range(len(sigmas) - 1):
        t = sigmas[i] * 1000.0
        timestep = torch.full((B, T), float(t), device=x.device)
        timestep[:, 0] = 0.0
        v = _velocity(call, x, timestep, branches, guidance)
        sigma = t / 1000.0
        x[:, :, 1:] = (x[:, :, 1:].float() + (sigmas[i + 1] - sigma) * v[:, :, 1:].float()).to(x.dtype)
        if progress is not None:
            progress(i + 1, len(sigmas) - 1)
    return x


def check_context_sigma(context_sigma: float) -> float:
    """`context_sigma` as a float, or a ValueError when it is outside [0, 1)."""
    value = float(context_sigma)
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"context_sigma must be in [0, 1) (0: clean context), got {context_sigma}; training's anchor "
            "pattern covers σ <= 0.1, so pass e.g. 0.05 (--context-sigma 0.05), or 0 to turn it off"
        )
    return value


def chunk_layout(latent_frames: int, chunk: int = 3, first: int = 4) -> tuple[int, ...]:
    """Chunk sizes over the latent frames: `first` frames (including the clean image frame), then
    `chunk` at a time, the last chunk shorter if needed."""
    if latent_frames < 1:
        raise ValueError("need at least one latent frame")
    sizes = [min(first, latent_frames)]
    while sum(sizes) < latent_frames:
        sizes.append(min(chunk, latent_frames - sum(sizes)))
    return tuple(sizes)


@torch.no_grad()
def sample_chunked(
    model: SanaWMTransformer,
    noise: torch.Tensor,
    first_latent: torch.Tensor,
    cond: Conditions,
    chunks: Sequence[int],
    schedule: EulerSchedule | FewStepSchedule = EulerSchedule(),
    guidance: Guidance = Guidance(),
    negative_text: torch.Tensor | None = None,
    negative_mask: torch.Tensor | None = None,
    kv_window: int | None = 2,
    streaming: bool = True,
    renoise: Callable[[int, int], torch.Tensor] | None = None,
    on_chunk: Callable[[int, torch.Tensor], None] | None = None,
    context_sigma: float = 0.0,
    context_noise: Callable[[int], torch.Tensor] | None = None,
    cuda_graphs: bool | GraphedStreamStep | None = False,
) -> torch.Tensor:
    """Autoregressive chunk-by-chunk sampling with the chunk-causal network.

    noise (B, C, T, H, W) supplies each chunk's starting noise; few-step schedules draw their re-noising
    from `renoise(chunk_index, step)` (a tensor shaped like the chunk; defaults to zeros-free fresh
    noise from the global RNG). `on_chunk(index, latents)` sees every finished chunk (e.g. to decode
    it while the next one is generated). `context_sigma` σ_c in [0, 1): the σ each finished chunk is
    re-noised to as context (`ChunkSession.commit`), with the noise `context_noise(chunk_index)` (shaped
    like the chunk; None: fresh noise from the global RNG); not called when σ_c = 0. `cuda_graphs`
    (streaming on a CUDA device): replay the network calls as CUDA graphs, see `ChunkSession`.
    """
    if sum(chunks) != noise.shape[2]:
        raise ValueError(f"chunks {list(chunks)} must sum to the {noise.shape[2]} latent frames")
    branches = _branches(cond, guidance, negative_text, negative_mask)
    session = ChunkSession(model, branches, guidance, kv_window, streaming, context_sigma, cuda_graphs)
    out, start = [], 0
    for index, size in enumerate(chunks):
        x = noise[:, :, start : start + size].clone()
        clean_first = start == 0
        if clean_first:
            x[:, :, :1] = first_latent.to(x.dtype)
        chunk_renoise = None if renoise is None else (lambda step, i=index: renoise(i, step))
        x = session.denoise(x, schedule, clean_first, chunk_renoise)
        with_noise = context_noise is not None and session.context_sigma > 0
        session.commit(x, context_noise(index) if with_noise else None, clean_first)
        out.append(x)
        if on_chunk is not None:
            on_chunk(index, x)
        start += size
    return torch.cat(out, 2)


class ChunkSession:
    """Carries what chunk-causal sampling needs between chunks, for every guidance branch: a
    `StreamState` each (streaming) or the context latents so far and their timesteps (reference mode).
    `context_sigma` σ_c in [0, 1): the σ finished chunks are re-noised to as context (see `commit`).

    `cuda_graphs` (streaming only; the network on a CUDA device): run every network call through a
    `GraphedStreamStep`, which captures each call shape once as a CUDA graph and replays it (same
    results; one launch per call instead of thousands). True: a new one for this session; a
    `GraphedStreamStep` of this model: that one, keeping the graphs it holds (e.g. across clips); False
    or None: eager."""

    def __init__(
        self,
        model,
        branches: list[Conditions],
        guidance: Guidance,
        kv_window,
        streaming: bool,
        context_sigma: float = 0.0,
        cuda_graphs: bool | GraphedStreamStep | None = False,
    ):
        self.model, self.branches, self.guidance = model, branches, guidance
        self.kv_window, self.streaming = kv_window, streaming
        self.context_sigma = check_context_sigma(context_sigma)
        self.graphs = _stream_graphs(model, cuda_graphs, streaming)
        self.states = [model.init_stream_state(kv_window) for _ in branches]
        self.history: list[torch.Tensor] = []  # (B, C, T_j, H, W) context chunks (reference mode)
        self.history_timesteps: list[torch.Tensor] = []  # (B, T_j) their timesteps
        self.frames_done = 0

    def _call(self, branch: int, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        c = self.branches[branch].frames(slice(self.frames_done, self.frames_done + x.shape[2]))
        if self.streaming:
            out, _ = self._stream_step(branch, x, timestep, c, keep_state=False)
            return out
        full = self.branches[branch].frames(slice(0, self.frames_done + x.shape[2]))
        prefix = torch.cat([*self.history, x], 2)
        prefix_t = torch.cat([*self.history_timesteps, timestep], 1)
        sizes = tuple(h.shape[2] for h in self.history) + (x.shape[2],)
        out = self.model(
            prefix,
            prefix_t,
            full.text,
            full.text_mask,
            full.camera,
            full.plucker,
            chunks=sizes,
            kv_window=self.kv_window,
        )
        return out[:, :, self.frames_done :]

    def _stream_step(self, branch: int, x, timestep, c: Conditions, keep_state: bool):
        """The network on a chunk after branch `branch`'s state: (prediction, new state; None when not
        `keep_state` and graphed)."""
        args = (x, timestep, c.text, self.states[branch], c.text_mask, c.camera, c.plucker)
        if self.graphs is None:
            return self.model.stream_step(*args)
        return self.graphs(*args, keep_state=keep_state)

    def velocity(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if not self.guidance.enabled:
            return self._call(0, x, timestep)
        return self.guidance.combine(self._call(0, x, timestep), self._call(1, x, timestep))

    def timesteps(self, x: torch.Tensor, sigma, clean_first: bool) -> torch.Tensor:
        """(B, T) timesteps 1000 σ for a chunk x (B, C, T, H, W); frame 0 at 0 when it is the clean image."""
        timestep = torch.full((x.shape[0], x.shape[2]), float(sigma * 1000.0), device=x.device)
        if clean_first:
            timestep[:, 0] = 0.0
        return timestep

    def step(
        self, x: torch.Tensor, sigmas: torch.Tensor, i: int, clean_first: bool, few_step: bool, renoise=None
    ):
        """One sampler step of a chunk from σ_i to σ_{i+1}: Euler, or (few-step) predict x₀ and re-noise
        it to σ_{i+1} with `renoise(i)` (fresh noise from the global RNG when None)."""
        sigma, nxt = sigmas[i], sigmas[i + 1]
        lo = 1 if clean_first else 0
        v = self.velocity(x, self.timesteps(x, sigma, clean_first))[:, :, lo:].float()
        cur = x[:, :, lo:].float()
        if few_step:
            x0 = cur - sigma * v
            fresh = torch.randn_like(cur) if renoise is None else renoise(i)[:, :, lo:].float()
            new = (1 - nxt) * x0 + nxt * fresh
        else:
            new = cur + (nxt - sigma) * v
        return torch.cat([x[:, :, :lo], new.to(x.dtype)], 2)

    def denoise(self, x: torch.Tensor, schedule, clean_first: bool, renoise=None) -> torch.Tensor:
        # σ stays on the host (a float32 CPU tensor: the same float32 arithmetic on the GPU, where its
        # entries enter kernels as scalars): reading a device σ for the timesteps would make every step
        # wait for the GPU, which with CUDA graphs leaves it idle between replays.
        sigmas = schedule.sigmas()
        few_step = isinstance(schedule, FewStepSchedule)
        for i in range(len(sigmas) - 1):
            x = self.step(x, sigmas, i, clean_first, few_step, renoise)
        return x

    def context(self, x: torch.Tensor, noise: torch.Tensor | None = None, clean_first: bool | None = None):
        """(latents, timesteps (B, T)) a finished chunk x (B, C, T, H, W) is recorded with: x at
        timestep 0 when σ_c = 0; else (1 - σ_c) x + σ_c ε at 1000 σ_c, ε = `noise` (shaped like x;
        fresh from the global RNG when None), except frame 0 when it is the clean image (`clean_first`;
        None: when x is this session's first chunk), which stays clean at timestep 0."""
        timestep = torch.full((x.shape[0], x.shape[2]), self.context_sigma * 1000.0, device=x.device)
        if self.context_sigma == 0.0:
            return x, timestep
        sigma = self.context_sigma
        eps = torch.randn_like(x, dtype=torch.float32) if noise is None else noise.float()
        noised = ((1 - sigma) * x.float() + sigma * eps).to(x.dtype)
        if clean_first is None:
            clean_first = self.frames_done == 0
        if clean_first:
            noised[:, :, :1] = x[:, :, :1]
            timestep[:, 0] = 0.0
        return noised, timestep

    def commit(
        self, x: torch.Tensor, noise: torch.Tensor | None = None, clean_first: bool | None = None
    ) -> None:
        """Record a finished clean chunk x (B, C, T, H, W) as context for the next ones: one pass per
        branch updates the stream states (streaming), or it joins the history (reference mode). The
        network sees it as `context(x, noise, clean_first)` gives: clean at σ = 0, or re-noised to
        `context_sigma` (the image frame kept clean)."""
        x, timestep = self.context(x, noise, clean_first)
        if self.streaming:
            sl = slice(self.frames_done, self.frames_done + x.shape[2])
            for b, cond in enumerate(self.branches):
                _, self.states[b] = self._stream_step(b, x, timestep, cond.frames(sl), keep_state=True)
        else:
            self.history.append(x)
            self.history_timesteps.append(timestep)
        self.frames_done += x.shape[2]

    def state(self) -> tuple[StreamState, ...]:
        return tuple(self.states)


def _stream_graphs(
    model, cuda_graphs: bool | GraphedStreamStep | None, streaming: bool
) -> GraphedStreamStep | None:
    """The `GraphedStreamStep` a session runs its network calls through, or None (eager: cuda_graphs
    False or None)."""
    if cuda_graphs is False or cuda_graphs is None:
        return None
    if not streaming:
        raise ValueError(
            "cuda_graphs replays the streaming step: sample with streaming=True (`--mode streaming`); the "
            "reference mode re-runs a growing prefix, a new shape every chunk"
        )
    if cuda_graphs is True:
        return GraphedStreamStep(model)
    if not isinstance(cuda_graphs, GraphedStreamStep):
        raise ValueError(
            f"cuda_graphs must be True, False or a GraphedStreamStep (None: off), got {cuda_graphs!r}"
        )
    if cuda_graphs.model is not model:
        raise ValueError(
            "cuda_graphs is a GraphedStreamStep of another model; make one of this session's model "
            "(GraphedStreamStep(model)) or pass True"
        )
    return cuda_graphs
