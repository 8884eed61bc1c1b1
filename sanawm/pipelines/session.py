"""`WorldSession`: interactive streaming generation with an explicit, saveable world state.

    session = pipe.session(image, prompt, config=GenerationConfig(mode="streaming", ...))
    frames = session.step(actions="w-24")      # (F_new, H, W, 3) uint8, decoded as it goes
    state = session.save()                     # a frozen WorldState
    left, right = session.fork(), session.fork()
    left.step(actions="j-16"); right.step(actions="l-16")   # two futures from one state
    save_state(state, "world.pt"); session.restore(load_state("world.pt"))

Each `step` extends the raw-frame camera path (key actions rolled out from the current pose, or
absolute camera-to-world poses) and generates every chunk the path now covers: the first chunk is
`first_chunk` latent frames (1 + 8·(first_chunk − 1) raw frames, frame 0 being the image), each later
one `chunk` latent frames (8·chunk raw frames). Raw frames not yet covered by a whole chunk stay
pending until more input arrives.

Memory is constant in the video length: the session keeps one `StreamState` per guidance branch
(bounded for a finite `kv_window`), the last `decode_context` clean latent frames, the text
embeddings and the camera poses (16 numbers a raw frame, kept as the record of the path).

Noise. Chunk noise is drawn chunk by chunk from one explicit `torch.Generator` seeded `seed`, the
few-step re-noising from a second one seeded `seed + 1` and, with `config.context_sigma` > 0, the
context noise of each finished chunk from a third seeded `seed + 3` (as `WorldModelPipeline.sample_latents`).
`sample_chunked(..., streaming=True)` given the concatenation of those per-chunk draws as its noise
returns the session's latents; `generate(mode="streaming")` draws the whole clip's noise in one call,
which lays the random numbers out differently, so its latents differ from a session's (by noise, not by
the sampler).

Decoding. A VAE that `decodes_in_pieces` (`SmallVideoVAE`, causal) decodes each new chunk alone, carrying
its causal convolutions' last input frames from chunk to chunk (`decode_piece`): exact, and nothing is
decoded twice. That carried cache lives in the session, not in the `WorldState` (it would add megabytes to
every saved state): a session made from a state (`restore`, `load_state`; `fork` copies the live one)
rebuilds it once by decoding the state's `context`, the last `decode_context` latent frames, which gives
the same cache as decoding from the start once `decode_context` covers the decoder's temporal receptive
field — by default it is `vae.decode_overlap()`, which does (`SmallVideoVAE`: 10 latent frames for one
block a level). Other VAEs decode each new chunk with the previous `decode_context` latent frames as left
context and keep only its own raw frames (the decoder re-reads the first context latent as a causal first
frame, so at least one context frame is needed): exact for a causal decoder under the same condition,
approximate for a non-causal one (LTX-2's), whose last frames of a chunk would also depend on latents not
generated yet, which streaming cannot wait for. Frames never depend on how the input was split into
`step` calls: chunks are generated and decoded one at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..cameras import (
    ActionSpeeds,
    Trajectory,
    as_intrinsics_vec4,
    check_field_of_view,
    latent_camera_inputs,
    latent_grid_size,
)
from ..cameras.actions import get_speeds, parse_actions, yaw_pitch_roll_rotation
from ..cameras.poses import as_c2w
from ..model.ops.gdn import GDNState
from ..model.state import AttentionState, BlockState, KVWindow, StreamState
from ..sampling import ChunkSession, Conditions, EulerSchedule, FewStepSchedule, Guidance
from ..vae import to_uint8_frames

if TYPE_CHECKING:
    from .world_model import GenerationConfig

# Left context (latent frames) of states saved before they recorded theirs; new sessions take the VAE's
# `decode_overlap()` (exact for a causal decoder of known receptive field).
DEFAULT_DECODE_CONTEXT = 4


# ---- key actions from any pose ------------------------------------------------------------------


def rollout_actions(
    action: str,
    position=(0.0, 0.0, 0.0),
    yaw: float = 0.0,
    pitch: float = 0.0,
    speeds: ActionSpeeds | str | None = None,
) -> tuple[np.ndarray, float, float]:
    """Roll out an action string from a camera at `position` with orientation Ry(yaw) @ Rx(pitch)
    (radians). Returns the (N, 4, 4) float64 poses after each of the N frames (the start pose is not
    repeated) and the final (yaw, pitch).

    Same rules as `sanawm.cameras.actions_to_c2w` (rotate, then move along the ground-projected axes; a
    pitch step leaving ±pitch_limit is dropped whole); from the origin with yaw = pitch = 0 the poses
    equal `actions_to_c2w(action, speeds)[1:]` exactly, and rolling out "a,b" equals rolling out "a"
    then "b" from where it ended (angles and positions accumulate frame by frame).
    """
    speeds = get_speeds(speeds)
    step, limit = math.radians(speeds.rotation_deg), math.radians(speeds.pitch_limit_deg)
    pos = np.asarray(position, dtype=np.float64).reshape(3).copy()
    yaw, pitch = float(yaw), float(pitch)
    poses = []
    for seg in parse_actions(action):
        keys = set(seg.keys)

        def push(positive, negative, keys=keys):
            return float((positive in keys) - (negative in keys))

        turn, tilt, fwd, side = push("l", "j"), push("i", "k"), push("w", "s"), push("d", "a")
        for _ in range(seg.frames):
            yaw = yaw + turn * step
            if -limit <= pitch + tilt * step <= limit:
                pitch = pitch + tilt * step
            rot = yaw_pitch_roll_rotation(yaw, pitch)
            forward, right = _on_ground(rot[:, 2]), _on_ground(rot[:, 0])
            pos = pos + speeds.translation * (fwd * forward + side * right)
            pose = np.eye(4)
            pose[:3, :3], pose[:3, 3] = rot, pos
            poses.append(pose)
    return np.stack(poses), yaw, pitch


def _on_ground(v: np.ndarray) -> np.ndarray:
    flat = v * np.array([1.0, 0.0, 1.0])
    norm = np.linalg.norm(flat)
    return flat / norm if norm > 0 else np.zeros(3)


def yaw_pitch_of(c2w: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in radians of a pose's rotation read as Ry(yaw) @ Rx(pitch) @ Rz(roll) (roll dropped)."""
    r = c2w[:3, :3]
    return math.atan2(r[0, 2], r[2, 2]), -math.asin(float(np.clip(r[1, 2], -1.0, 1.0)))


# ---- the world state ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldState:
    """Everything a `WorldSession` needs to go on generating; immutable (arrays are read-only copies).

    stream_states: one `StreamState` per guidance branch (unconditional first when guidance is on).
    context: (1, C, n, h, w) the last n <= decode_context clean latent frames (left context for decoding).
    first_latent: (1, C, 1, h, w) the encoded image (latent frame 0).
    text, text_mask, negative_text, negative_mask: the prompt and negative prompt embeddings.
    noise_rng, renoise_rng: `torch.Generator.get_state()` of the chunk-noise and re-noising generators;
    context_rng: that of the context-noise one (None in states saved before it existed: seeded afresh).
    c2w: (P, 4, 4) float64 poses of the raw frames generated so far plus the pending ones.
    intrinsics: (4,) (fx, fy, cx, cy) in output pixels; image_size: (H, W) of the output.
    yaw, pitch: radians, where the next key action starts turning from.
    latent_frames_done: latent frames generated (raw frames done = 1 + 8·(latent_frames_done − 1)).
    """

    config: GenerationConfig
    speeds: ActionSpeeds
    stream_states: tuple[StreamState, ...]
    context: torch.Tensor | None
    first_latent: torch.Tensor
    text: torch.Tensor
    text_mask: torch.Tensor | None
    negative_text: torch.Tensor | None
    negative_mask: torch.Tensor | None
    noise_rng: torch.Tensor
    renoise_rng: torch.Tensor
    c2w: np.ndarray
    intrinsics: np.ndarray
    image_size: tuple[int, int]
    yaw: float
    pitch: float
    latent_frames_done: int
    decode_context: int = DEFAULT_DECODE_CONTEXT
    context_rng: torch.Tensor | None = None

    @property
    def frames_done(self) -> int:
        """Raw frames generated (and returned) so far."""
        return 0 if self.latent_frames_done == 0 else 1 + 8 * (self.latent_frames_done - 1)

    @property
    def pending_frames(self) -> int:
        """Raw frames on the camera path not generated yet (waiting for a whole chunk)."""
        return len(self.c2w) - self.frames_done


_STATE_TYPES = {
    cls.__name__: cls for cls in (StreamState, BlockState, AttentionState, KVWindow, GDNState, ActionSpeeds)
}


def _to_plain(obj):
    """Dataclasses -> tagged dicts, numpy -> tensors; what `torch.load(weights_only=True)` reads back."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return {
            "__type__": type(obj).__name__,
            **{f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)},
        }
    if isinstance(obj, np.ndarray):
        return {"__type__": "ndarray", "data": torch.from_numpy(obj.copy())}
    if isinstance(obj, tuple):
        return tuple(_to_plain(o) for o in obj)
    if isinstance(obj, list):
        return [_to_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _from_plain(obj):
    if isinstance(obj, dict) and "__type__" in obj:
        name = obj["__type__"]
        values = {k: _from_plain(v) for k, v in obj.items() if k != "__type__"}
        if name == "ndarray":
            return _readonly(values["data"].numpy())
        if name == "GenerationConfig":
            from .world_model import GenerationConfig

            return GenerationConfig(**values)
        if name == "WorldState":
            values["image_size"] = tuple(values["image_size"])
            return WorldState(**values)
        if name not in _STATE_TYPES:
            raise ValueError(f"unknown type {name!r} in a saved world state")
        return _STATE_TYPES[name](**values)
    if isinstance(obj, tuple):
        return tuple(_from_plain(o) for o in obj)
    if isinstance(obj, list):
        return [_from_plain(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _from_plain(v) for k, v in obj.items()}
    return obj


def save_state(state: WorldState, path) -> None:
    """Write a `WorldState` to `path` (torch.save of plain dicts of tensors and numbers)."""
    torch.save({"format": "sanawm.WorldState", "version": 1, "state": _to_plain(state)}, Path(path))


def load_state(path, map_location=None) -> WorldState:
    """Read a `WorldState` written by `save_state` (loaded with weights_only=True: no code runs)."""
    data = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != "sanawm.WorldState":
        raise ValueError(f"{path} is not a saved sanawm world state (write one with save_state)")
    return _from_plain(data["state"])


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


# ---- the session --------------------------------------------------------------------------------


class WorldSession:
    """Streaming generation from one image, stepped by actions or poses. Make one with
    `WorldModelPipeline.session(...)`; see the module docstring."""

    def __init__(self, pipe, state: WorldState) -> None:
        self.pipe = pipe
        self.restore(state)

    # ---- state ------------------------------------------------------------------------------------

    def save(self) -> WorldState:
        """The current world state (frozen; later steps do not change it)."""
        return replace(
            self._state,
            noise_rng=self._noise_gen.get_state(),
            renoise_rng=self._renoise_gen.get_state(),
            context_rng=self._context_gen.get_state(),
        )

    def restore(self, state: WorldState) -> None:
        """Continue from `state` (from `save()`, `load_state` or another session of the same pipeline)."""
        blocks = len(self.pipe.transformer.blocks)
        if any(len(s.blocks) != blocks for s in state.stream_states):
            raise ValueError(
                f"the state was made by a network with another depth (this one has {blocks} blocks)"
            )
        guidance = self._guidance(state.config)
        if len(state.stream_states) != (2 if guidance.enabled else 1):
            raise ValueError("the state's guidance branches do not match its config")
        device = self.pipe.device
        self._noise_gen = torch.Generator(device=device)
        self._noise_gen.set_state(state.noise_rng.cpu())
        self._renoise_gen = torch.Generator(device=device)
        self._renoise_gen.set_state(state.renoise_rng.cpu())
        self._context_gen = torch.Generator(device=device)
        if state.context_rng is None:
            self._context_gen.manual_seed(state.config.seed + 3)
        else:
            self._context_gen.set_state(state.context_rng.cpu())
        self._state = state
        self._decode_cache = None  # rebuilt from state.context at the next chunk (see the module docstring)

    def fork(self) -> WorldSession:
        """An independent session continuing from this one's current state."""
        other = WorldSession(self.pipe, self.save())
        if self._decode_cache is not None:  # its tensors are replaced, never written to: share them
            other._decode_cache = dict(self._decode_cache)
        return other

    @property
    def config(self):
        return self._state.config

    @property
    def frames_done(self) -> int:
        return self._state.frames_done

    @property
    def pending_frames(self) -> int:
        return self._state.pending_frames

    @property
    def trajectory(self) -> Trajectory:
        """The raw-frame camera path so far (generated + pending), intrinsics in output pixels."""
        s = self._state
        return Trajectory(s.c2w, s.intrinsics, s.image_size, s.config.fps)

    # ---- stepping ---------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, actions: str | None = None, poses=None) -> np.ndarray:
        """Extend the camera path and return the newly generated frames (F_new, H, W, 3) uint8.

        actions: a key-action string ("w-16,l-8"), rolled out from the current pose with the session's
            speeds. poses: (n, 4, 4) / (n, 3, 4) absolute camera-to-world poses (or a `Trajectory`)
            continuing the path, in the frame where raw frame 0 (the image) has pose c2w[0].
        """
        if (actions is None) == (poses is None):
            raise ValueError("give exactly one of actions= (a key-action string) or poses= (camera-to-world)")
        s = self._state
        if actions is not None:
            new, yaw, pitch = rollout_actions(actions, s.c2w[-1, :3, 3], s.yaw, s.pitch, s.speeds)
        else:
            if isinstance(poses, Trajectory):
                poses = poses.c2w
            new = as_c2w(poses)
            yaw, pitch = yaw_pitch_of(new[-1])
        self._state = replace(s, c2w=_readonly(np.concatenate([s.c2w, new])), yaw=yaw, pitch=pitch)
        out = []
        while (frames := self._next_chunk()) is not None:
            out.append(frames)
        if not out:
            h, w = s.image_size
            return np.zeros((0, h, w, 3), np.uint8)
        return np.concatenate(out)

    def _chunk_size(self) -> int:
        s = self._state
        return s.config.first_chunk if s.latent_frames_done == 0 else s.config.chunk

    def _next_chunk(self) -> np.ndarray | None:
        s, cfg, pipe = self._state, self._state.config, self.pipe
        a = s.latent_frames_done
        size = self._chunk_size()
        e = a + size
        if len(s.c2w) < 8 * (e - 1) + 1:
            return None
        model = pipe.transformer
        device, dtype = pipe.device, next(model.parameters()).dtype
        # camera inputs of latent frames [a, e): raw frame 0 plus raw frames 8a-7 .. 8(e-1)
        sub = (
            s.c2w[: 8 * (e - 1) + 1]
            if a == 0
            else np.concatenate([s.c2w[:1], s.c2w[8 * a - 7 : 8 * (e - 1) + 1]])
        )
        cam = latent_camera_inputs(sub, s.intrinsics, s.image_size).to(device, dtype)
        camera, plucker = cam.batched()
        if a > 0:
            camera, plucker = camera[:, 1:], plucker[:, :, 1:]
        cond = Conditions(s.text, s.text_mask, camera, plucker)
        guidance = self._guidance(cfg)
        branches = (
            [guidance.unconditional(cond, s.negative_text, s.negative_mask), cond]
            if guidance.enabled
            else [cond]
        )

        shape = (1, s.first_latent.shape[1], size, *s.first_latent.shape[-2:])
        x = torch.randn(shape, generator=self._noise_gen, device=device, dtype=dtype)
        if a == 0:
            x[:, :, :1] = s.first_latent.to(x.dtype)

        def renoise(step):
            return torch.randn(shape, generator=self._renoise_gen, device=device, dtype=dtype)

        chunk = ChunkSession(
            model, branches, guidance, cfg.kv_window, True, cfg.context_sigma, pipe.stream_graphs
        )
        chunk.states = list(s.stream_states)
        x = chunk.denoise(x, _schedule(cfg, pipe.scheduler_config), a == 0, renoise)
        context_noise = None
        if cfg.context_sigma > 0:
            context_noise = torch.randn(shape, generator=self._context_gen, device=device, dtype=dtype)
        chunk.commit(x, context_noise, clean_first=a == 0)

        frames, context = self._decode(x, s.context, a == 0, s.decode_context)
        self._state = replace(s, stream_states=chunk.state(), context=context, latent_frames_done=e)
        return frames

    def _decode(self, x, context, first: bool, keep: int):
        vae = self.pipe.vae
        latents = x if first else torch.cat([context, x], 2)
        if vae.decodes_in_pieces:
            # a copy: a failed chunk leaves the session's cache as it was (entries are replaced, not written)
            cache = {} if first or self._decode_cache is None else dict(self._decode_cache)
            if not first and self._decode_cache is None:
                vae.decode_next_piece(context, cache)
            video = vae.decode_next_piece(x, cache)
            self._decode_cache = cache
        else:
            video = vae.decode(latents.to(vae.dtype))
            if not first:
                video = video[:, :, -8 * x.shape[2] :]
        return to_uint8_frames(video), latents[:, :, -keep:]

    @staticmethod
    def _guidance(cfg) -> Guidance:
        return Guidance(cfg.guidance, drop_text=True, drop_camera=cfg.guidance_drops_camera)


def _schedule(cfg, scheduler_config):
    if cfg.timesteps is not None:
        return FewStepSchedule(tuple(cfg.timesteps))
    return EulerSchedule(cfg.steps, cfg.shift, scheduler_config)


def initial_state(
    pipe, pixels, intrinsics, prompt: str, cfg, speeds=None, decode_context: int | None = None
) -> WorldState:
    """The state before any frame: image encoded, prompts embedded, generators seeded, pose 0 = identity.
    `decode_context` None: the VAE's `decode_overlap()` (exact decoding for a causal decoder)."""
    if decode_context is None:
        decode_context = pipe.vae.decode_overlap()
    if decode_context < 1:
        raise ValueError(
            f"decode_context must be >= 1 latent frame (got {decode_context}): the decoder reads the first "
            "context latent as a causal first frame"
        )
    check_field_of_view(as_intrinsics_vec4(intrinsics, 1), cfg.height, cfg.width)
    latent_grid_size((cfg.height, cfg.width))
    device, dtype = pipe.device, next(pipe.transformer.parameters()).dtype
    first = pipe.vae.encode(pixels[:, :, None].to(device, pipe.vae.dtype)).to(dtype)
    text, mask = pipe.text_encoder.encode([prompt])
    neg, neg_mask = pipe.text_encoder.encode_negative([cfg.negative_prompt])
    guidance = WorldSession._guidance(cfg)
    states = tuple(
        pipe.transformer.init_stream_state(cfg.kv_window) for _ in range(2 if guidance.enabled else 1)
    )
    noise = torch.Generator(device=device).manual_seed(cfg.seed)
    renoise = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    context = torch.Generator(device=device).manual_seed(cfg.seed + 3)
    return WorldState(
        config=cfg,
        speeds=get_speeds(speeds),
        stream_states=states,
        context=None,
        first_latent=first,
        text=text.to(device, dtype),
        text_mask=None if mask is None else mask.to(device),
        negative_text=None if neg is None else neg.to(device, dtype),
        negative_mask=None if neg_mask is None else neg_mask.to(device),
        noise_rng=noise.get_state(),
        renoise_rng=renoise.get_state(),
        context_rng=context.get_state(),
        c2w=_readonly(np.eye(4)[None]),
        intrinsics=_readonly(np.asarray(intrinsics, dtype=np.float64).reshape(4)),
        image_size=(cfg.height, cfg.width),
        yaw=0.0,
        pitch=0.0,
        latent_frames_done=0,
        decode_context=decode_context,
    )


__all__ = ["WorldSession", "WorldState", "load_state", "rollout_actions", "save_state", "yaw_pitch_of"]
