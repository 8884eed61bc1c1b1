"""The refiner interface: what every stage-2 backend offers, and the schedule they share.

Stage 2 (SPEC section 5) takes stage-1 latents (B, C, F, H, W), keeps the first `sink_size` latent
frames as an unrefined attention sink and refines the rest chunk-causally in `block_size`-frame blocks:
each block is re-noised to σ_s = sigmas[0] (x = (1 - σ_s)·z + σ_s·ε, one ε per block) and denoised by
Euler steps over `sigmas`, attending to the sink plus up to `kv_max_frames - sink_size` already refined
frames. A backend is a `BlockRefiner` (begin with the sink, then refine one block at a time); whole
clips and streams are both driven from that, so they give the same latents. `ChunkRefiner` is what the
backends share around those two steps (the drivers, prompts, the checks and noise of each step).

Camera-conditioned backends (our `SmallRefiner`) also take each block's camera inputs, a
`RefinerCameras` sliced to the block's frames; backends without camera input (LTX-2) ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import torch

RELEASE_SIGMAS: tuple[float, ...] = (0.909375, 0.725, 0.421875, 0.0)


@dataclass(frozen=True)
class RefinerSchedule:
    """How stage 2 walks a clip. Defaults are the release's (3 Euler steps, 3-frame blocks, one sink
    frame, a KV window of 11 frames = sink + 10 refined history frames)."""

    sigmas: tuple[float, ...] = RELEASE_SIGMAS
    block_size: int = 3
    sink_size: int = 1
    kv_max_frames: int = 11

    def __post_init__(self) -> None:
        s = tuple(float(x) for x in self.sigmas)
        if len(s) < 2 or s[-1] != 0.0 or any(a <= b for a, b in zip(s, s[1:], strict=False)):
            raise ValueError(
                f"refiner sigmas must strictly decrease and end at 0.0, e.g. {RELEASE_SIGMAS}; "
                f"got {self.sigmas}"
            )
        if not 0.0 < s[0] <= 1.0:
            raise ValueError(
                f"the first refiner sigma (the re-noising level σ_s) must lie in (0, 1]; got {s[0]}"
            )
        if self.block_size < 1:
            raise ValueError(f"block_size must be at least 1 latent frame; got {self.block_size}")
        if self.sink_size < 1:
            raise ValueError(
                f"sink_size must be at least 1 latent frame (the release uses 1); got {self.sink_size}"
            )
        if self.kv_max_frames <= self.sink_size:
            raise ValueError(
                f"kv_max_frames ({self.kv_max_frames}) must exceed sink_size ({self.sink_size}) to leave "
                "room for refined history; the release uses kv_max_frames=11 with sink_size=1"
            )

    @property
    def max_history_frames(self) -> int:
        return self.kv_max_frames - self.sink_size


@dataclass(frozen=True)
class RefinerPrompt:
    """Text conditioning as the backend's network takes it: embeddings (B, L, D), 0/1 mask (B, L)."""

    embeds: torch.Tensor
    mask: torch.Tensor | None = None

    def batched(self, batch_size: int, device, dtype: torch.dtype) -> RefinerPrompt:
        """The prompt on the network's device and dtype for `batch_size` clips (one prompt is shared)."""
        embeds, mask = self.embeds.to(device=device, dtype=dtype), self.mask
        if mask is not None:
            mask = mask.to(device)
        if embeds.shape[0] == 1 and batch_size > 1:
            embeds = embeds.expand(batch_size, -1, -1)
            mask = mask.expand(batch_size, -1) if mask is not None else None
        if embeds.shape[0] != batch_size:
            raise ValueError(
                f"prompt embeddings have batch {embeds.shape[0]} but the latents have batch {batch_size}; "
                "encode one prompt per clip, or one prompt for all"
            )
        return RefinerPrompt(embeds=embeds, mask=mask)


@dataclass(frozen=True)
class RefinerCameras:
    """Camera inputs of some latent frames, as the stage-1 network takes them: camera (B, F, 20) (UCPE
    poses relative to frame 0, `sanawm.cameras.latent_camera_inputs`) and plucker (B, 48, F, H, W)."""

    camera: torch.Tensor
    plucker: torch.Tensor

    def __post_init__(self) -> None:
        if self.camera.ndim != 3 or self.plucker.ndim != 5 or self.camera.shape[1] != self.plucker.shape[2]:
            raise ValueError(
                f"refiner cameras must be camera (B, F, 20) and plucker (B, 48, F, H, W) over the same F "
                f"frames; got {tuple(self.camera.shape)} and {tuple(self.plucker.shape)}"
            )

    @property
    def num_frames(self) -> int:
        return self.camera.shape[1]

    def frames(self, start: int, stop: int) -> RefinerCameras:
        return RefinerCameras(self.camera[:, start:stop], self.plucker[:, :, start:stop])

    @staticmethod
    def cat(parts: list[RefinerCameras]) -> RefinerCameras:
        return RefinerCameras(
            torch.cat([p.camera for p in parts], 1), torch.cat([p.plucker for p in parts], 2)
        )


def _camera_frames(cameras: RefinerCameras | None, start: int, stop: int) -> RefinerCameras | None:
    return None if cameras is None else cameras.frames(start, stop)


def check_sink(schedule: RefinerSchedule, sink: torch.Tensor) -> None:
    """The sink (B, C, n, H, W) must hold exactly the schedule's `sink_size` latent frames."""
    if sink.shape[2] != schedule.sink_size:
        raise ValueError(f"the sink must be {schedule.sink_size} latent frame(s); got {sink.shape[2]}")


def check_block(schedule: RefinerSchedule, state, block: torch.Tensor) -> int:
    """The number of latent frames in `block` (B, C, n, H, W), checked against the schedule's block size
    and the stream's batch size and latent grid (`state.batch_size`, `.height`, `.width`)."""
    num = block.shape[2]
    if not 1 <= num <= schedule.block_size:
        raise ValueError(f"a refiner block holds 1..{schedule.block_size} latent frames; got {num}")
    if (block.shape[0], block.shape[3], block.shape[4]) != (state.batch_size, state.height, state.width):
        raise ValueError(
            f"block of shape {tuple(block.shape)} does not match the stream's batch {state.batch_size} "
            f"and latent grid {state.height}x{state.width}"
        )
    return num


StateT = TypeVar("StateT")


class BlockRefiner(Protocol[StateT]):
    """A stage-2 backend, reduced to the two steps every driver needs.

    `begin` reads the sink frames (B, C, sink_size, H, W) and returns the backend's explicit state (its KV
    cache and frame counters); `refine_block` refines the next block of stage-1 frames (B, C, n, H, W),
    n <= block_size, in place of the state, and returns the refined block with the same shape.
    `cameras` are the camera inputs of exactly those frames (None: the backend's camera-free branch).
    """

    schedule: RefinerSchedule

    def begin(
        self,
        sink: torch.Tensor,
        prompt: RefinerPrompt,
        *,
        fps: float,
        cameras: RefinerCameras | None = None,
    ) -> StateT: ...

    def refine_block(
        self,
        state: StateT,
        block: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        cameras: RefinerCameras | None = None,
    ) -> torch.Tensor: ...


def refine_clip(
    refiner: BlockRefiner[StateT],
    latents: torch.Tensor,
    prompt: RefinerPrompt,
    *,
    fps: float,
    generator: torch.Generator | None = None,
    cameras: RefinerCameras | None = None,
) -> torch.Tensor:
    """Whole-clip chunk-causal refinement of stage-1 latents (B, C, F, H, W) -> refined latents, same shape.

    The first `sink_size` frames come back unchanged; noise is drawn from `generator` block by block.
    `cameras`: camera inputs of all F frames, handed to the backend block by block.
    """
    sink_size, block_size = refiner.schedule.sink_size, refiner.schedule.block_size
    if latents.ndim != 5:
        raise ValueError(f"stage-1 latents must be (B, C, F, H, W); got shape {tuple(latents.shape)}")
    num_frames = latents.shape[2]
    if num_frames <= sink_size:
        raise ValueError(
            f"stage-1 latents have {num_frames} latent frames but the refiner keeps {sink_size} as its sink; "
            "give it at least one more frame to refine"
        )
    if cameras is not None and cameras.num_frames != num_frames:
        raise ValueError(
            f"the cameras cover {cameras.num_frames} latent frames but the stage-1 latents have {num_frames}"
        )
    state = refiner.begin(
        latents[:, :, :sink_size], prompt, fps=fps, cameras=_camera_frames(cameras, 0, sink_size)
    )
    out = [latents[:, :, :sink_size]]
    for start in range(sink_size, num_frames, block_size):
        stop = start + block_size
        out.append(
            refiner.refine_block(
                state,
                latents[:, :, start:stop],
                generator=generator,
                cameras=_camera_frames(cameras, start, stop),
            )
        )
    return torch.cat([o.to(out[-1]) for o in out], dim=2)


class RefinerStream(Generic[StateT]):
    """Streaming stage 2: push stage-1 latent frames as they come (any number at a time), get back the
    refined frames that are final. Holds at most `block_size - 1` pending frames plus the backend's
    bounded KV state, so memory stays constant in video length. `finish()` refines a last partial block.

    Pushing a clip in pieces gives the same frames, in the same order, as `refine_clip` on the whole
    clip with an identically seeded generator.
    """

    def __init__(
        self,
        refiner: BlockRefiner[StateT],
        prompt: RefinerPrompt,
        *,
        fps: float,
        generator: torch.Generator | None = None,
    ) -> None:
        self.refiner = refiner
        self.prompt = prompt
        self.fps = float(fps)
        self.generator = generator
        self.state: StateT | None = None
        self.pending: torch.Tensor | None = None
        self.pending_cameras: RefinerCameras | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.finished = False

    def push(self, frames: torch.Tensor, cameras: RefinerCameras | None = None) -> torch.Tensor:
        """Add stage-1 latent frames (B, C, n, H, W) (and their camera inputs, for camera-conditioned
        backends: give them with every push or never); return the newly final refined ones (B, C, m, H, W)."""
        if self.finished:
            raise RuntimeError("this refiner stream is finished; start a new one with refiner.stream(...)")
        if frames.ndim != 5:
            raise ValueError(
                f"pushed stage-1 latents must be (B, C, n, H, W); got shape {tuple(frames.shape)}"
            )
        if cameras is not None and cameras.num_frames != frames.shape[2]:
            raise ValueError(
                f"pushed {frames.shape[2]} latent frames with cameras for {cameras.num_frames}; give the "
                "camera inputs of exactly the pushed frames"
            )
        if self.frames_in > 0 and (cameras is None) != (self.pending_cameras is None):
            raise ValueError("give cameras with every push of a stream or with none")
        self.frames_in += frames.shape[2]
        self.pending = frames if self.pending is None else torch.cat([self.pending, frames], dim=2)
        if cameras is not None:
            have = self.pending_cameras
            self.pending_cameras = cameras if have is None else RefinerCameras.cat([have, cameras])
        sched = self.refiner.schedule
        out: list[torch.Tensor] = []
        if self.state is None:
            if self.pending.shape[2] < sched.sink_size:
                return self.pending[:, :, :0]
            sink = self.pending[:, :, : sched.sink_size]
            self.state = self.refiner.begin(
                sink, self.prompt, fps=self.fps, cameras=self._take_cameras(sched.sink_size)
            )
            out.append(sink)
            self.pending = self.pending[:, :, sched.sink_size :]
        while self.pending.shape[2] >= sched.block_size:
            block = self.pending[:, :, : sched.block_size]
            self.pending = self.pending[:, :, sched.block_size :]
            cams = self._take_cameras(sched.block_size)
            out.append(self.refiner.refine_block(self.state, block, generator=self.generator, cameras=cams))
        return self._emit(out, like=frames)

    def _take_cameras(self, n: int) -> RefinerCameras | None:
        """The camera inputs of the next `n` pending frames, removed from the queue (which stays
        non-None, possibly empty, so later pushes keep the with-cameras contract)."""
        cams = self.pending_cameras
        if cams is None:
            return None
        self.pending_cameras = cams.frames(n, cams.num_frames)
        return cams.frames(0, n)

    def finish(self) -> torch.Tensor:
        """Refine whatever is still pending (a block shorter than `block_size`) and close the stream."""
        if self.finished:
            raise RuntimeError("this refiner stream is already finished")
        self.finished = True
        if self.state is None:
            raise ValueError(
                f"the stream received {self.frames_in} latent frames, fewer than the refiner's "
                f"{self.refiner.schedule.sink_size} sink frame(s) plus one frame to refine"
            )
        if self.frames_in <= self.refiner.schedule.sink_size:
            raise ValueError(
                f"the stream received {self.frames_in} latent frames but the refiner keeps "
                f"{self.refiner.schedule.sink_size} as its sink; give it at least one more frame to refine"
            )
        like, self.pending = self.pending, None
        out: list[torch.Tensor] = []
        if like.shape[2] > 0:
            cams = self._take_cameras(like.shape[2])
            out.append(self.refiner.refine_block(self.state, like, generator=self.generator, cameras=cams))
        return self._emit(out, like=like)

    def _emit(self, out: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
        if not out:
            return like[:, :, :0]
        result = torch.cat([o.to(out[-1]) for o in out], dim=2)
        self.frames_out += result.shape[2]
        return result


class ChunkRefiner(Generic[StateT]):
    """What every stage-2 backend shares around its two `BlockRefiner` steps: the whole-clip and streaming
    drivers, string prompts, and the checks and inputs that open `begin` and `refine_block`.

    A backend sets `schedule` and supplies `begin` and `refine_block`, `encode_prompt` (a string -> a
    `RefinerPrompt`), `_check_latents` (its channels and latent grid) and `_placement` (its network's
    device and dtype).
    """

    schedule: RefinerSchedule

    def encode_prompt(self, prompt: str) -> RefinerPrompt:
        raise NotImplementedError

    def _check_latents(self, latents: torch.Tensor) -> None:
        raise NotImplementedError

    def _placement(self) -> tuple[torch.device, torch.dtype]:
        raise NotImplementedError

    @torch.no_grad()
    def refine(
        self,
        latents: torch.Tensor,
        prompt: RefinerPrompt | str,
        *,
        fps: float,
        generator: torch.Generator | None = None,
        cameras: RefinerCameras | None = None,
    ) -> torch.Tensor:
        """Stage-1 latents (B, C, F, H, W) -> refined latents (B, C, F, H, W) in the network's dtype.
        `cameras`: the camera inputs of all F frames (a backend without camera input ignores them)."""
        return refine_clip(self, latents, self._prompt(prompt), fps=fps, generator=generator, cameras=cameras)

    def stream(
        self, prompt: RefinerPrompt | str, *, fps: float, generator: torch.Generator | None = None
    ) -> RefinerStream[StateT]:
        return RefinerStream(self, self._prompt(prompt), fps=fps, generator=generator)

    def _prompt(self, prompt: RefinerPrompt | str) -> RefinerPrompt:
        return prompt if isinstance(prompt, RefinerPrompt) else self.encode_prompt(prompt)

    def _to_model(self, latents: torch.Tensor) -> torch.Tensor:
        device, dtype = self._placement()
        return latents.to(device=device, dtype=dtype)

    def _sink_prompt(self, sink: torch.Tensor, prompt: RefinerPrompt) -> RefinerPrompt:
        """Check the sink frames (B, C, sink_size, H, W); return `prompt` batched for them, on the
        network's device and dtype."""
        self._check_latents(sink)
        check_sink(self.schedule, sink)
        device, dtype = self._placement()
        return prompt.batched(sink.shape[0], device, dtype)

    def _block_inputs(
        self, state: StateT, block: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Check the next block (B, C, n, H, W) against the stream; return it on the network's device and
        dtype, and its noise ε of the same shape (one draw per block, on the generator's device)."""
        self._check_latents(block)
        check_block(self.schedule, state, block)
        clean = self._to_model(block)
        noise_device = generator.device if generator is not None else clean.device
        noise = torch.randn(clean.shape, generator=generator, device=noise_device, dtype=clean.dtype)
        return clean, noise.to(clean.device)
