"""The released stage-2 backend: diffusers' `SanaWMLTX2RefinerTransformer3DModel` (LTX-2) driven by our
own chunk-causal loop.

Per block of latent frames [s, s + n) (SPEC 4b/5, the release's "rf_shifted_sink" KV contract):
  1. the sink's RoPE is rebuilt at offset s - history - sink_size, so the sink sits right before the
     kept history (its K is stored pre-RoPE, captured once from the raw stage-1 sink frames at σ = 0);
  2. x = (1 - σ_s)·z + σ_s·ε with one ε per block, then Euler x += (σ_next - σ)·v over the schedule,
     the block's queries attending to [sink, history, block] K/V;
  3. one σ = 0 pass over the refined block records its post-RoPE K/V, appended to the history, which
     is trimmed to `kv_max_frames - sink_size` frames.
The network is the library's; this file only drives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import SanaWMLTX2RefinerTransformer3DModel
from diffusers.models.transformers.transformer_sana_wm_refiner import SanaWMRefinerKVCache
from diffusers.pipelines.sana_wm.refiner import _pack_latents, _unpack_latents

from .base import ChunkRefiner, RefinerCameras, RefinerPrompt, RefinerSchedule
from .ltx2_text import LTX2PromptEncoder


@dataclass
class LTX2RefinerState:
    """Everything the LTX-2 refiner carries from block to block; bounded in video length.

    kv_cache: per layer, the sink's pre-RoPE K/V and the post-RoPE K/V of at most `max_history_frames`
      refined frames, each (B, tokens, heads·head_dim).
    next_frame: absolute latent-frame index of the next block's first frame (drives RoPE positions).
    history_frames: how many refined frames the KV history holds now.
    """

    kv_cache: SanaWMRefinerKVCache
    prompt: RefinerPrompt
    fps: float
    batch_size: int
    height: int
    width: int
    next_frame: int
    history_frames: int = 0


class LTX2Refiner(ChunkRefiner[LTX2RefinerState]):
    """Stage 2 with the released LTX-2 refiner transformer.

    `refine(latents, prompt, fps=...)` refines a whole clip; `stream(prompt, fps=...)` returns a
    `RefinerStream` to feed chunk by chunk right behind stage 1. `prompt` is a `RefinerPrompt`
    (connector embeddings) or a string, which needs the prompt encoder
    (`from_folder(..., text_encoder=True)`). Camera inputs are accepted for the common interface and
    ignored: the LTX-2 refiner has no camera input.
    """

    def __init__(
        self,
        transformer: SanaWMLTX2RefinerTransformer3DModel,
        prompt_encoder: LTX2PromptEncoder | None = None,
        schedule: RefinerSchedule | None = None,
    ) -> None:
        self.transformer = transformer.eval()
        self.prompt_encoder = prompt_encoder
        self.schedule = schedule or RefinerSchedule()

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.bfloat16,
        text_encoder: bool = True,
        schedule: RefinerSchedule | None = None,
    ) -> LTX2Refiner:
        """Load from a local diffusers `SanaWMLTX2Refiner` folder (no network): transformer/ and, with
        `text_encoder=True`, connectors/, text_encoder/ and tokenizer/."""
        folder = Path(folder)
        if not (folder / "transformer").is_dir():
            raise FileNotFoundError(
                f"refiner folder {folder} has no transformer/ subfolder; point it at a diffusers "
                "SanaWMLTX2Refiner folder (transformer/, connectors/, text_encoder/, tokenizer/), e.g. one "
                "written by SanaWMLTX2Refiner.save_pretrained(folder)"
            )
        transformer = SanaWMLTX2RefinerTransformer3DModel.from_pretrained(
            folder / "transformer", torch_dtype=dtype, local_files_only=True
        ).to(device)
        prompt_encoder = (
            LTX2PromptEncoder.from_folder(folder, device=device, dtype=dtype) if text_encoder else None
        )
        return cls(transformer, prompt_encoder, schedule)

    # ------------------------------------------------------------------ public drivers

    def encode_prompt(self, prompt: str | Sequence[str]) -> RefinerPrompt:
        if self.prompt_encoder is None:
            raise ValueError(
                "this LTX2Refiner has no prompt encoder; load it with "
                "LTX2Refiner.from_folder(..., text_encoder=True) "
                "or pass a RefinerPrompt of connector embeddings instead of a string"
            )
        return self.prompt_encoder.encode(prompt)

    # ------------------------------------------------------------------ BlockRefiner

    @torch.no_grad()
    def begin(
        self,
        sink: torch.Tensor,
        prompt: RefinerPrompt,
        *,
        fps: float,
        cameras: RefinerCameras | None = None,
    ) -> LTX2RefinerState:
        """Record the sink frames' pre-RoPE K/V (one σ = 0 pass over the raw stage-1 sink, no prefix).
        `cameras` are ignored (no camera input)."""
        prompt = self._sink_prompt(sink, prompt)
        batch_size, _, _, height, width = sink.shape
        state = LTX2RefinerState(
            kv_cache=SanaWMRefinerKVCache(len(self.transformer.transformer_blocks)),
            prompt=prompt,
            fps=float(fps),
            batch_size=batch_size,
            height=height,
            width=width,
            next_frame=self.schedule.sink_size,
        )
        self._forward(state, self._to_model(sink), 0.0, list(range(sink.shape[2])), "capture_pre_rope")
        for layer in state.kv_cache.layer_caches:
            layer.store_sink(*layer.get_captured_pre_rope())
        return state

    @torch.no_grad()
    def refine_block(
        self,
        state: LTX2RefinerState,
        block: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        cameras: RefinerCameras | None = None,
    ) -> torch.Tensor:
        """Refine the next block (B, C, n, H, W), n <= block_size, of stage-1 latents; advance `state`."""
        clean, noise = self._block_inputs(state, block, generator)
        positions = self._start_block(state, clean.shape[2])
        dtype = clean.dtype
        sigmas = torch.tensor(self.schedule.sigmas, dtype=torch.float32)
        x = ((1.0 - sigmas[0]) * clean.float() + sigmas[0] * noise.float()).to(dtype)
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
            velocity = self._forward(state, x, float(sigma), positions, "inject")
            # Euler x += (σ_next - σ)·v, with v re-derived from x₀ = x - σ·v rounded to the model dtype,
            # exactly as the release does (it matters in bf16, not in fp32).
            x0 = (x.float() - sigma * velocity.float()).to(dtype)
            x = (x.float() + (sigma_next - sigma) * ((x.float() - x0.float()) / sigma)).to(dtype)

        self._record_block(state, x, positions)
        return x

    # ------------------------------------------------------------------ internals

    def _start_block(self, state: LTX2RefinerState, num: int) -> list[int]:
        """Place the sink's RoPE right before the kept history; return the next `num` frame positions."""
        sink_size = self.schedule.sink_size
        start = state.next_frame
        sink_offset = start - state.history_frames - sink_size
        state.kv_cache.sink_pe = self._rope(state, list(range(sink_offset, sink_offset + sink_size)))
        return list(range(start, start + num))

    def _record_block(self, state: LTX2RefinerState, x: torch.Tensor, positions: list[int]) -> None:
        """One σ = 0 pass over a finished block (B, C, n, H, W): append its post-RoPE K/V to the history,
        trimmed to `max_history_frames`, and advance the frame counters."""
        num = x.shape[2]
        self._forward(state, x, 0.0, positions, "inject_and_capture_post_rope")
        keep = self.schedule.max_history_frames * self._tokens_per_frame(state)
        trim = state.history_frames + num > self.schedule.max_history_frames
        for layer in state.kv_cache.layer_caches:
            new_k, new_v = layer.get_captured_post_rope()
            history = layer.get_history()
            if history is not None:
                new_k, new_v = torch.cat([history[0], new_k], dim=1), torch.cat([history[1], new_v], dim=1)
            if trim:
                new_k, new_v = new_k[:, -keep:], new_v[:, -keep:]
            layer.store_history(new_k, new_v)
        state.history_frames = min(state.history_frames + num, self.schedule.max_history_frames)
        state.next_frame += num

    def _forward(
        self, state: LTX2RefinerState, latents: torch.Tensor, sigma: float, positions: list[int], mode: str
    ) -> torch.Tensor:
        """One transformer pass over a block (B, C, n, H, W) at σ; returns the velocity (B, C, n, H, W)."""
        cfg = self.transformer.config
        tokens = _pack_latents(latents, patch_size=cfg.patch_size, patch_size_t=cfg.patch_size_t)
        timestep = torch.full(
            tokens.shape[:2],
            sigma * float(cfg.timestep_scale_multiplier),
            dtype=torch.float32,
            device=tokens.device,
        )
        velocity = self.transformer(
            hidden_states=tokens,
            encoder_hidden_states=state.prompt.embeds,
            timestep=timestep,
            video_rotary_emb=self._rope(state, positions),
            encoder_attention_mask=state.prompt.mask,
            kv_cache=state.kv_cache,
            kv_cache_mode=mode,
            return_dict=False,
        )[0]
        return _unpack_latents(
            velocity,
            num_frames=latents.shape[2],
            height=state.height,
            width=state.width,
            patch_size=cfg.patch_size,
            patch_size_t=cfg.patch_size_t,
        )

    def _rope(self, state: LTX2RefinerState, positions: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transformer.build_rotary_emb_for_absolute_positions(
            batch_size=state.batch_size,
            frame_positions=positions,
            height=state.height,
            width=state.width,
            device=self.transformer.device,
            fps=state.fps,
        )

    def _tokens_per_frame(self, state: LTX2RefinerState) -> int:
        cfg = self.transformer.config
        return (state.height // cfg.patch_size) * (state.width // cfg.patch_size) // cfg.patch_size_t

    def _placement(self) -> tuple[torch.device, torch.dtype]:
        return self.transformer.device, self.transformer.dtype

    def _check_latents(self, latents: torch.Tensor) -> None:
        cfg = self.transformer.config
        if latents.ndim != 5:
            raise ValueError(f"refiner latents must be (B, C, F, H, W); got shape {tuple(latents.shape)}")
        if latents.shape[1] != cfg.in_channels:
            raise ValueError(
                f"stage-1 latents have {latents.shape[1]} channels but the refiner transformer takes "
                f"{cfg.in_channels}; stage 2 works in the stage-1 VAE's latent space, so use the "
                "matching refiner"
            )
        if latents.shape[3] % cfg.patch_size or latents.shape[4] % cfg.patch_size:
            raise ValueError(
                f"latent grid {latents.shape[3]}x{latents.shape[4]} is not divisible by the refiner's "
                f"patch size {cfg.patch_size}"
            )
        if cfg.patch_size_t != 1:
            raise ValueError(
                f"the chunk-causal driver needs patch_size_t=1; this transformer has {cfg.patch_size_t}"
            )
