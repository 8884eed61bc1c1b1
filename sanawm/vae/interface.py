"""The video VAE interface: normalised latents, 8k+1 frame bookkeeping and temporal tiling.

Every VAE the project uses (the LTX-2 VAE through diffusers, our small trainable one) is a `VideoVAE`:

    video   (B, 3, F, H, W) in [-1, 1], F = 8k + 1, H and W multiples of 32
    latents (B, C, k + 1, H / 32, W / 32), normalised: (z - mean) * scaling_factor / std

which is what the DiT sees (the SANA-WM pipeline's `_encode_first_frame` / `_decode_latents` formulas).
Latent frame 0 is raw frame 0 alone (causal first frame); latent frame j >= 1 covers raw frames 8j-7..8j.

Temporal tiling. `encode`/`decode` can split a long clip along time into tiles of `tile_latent_frames`
latent frames, consecutive tiles sharing `overlap` latent frames. A tile over latent frames [s, e) sees
raw frames 8s..8(e-1) (8(e-s-1)+1 frames, so the causal first-frame convention lines up with the full
clip). Each output frame is then taken from the tile in which it sits farthest from a tile edge that
can affect it: only the left edge for a causal network, both edges otherwise (ties go to the earlier
tile). So:

- It is exact (up to float summation order) once `overlap` covers the network's temporal receptive
  field R (in latent frames): `overlap` >= R for a causal network (every kept frame then sees its true
  history), `overlap` >= 2R + 1 for a non-causal one (R on both sides of the cut).
- Otherwise it is approximate. The VAEs here are pure convolution stacks (per-location norms, no
  attention), so a frame's influence decays with distance and the error falls with `overlap`; how fast
  depends on the weights. The theoretical fields are long: the LTX-2 architecture's causal encoder
  reaches 225 raw frames (just over 28 latent frames) into the past and its non-causal decoder 22
  latent frames each way (gradient probes of that layout with random weights), so exact tiling of
  LTX-2 is not practical. The default `overlap` of 4 costs ~1.3x compute at 16-frame tiles; its seam
  error on the released weights has not been measured here.
- No linear cross-fade: a cross-fade always mixes in a tile's edge frames (computed from padded, wrong
  context) with a weight ~1/overlap, so its error shrinks only like 1/overlap and never reaches zero.
  Taking each frame from its best-placed tile gives an error that falls as fast as the network's
  influence decays and vanishes once the overlap covers the receptive field.
- `overlap` >= 1 is required: a tile starting at latent frame s re-encodes raw frame 8s as its own
  "first frame", so its latent s (encode) and raw frames 8s-7..8s-1 (decode) must come from the tile
  before it.

Random posterior samples (`encode(..., generator=g)`) draw the noise once for the whole clip after
tiling, so tiled and untiled sampling use the same noise.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

DEFAULT_TILE_OVERLAP = 4  # latent frames shared by consecutive tiles


def plan_tiles(num_latent_frames: int, tile_latent_frames: int, overlap: int) -> list[tuple[int, int]]:
    """Latent-frame spans [start, stop) of the temporal tiles covering `num_latent_frames`.

    Consecutive tiles share at least `overlap` latent frames; the last tile is shifted left to keep its
    full length (so it may share more).
    """
    if overlap < 1:
        raise ValueError(
            f"overlap must be >= 1 latent frame (got {overlap}): a tile that starts at latent frame s "
            "treats raw frame 8s as its first frame and cannot produce the frames just before it"
        )
    if tile_latent_frames <= overlap:
        raise ValueError(
            f"tile_latent_frames ({tile_latent_frames}) must be larger than overlap ({overlap}); "
            f"e.g. tile_latent_frames={overlap + 8}"
        )
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        stop = min(start + tile_latent_frames, num_latent_frames)
        if stop == num_latent_frames:
            spans.append((max(0, num_latent_frames - tile_latent_frames), stop))
            return spans
        spans.append((start, stop))
        start = stop - overlap


def tiled_over_time(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    num_latent_frames: int,
    in_stride: int,
    out_stride: int,
    causal: bool,
    tile_latent_frames: int | None,
    overlap: int,
    output_device: torch.device | str | None = None,
) -> torch.Tensor:
    """Apply a temporal-stride network `fn` to `x` (B, C, N, H, W) tile by tile along time.

    `in_stride`/`out_stride` are raw frames per latent frame on the input/output side (8 and 1 for an
    encoder, 1 and 8 for a decoder): a tile over latent frames [s, e) reads `x[:, :, in_stride*s :
    in_stride*(e-1)+1]` and its output covers positions `out_stride*s .. out_stride*(e-1)`. See the module
    docstring for how overlapping outputs are chosen and when the result is exact.
    """
    if tile_latent_frames is None or tile_latent_frames >= num_latent_frames:
        out = fn(x)
        return out if output_device is None else out.to(output_device)
    out = best = None
    for start, stop in plan_tiles(num_latent_frames, tile_latent_frames, overlap):
        piece = fn(x[:, :, in_stride * start : in_stride * (stop - 1) + 1])
        first = out_stride * start
        pos = torch.arange(first, first + piece.shape[2])
        inf = torch.full(pos.shape, math.inf)
        left = (pos - first).float() if start > 0 else inf
        right = (out_stride * (stop - 1) - pos).float() if stop < num_latent_frames and not causal else inf
        score = torch.minimum(left, right)
        if out is None:
            length = out_stride * (num_latent_frames - 1) + 1
            device = piece.device if output_device is None else torch.device(output_device)
            out = piece.new_empty((*piece.shape[:2], length, *piece.shape[3:]), device=device)
            best = torch.full((length,), -1.0)
        win = score > best[pos]
        out[:, :, pos[win].to(out.device)] = piece[:, :, win.to(piece.device)].to(out.device)
        best[pos[win]] = score[win]
    return out


class VideoVAE(nn.Module, ABC):
    """A causal video VAE with 8x temporal / 32x spatial strides seen through normalised latents.

    Subclasses provide the raw, untiled network (`encode_moments`, `decode_raw`), the strides, the
    causality of each half and the latent statistics; this class adds shape checks, normalisation, device
    and dtype handling (inputs are moved tile by tile to the VAE's device and dtype; outputs come back in
    the VAE's dtype on its device or on `output_device`) and temporal tiling.
    """

    # ---- what a concrete VAE provides -------------------------------------------------------------
    @property
    @abstractmethod
    def latent_channels(self) -> int: ...

    @property
    @abstractmethod
    def temporal_stride(self) -> int: ...

    @property
    @abstractmethod
    def spatial_stride(self) -> int: ...

    @property
    @abstractmethod
    def encoder_causal(self) -> bool: ...

    @property
    @abstractmethod
    def decoder_causal(self) -> bool: ...

    @property
    @abstractmethod
    def scaling_factor(self) -> float: ...

    @property
    def decoder_receptive_field(self) -> int | None:
        """Latent frames before a latent frame that its decoded frames can depend on (causal decoders), or
        None where unknown. Tiled decoding with this much overlap, and streaming decoding with this much
        left context, equal decoding the whole clip."""
        return None

    @property
    def decodes_in_pieces(self) -> bool:
        """Whether `decode_piece` can decode a clip piece by piece with carried state (exact, no overlap)."""
        return False

    def decode_piece(self, latents: torch.Tensor, cache: dict) -> torch.Tensor:
        """Decode raw latents that continue the pieces decoded before with the same `cache` (start with {}):
        the first piece of k latent frames gives 8(k-1)+1 frames, each later one 8k."""
        raise NotImplementedError(f"{type(self).__name__} cannot decode piece by piece")

    def decode_next_piece(self, latents: torch.Tensor, cache: dict) -> torch.Tensor:
        """`decode_piece` of normalised latents (as `decode` takes them) on the VAE's device and dtype."""
        return self.decode_piece(self.denormalize(latents.to(self.device, self.dtype)), cache)

    @property
    def default_decode_tile(self) -> int | None:
        """Latent frames a tile of `decode(..., tile_latent_frames="auto")`; None: the whole clip at once."""
        return 16

    def decode_overlap(self) -> int:
        """The overlap that makes tiled decoding exact where the receptive field is known (causal decoders),
        else `DEFAULT_TILE_OVERLAP`."""
        field = self.decoder_receptive_field
        if field is None or not self.decoder_causal:
            return DEFAULT_TILE_OVERLAP
        return max(DEFAULT_TILE_OVERLAP, field)

    @abstractmethod
    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (mean, std), each (C,), of the raw latents."""

    @abstractmethod
    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Untiled raw posterior: video (B, 3, 8k+1, H, W) on the VAE's device/dtype -> (mean, logvar),
        each (B, C, k+1, H/32, W/32), not normalised."""

    @abstractmethod
    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        """Untiled decode of raw (denormalised) latents (B, C, k+1, h, w) -> video (B, 3, 8k+1, 32h, 32w)."""

    # ---- bookkeeping ------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def latent_frames(self, num_frames: int) -> int:
        """Raw frames 8k+1 -> latent frames k+1."""
        t = self.temporal_stride
        if num_frames < 1:
            raise ValueError(f"need at least 1 frame, got {num_frames}")
        if (num_frames - 1) % t:
            lower = (num_frames - 1) // t * t + 1
            raise ValueError(
                f"{num_frames} frames cannot be encoded: the VAE maps {t}k+1 frames to k+1 latent frames; "
                f"use {lower} or {lower + t} frames"
            )
        return (num_frames - 1) // t + 1

    def num_frames(self, latent_frames: int) -> int:
        """Latent frames k+1 -> raw frames 8k+1."""
        if latent_frames < 1:
            raise ValueError(f"need at least 1 latent frame, got {latent_frames}")
        return (latent_frames - 1) * self.temporal_stride + 1

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """(z - mean) * scaling_factor / std, computed in `raw`'s dtype like the SANA-WM pipeline."""
        mean, std = self.latent_stats()
        mean = mean.view(1, -1, 1, 1, 1).to(raw)
        std = std.view(1, -1, 1, 1, 1).to(raw)
        return (raw - mean) * self.scaling_factor / std

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        """latents / scaling_factor * std + mean (the pipeline's `_decode_latents` order)."""
        mean, std = self.latent_stats()
        mean = mean.view(1, -1, 1, 1, 1).to(latents)
        std = std.view(1, -1, 1, 1, 1).to(latents)
        return latents / self.scaling_factor * std + mean

    def check_video(self, video: torch.Tensor) -> int:
        """Validate a (B, 3, 8k+1, H, W) video; return its number of latent frames k+1."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(
                f"expected a video tensor (B, 3, F, H, W) in [-1, 1], got shape {tuple(video.shape)}"
            )
        height, width = video.shape[-2:]
        s = self.spatial_stride
        if height % s or width % s:
            raise ValueError(
                f"height {height} and width {width} must be multiples of the VAE's spatial stride {s}; "
                f"resize or crop to e.g. {max(s, height // s * s)}x{max(s, width // s * s)}"
            )
        return self.latent_frames(video.shape[2])

    def check_latents(self, latents: torch.Tensor) -> int:
        """Validate (B, C, T, h, w) latents; return T."""
        if latents.ndim != 5 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"expected latents (B, {self.latent_channels}, T, h, w), got shape {tuple(latents.shape)}"
            )
        return latents.shape[2]

    # ---- the public API -------------------------------------------------------------------------------
    def encode(
        self,
        video: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        tile_latent_frames: int | None = None,
        overlap: int = DEFAULT_TILE_OVERLAP,
        output_device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """video (B, 3, 8k+1, H, W) in [-1, 1] -> normalised latents (B, C, k+1, H/32, W/32).

        The posterior mean (mode) unless `generator` is given, then a posterior sample.
        `tile_latent_frames` splits the clip along time (see the module docstring).
        """
        num_latent = self.check_video(video)

        def run(tile: torch.Tensor) -> torch.Tensor:
            mean, logvar = self.encode_moments(tile.to(self.device, self.dtype))
            return torch.cat([mean, logvar], dim=1)

        moments = tiled_over_time(
            run,
            video,
            num_latent_frames=num_latent,
            in_stride=self.temporal_stride,
            out_stride=1,
            causal=self.encoder_causal,
            tile_latent_frames=tile_latent_frames,
            overlap=overlap,
            output_device=output_device,
        )
        mean, logvar = moments.chunk(2, dim=1)
        z = mean
        if generator is not None:
            std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
            noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=mean.dtype)
            z = mean + std * noise.to(mean.device)
        return self.normalize(z)

    def decode(
        self,
        latents: torch.Tensor,
        *,
        tile_latent_frames: int | str | None = None,
        overlap: int | None = None,
        output_device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Normalised latents (B, C, k+1, h, w) -> video (B, 3, 8k+1, 32h, 32w), nominally in [-1, 1].

        `tile_latent_frames`: None decodes the whole clip at once; "auto" takes `default_decode_tile`. A VAE
        that `decodes_in_pieces` decodes tiles of that many latent frames one after another with carried
        state: exact, nothing recomputed, `overlap` unused. Others decode overlapping tiles; `overlap` None
        is `decode_overlap()`, which makes that exact for a causal decoder of known receptive field."""
        num_latent = self.check_latents(latents)
        if tile_latent_frames == "auto":
            tile_latent_frames = self.default_decode_tile
        if tile_latent_frames is not None and tile_latent_frames < num_latent and self.decodes_in_pieces:
            cache: dict = {}
            pieces = []
            for start in range(0, num_latent, tile_latent_frames):
                out = self.decode_next_piece(latents[:, :, start : start + tile_latent_frames], cache)
                pieces.append(out if output_device is None else out.to(output_device))
            return torch.cat(pieces, dim=2)
        if overlap is None:
            overlap = self.decode_overlap()

        def run(tile: torch.Tensor) -> torch.Tensor:
            return self.decode_raw(self.denormalize(tile.to(self.device, self.dtype)))

        return tiled_over_time(
            run,
            latents,
            num_latent_frames=num_latent,
            in_stride=1,
            out_stride=self.temporal_stride,
            causal=self.decoder_causal,
            tile_latent_frames=tile_latent_frames,
            overlap=overlap,
            output_device=output_device,
        )


@torch.no_grad()
def estimate_latent_stats(vae: VideoVAE, videos: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (float32, (C,)) of the raw posterior means over `videos`, for setting a
    VAE's latent normalisation after training."""
    total = total_sq = None
    count = 0
    for video in videos:
        vae.check_video(video)
        mean, _ = vae.encode_moments(video.to(vae.device, vae.dtype))
        flat = mean.float().transpose(0, 1).reshape(mean.shape[1], -1)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = flat.square().sum(1) if total_sq is None else total_sq + flat.square().sum(1)
        count += flat.shape[1]
    if count == 0:
        raise ValueError("estimate_latent_stats needs at least one video")
    mu = total / count
    var = (total_sq / count - mu.square()).clamp_min(1e-12)
    return mu.cpu(), var.sqrt().cpu()


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """A decoded video (1, 3, F, H, W) in [-1, 1] -> frames (F, H, W, 3) uint8."""
    frames = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0)
    return frames.cpu().numpy()
