"""Our own stage-2 backend: a `SanaWMTransformer` (the stage-1 architecture, initialised from stage-1
weights and fine-tuned with truncated-σ flow matching, `sanawm.refine.train`) under the chunk-causal
refiner loop, carrying the network's own `StreamState` from block to block.

Per block (SPEC 5, the release's loop with our network):
  1. x = (1 - σ_s)·z + σ_s·ε, one ε per block, σ_s = sigmas[0];
  2. Euler x += (σ_next - σ)·v over `sigmas`, v = network(x, 1000 σ | state, the block's camera inputs);
  3. one σ = 0 pass over the refined block records it in the state (as the stage-1 sampler commits a
     chunk), which keeps the sink and the last `kv_window` blocks in its softmax KV window.
The sink (first latent frame, the conditioning image) is recorded with a σ = 0 pass and never changed.

A refiner folder (what `sanawm refine export` writes into a pipeline folder as `refiner/`):

    refiner/transformer/   config.json + diffusion_pytorch_model.safetensors (diffusers format)
    refiner/refiner.json   {"sigmas": [...], "block_size": 3, "sink_size": 1, "kv_window": 2}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model.state import StreamState
from ..model.transformer import SanaWMTransformer
from .base import RELEASE_SIGMAS, ChunkRefiner, RefinerCameras, RefinerPrompt, RefinerSchedule

REFINER_FILE = "refiner.json"


def small_schedule(
    sigmas=RELEASE_SIGMAS, block_size: int = 3, sink_size: int = 1, kv_window: int = 2
) -> RefinerSchedule:
    """The small refiner's schedule: the release's sigmas, blocks of 3 after one sink frame (the stage-1
    chunk layout 4, 3, 3, ...), a KV window of the sink and the last `kv_window` blocks."""
    return RefinerSchedule(tuple(sigmas), block_size, sink_size, sink_size + kv_window * block_size)


@dataclass
class SmallRefinerState:
    """What the small refiner carries between blocks: the network's stream state (bounded in video
    length), the batched prompt and the latent grid it was started with."""

    stream: StreamState
    prompt: RefinerPrompt
    batch_size: int
    height: int
    width: int


class SmallRefiner(ChunkRefiner[SmallRefinerState]):
    """Stage 2 with our network. `refine(latents, prompt, fps=..., cameras=...)` refines a whole clip,
    `stream(prompt, fps=...)` returns a `RefinerStream` fed chunk by chunk behind stage 1. `prompt` is a
    `RefinerPrompt` (text embeddings of the network's caption width) or a string, which needs
    `text_encoder` (the pipeline's)."""

    def __init__(
        self,
        transformer: SanaWMTransformer,
        text_encoder=None,
        schedule: RefinerSchedule | None = None,
        kv_window: int = 2,
    ) -> None:
        self.transformer = transformer.eval()
        self.text_encoder = text_encoder
        self.kv_window = int(kv_window)
        self.schedule = schedule or small_schedule(kv_window=self.kv_window)

    @property
    def latent_channels(self) -> int:
        return self.transformer.cfg.in_channels

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        text_encoder=None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> SmallRefiner:
        """Load a refiner folder (transformer/ + refiner.json, see the module docstring); no network."""
        from ..model import from_diffusers

        folder = Path(folder)
        if not (folder / "transformer" / "config.json").is_file() or not (folder / REFINER_FILE).is_file():
            raise FileNotFoundError(
                f"{folder} is not a small-refiner folder: expected transformer/config.json and "
                f"{REFINER_FILE}, as `sanawm refine export` writes into a pipeline folder's refiner/"
            )
        spec = json.loads((folder / REFINER_FILE).read_text())
        kv_window = int(spec.get("kv_window", 2))
        schedule = small_schedule(
            spec.get("sigmas", RELEASE_SIGMAS), spec.get("block_size", 3), spec.get("sink_size", 1), kv_window
        )
        transformer = from_diffusers(folder / "transformer", dtype=dtype, device=device)
        return cls(transformer, text_encoder, schedule, kv_window)

    # ------------------------------------------------------------------ public drivers

    def encode_prompt(self, prompt: str) -> RefinerPrompt:
        if self.text_encoder is None:
            raise ValueError(
                "this SmallRefiner has no text encoder; build it with SmallRefiner(..., text_encoder=pipe."
                "text_encoder) (from_pretrained does) or pass a RefinerPrompt of text embeddings"
            )
        text, mask = self.text_encoder.encode([prompt])
        return RefinerPrompt(text, mask)

    # ------------------------------------------------------------------ BlockRefiner

    @torch.no_grad()
    def begin(
        self,
        sink: torch.Tensor,
        prompt: RefinerPrompt,
        *,
        fps: float,
        cameras: RefinerCameras | None = None,
    ) -> SmallRefinerState:
        """Record the sink frames (B, C, sink_size, H, W) with one σ = 0 pass into a fresh stream state."""
        prompt = self._sink_prompt(sink, prompt)
        batch_size, _, _, height, width = sink.shape
        state = SmallRefinerState(
            self.transformer.init_stream_state(self.kv_window), prompt, batch_size, height, width
        )
        self._commit(state, self._to_model(sink), cameras)
        return state

    @torch.no_grad()
    def refine_block(
        self,
        state: SmallRefinerState,
        block: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        cameras: RefinerCameras | None = None,
    ) -> torch.Tensor:
        """Refine the next block (B, C, n, H, W), n <= block_size, of stage-1 latents; advance `state`."""
        clean, noise = self._block_inputs(state, block, generator)
        dtype = clean.dtype
        sigmas = [float(s) for s in self.schedule.sigmas]
        x = (1.0 - sigmas[0]) * clean.float() + sigmas[0] * noise.float()
        for sigma, sigma_next in zip(sigmas[:-1], sigmas[1:], strict=True):
            v = self._velocity(state, x.to(dtype), sigma, cameras)
            x = x + (sigma_next - sigma) * v.float()
        x = x.to(dtype)
        self._commit(state, x, cameras)
        return x

    # ------------------------------------------------------------------ internals

    def _call(self, state, x, sigma: float, cameras: RefinerCameras | None):
        timestep = torch.full((x.shape[0], x.shape[2]), sigma * 1000.0, device=x.device)
        camera, plucker = self._cameras(cameras, x)
        return self.transformer.stream_step(
            x, timestep, state.prompt.embeds, state.stream, state.prompt.mask, camera, plucker
        )

    def _velocity(self, state, x, sigma, cameras) -> torch.Tensor:
        return self._call(state, x, sigma, cameras)[0]

    def _commit(self, state: SmallRefinerState, x: torch.Tensor, cameras) -> None:
        _, state.stream = self._call(state, x, 0.0, cameras)

    def _cameras(self, cameras: RefinerCameras | None, x: torch.Tensor):
        if cameras is None:
            return None, None
        if cameras.num_frames != x.shape[2]:
            raise ValueError(
                f"the block has {x.shape[2]} latent frames but its cameras cover {cameras.num_frames}"
            )
        dtype = x.dtype
        return cameras.camera.to(x.device, dtype), cameras.plucker.to(x.device, dtype)

    def _placement(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.transformer.parameters())
        return p.device, p.dtype

    def _check_latents(self, latents: torch.Tensor) -> None:
        if latents.ndim != 5:
            raise ValueError(f"refiner latents must be (B, C, F, H, W); got shape {tuple(latents.shape)}")
        if latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"stage-1 latents have {latents.shape[1]} channels but the refiner network takes "
                f"{self.latent_channels}; use the refiner trained for this model's VAE"
            )


__all__ = ["REFINER_FILE", "SmallRefiner", "SmallRefinerState", "small_schedule"]
