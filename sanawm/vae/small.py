"""A small causal video VAE we can train ourselves, with the LTX-2 VAE's interface and strides.

8x time with a causal first frame (8k+1 frames -> k+1 latent frames), 32x space (a 4x4 patchify, then
three 2x2x2 space-time downsamplings), a configurable number of latent channels. Pure convolutions with
per-location channel RMS norms (no GroupNorm, no attention), so the encoder is strictly causal and the
decoder is causal or not by config; temporal tiling (see `interface.py`) applies unchanged.

    encoder: patchify 4x4 -> conv_in -> [resblocks, down 2x2x2] x 3 -> resblocks -> conv_out (mean, logvar)
    decoder: conv_in -> resblocks -> [up 2x2x2, resblocks] x 3 -> conv_out -> unpatchify 4x4

A temporal downsampling repeats frame 0 once before pairing frames (2m+1 -> m+1), an upsampling drops
the first of its doubled frames (m+1 -> 2m+1), as in LTX-2. Saved as `config.json` + `model.safetensors`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from ..model.int8 import VAE_CLASS, VAE_WEIGHTS, load_weights, save_int8
from .interface import VideoVAE

SMALL_VAE_CLASS_NAME = VAE_CLASS  # config.json's _class_name (int8 storage finds the folder by it)
WEIGHTS_NAME = VAE_WEIGHTS


@dataclass(frozen=True)
class SmallVAEConfig:
    latent_channels: int = 16
    channels: tuple[int, int, int, int] = (32, 64, 128, 128)  # at the 1x, 2x, 4x, 8x downsampled levels
    layers_per_level: int = 1
    decoder_causal: bool = True
    scaling_factor: float = 1.0

    def __post_init__(self):
        if len(self.channels) != 4:
            raise ValueError(f"channels needs 4 widths (one per level), got {self.channels}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


SMALL_VAE_PRESETS: dict[str, SmallVAEConfig] = {
    "tiny": SmallVAEConfig(latent_channels=8, channels=(8, 16, 32, 32)),
    "small": SmallVAEConfig(latent_channels=16, channels=(32, 64, 128, 128)),
    # The VAE of default models v0 and v1 (256² procedural worlds): 32 latent channels, so 8 frames of
    # 256² RGB become 8 x 8 x 32 numbers (768x fewer; LTX-2 keeps 128 channels, 192x). Same strides as
    # LTX-2, so the default model runs the 2.6B model's exact token geometry. Decodes 60 s of video
    # in ~35 s on 2 CPU cores.
    "medium": SmallVAEConfig(latent_channels=32, channels=(48, 96, 128, 192)),
    # The same network with a wider latent (384x and 192x fewer numbers than pixels; 192x is LTX-2's):
    # candidates for a sharper default model, since at 32x space the latent width, not the network,
    # bounds reconstruction (the world model only grows its input and output projections).
    "medium-c64": SmallVAEConfig(latent_channels=64, channels=(48, 96, 128, 192)),
    "medium-c128": SmallVAEConfig(latent_channels=128, channels=(48, 96, 128, 192)),  # the shipped v2's
    "base": SmallVAEConfig(latent_channels=16, channels=(64, 128, 256, 256), layers_per_level=2),
}

PATCH = 4  # spatial patchify; with three 2x downsamplings: 32x


class CausalConv3d(nn.Module):
    """3x3x3 conv; time padded by repeating the edge frame (the first frame only, when causal).

    `cache` (a dict, causal only): decode a clip piece by piece, exactly. The conv reads the two frames
    before the piece from the cache (at the clip's start: the first frame twice, as in one call) and
    leaves its piece's last two there."""

    def __init__(self, c_in: int, c_out: int, causal: bool = True):
        super().__init__()
        self.causal = causal
        self.conv = nn.Conv3d(c_in, c_out, 3, padding=(0, 1, 1))

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        if cache is not None:
            before = cache.get(id(self))
            x = torch.cat([x[:, :, :1].expand(-1, -1, 2, -1, -1) if before is None else before, x], dim=2)
            cache[id(self)] = x[:, :, -2:]
        elif self.causal:
            x = torch.cat([x[:, :, :1], x[:, :, :1], x], dim=2)
        else:
            x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        return self.conv(x)


class ChannelRMSNorm(nn.Module):
    """RMS norm over channels at each (t, h, w) location, with a learned gain."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(x.float().square().mean(1, keepdim=True) + self.eps).to(x.dtype)
        return x * self.weight.view(1, -1, 1, 1, 1)


class ResBlock(nn.Module):
    def __init__(self, channels: int, causal: bool):
        super().__init__()
        self.norm1 = ChannelRMSNorm(channels)
        self.conv1 = CausalConv3d(channels, channels, causal)
        self.norm2 = ChannelRMSNorm(channels)
        self.conv2 = CausalConv3d(channels, channels, causal)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        return x + self.conv2(F.silu(self.norm2(h)), cache)


def space_to_depth(x: torch.Tensor, st: int, ss: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*st*ss*ss, T/st, H/ss, W/ss)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // st, st, h // ss, ss, w // ss, ss)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(b, c * st * ss * ss, t // st, h // ss, w // ss)


def depth_to_space(x: torch.Tensor, st: int, ss: int) -> torch.Tensor:
    """Inverse of `space_to_depth`."""
    b, c, t, h, w = x.shape
    c_out = c // (st * ss * ss)
    x = x.reshape(b, c_out, st, ss, ss, t, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c_out, t * st, h * ss, w * ss)


class Downsample(nn.Module):
    """2x2x2 down: repeat frame 0 once (2m+1 -> 2m+2 frames), space-to-depth, 1x1x1 conv."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Conv3d(8 * c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(space_to_depth(torch.cat([x[:, :, :1], x], dim=2), 2, 2))


class Upsample(nn.Module):
    """2x2x2 up: 1x1x1 conv, depth-to-space, drop the first frame (m+1 -> 2m+1 frames)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Conv3d(c_in, 8 * c_out, 1)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        y = depth_to_space(self.proj(x), 2, 2)
        if cache is not None:  # only the clip's first piece drops its first frame
            if cache.get(id(self)):
                return y
            cache[id(self)] = True
        return y[:, :, 1:]


class Encoder(nn.Module):
    def __init__(self, cfg: SmallVAEConfig):
        super().__init__()
        ch, n = cfg.channels, cfg.layers_per_level
        self.conv_in = CausalConv3d(3 * PATCH * PATCH, ch[0])
        self.levels = nn.ModuleList(
            nn.Sequential(*[ResBlock(ch[i], True) for _ in range(n)]) for i in range(3)
        )
        self.downs = nn.ModuleList(Downsample(ch[i], ch[i + 1]) for i in range(3))
        self.mid = nn.Sequential(*[ResBlock(ch[3], True) for _ in range(n)])
        self.norm_out = ChannelRMSNorm(ch[3])
        self.conv_out = CausalConv3d(ch[3], 2 * cfg.latent_channels)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(space_to_depth(video, 1, PATCH))
        for level, down in zip(self.levels, self.downs, strict=True):
            x = down(level(x))
        return self.conv_out(F.silu(self.norm_out(self.mid(x))))


class Decoder(nn.Module):
    def __init__(self, cfg: SmallVAEConfig):
        super().__init__()
        ch, n, causal = cfg.channels, cfg.layers_per_level, cfg.decoder_causal
        self.conv_in = CausalConv3d(cfg.latent_channels, ch[3], causal)
        self.mid = nn.Sequential(*[ResBlock(ch[3], causal) for _ in range(n)])
        self.ups = nn.ModuleList(Upsample(ch[i + 1], ch[i]) for i in reversed(range(3)))
        self.levels = nn.ModuleList(
            nn.Sequential(*[ResBlock(ch[i], causal) for _ in range(n)]) for i in reversed(range(3))
        )
        self.norm_out = ChannelRMSNorm(ch[0])
        self.conv_out = CausalConv3d(ch[0], 3 * PATCH * PATCH, causal)

    def forward(self, z: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """Latents (B, C, k, h, w) -> video (B, 3, 8(k-1)+1, 32h, 32w). With `cache` (a causal decoder
        only; start with {} and pass the same dict for the next piece), `z` may be a piece of a clip:
        the first piece gives 8(k-1)+1 frames, each later one 8k, and the pieces together equal one call
        on the whole clip."""
        if cache is not None and not self.conv_in.causal:
            raise ValueError("piecewise decoding needs a causal decoder (decoder_causal=True)")
        x = self.conv_in(z, cache)
        for block in self.mid:
            x = block(x, cache)
        for up, level in zip(self.ups, self.levels, strict=True):
            x = up(x, cache)
            for block in level:
                x = block(x, cache)
        return depth_to_space(self.conv_out(F.silu(self.norm_out(x)), cache), 1, PATCH)


class SmallVideoVAE(VideoVAE):
    """Our trainable causal video VAE. `latents_mean`/`latents_std` buffers (set with `set_latent_stats`
    after training, e.g. from `estimate_latent_stats`) define the normalised latent space."""

    def __init__(self, config: SmallVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.register_buffer("latents_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latents_std", torch.ones(config.latent_channels))

    @property
    def latent_channels(self) -> int:
        return self.config.latent_channels

    @property
    def temporal_stride(self) -> int:
        return 8

    @property
    def spatial_stride(self) -> int:
        return 8 * PATCH

    @property
    def encoder_causal(self) -> bool:
        return True

    @property
    def decoder_causal(self) -> bool:
        return self.config.decoder_causal

    @property
    def scaling_factor(self) -> float:
        return self.config.scaling_factor

    @property
    def decoder_receptive_field(self) -> int:
        """Each 3-frame causal conv reaches 2 frames back at its level's rate: the latent rate for conv_in and
        the middle blocks, then 2x, 4x and 8x after each upsampling (depth-to-space adds no reach), so
        2 * (1 + 2n) + 2n * (1/2 + 1/4 + 1/8) + 2/8 latent frames for n blocks a level, rounded up
        (n = 1: 9.75 -> 10)."""
        n = self.config.layers_per_level
        reach = 2 * (1 + 2 * n) + 2 * (2 * n) * (1 / 2 + 1 / 4 + 1 / 8) + 2 / 8
        return math.ceil(reach)

    @property
    def decodes_in_pieces(self) -> bool:
        return self.config.decoder_causal

    def decode_piece(self, latents: torch.Tensor, cache: dict) -> torch.Tensor:
        return self.decoder(latents, cache)

    @property
    def default_decode_tile(self) -> int:
        """12 latent frames a piece (6 s at 16 fps): small tensors run fastest on a CPU (a minute at 256² on
        2 cores: 33 s in pieces of 12, 37 s of 16, 48 s in one call) and memory stays bounded however long
        the video."""
        return 12

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.latents_mean, self.latents_std

    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        if mean.shape != self.latents_mean.shape or std.shape != self.latents_std.shape:
            raise ValueError(
                f"latent stats must be ({self.latent_channels},), got {mean.shape} and {std.shape}"
            )
        if (std <= 0).any():
            raise ValueError("latent std must be positive")
        self.latents_mean.copy_(mean)
        self.latents_std.copy_(std)

    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.encoder(video).chunk(2, dim=1)
        return mean, logvar

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    def save_pretrained(self, folder: str | Path, int8: bool = False) -> Path:
        """Write `config.json` + `model.safetensors` (float tensors as they are, buffers included).
        int8: store the convolution weights as per-output-channel int8 (`sanawm.model.int8`; about half
        the size of bf16, and `from_pretrained` dequantises them); norms, biases and buffers stay as
        they are."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {"_class_name": SMALL_VAE_CLASS_NAME, **asdict(self.config)}
        config["channels"] = list(config["channels"])
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if int8:
            save_int8(state, folder / WEIGHTS_NAME)
        else:
            save_file(state, str(folder / WEIGHTS_NAME))
        return folder

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
    ) -> SmallVideoVAE:
        folder = Path(folder).expanduser()
        config_file, weights_file = folder / "config.json", folder / WEIGHTS_NAME
        if not config_file.is_file() or not weights_file.is_file():
            raise FileNotFoundError(
                f"expected config.json and {WEIGHTS_NAME} of a {SMALL_VAE_CLASS_NAME} in {folder} "
                "(written by SmallVideoVAE.save_pretrained)"
            )
        raw = json.loads(config_file.read_text())
        class_name = raw.pop("_class_name", None)
        if class_name != SMALL_VAE_CLASS_NAME:
            raise ValueError(
                f"{config_file} has _class_name={class_name!r}, expected {SMALL_VAE_CLASS_NAME!r}"
            )
        known = {f.name for f in fields(SmallVAEConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"{config_file} has unknown fields {unknown}; known: {sorted(known)}")
        vae = cls(SmallVAEConfig(**raw))
        # int8 files (save_pretrained(int8=True)) come back dequantised, the others as stored
        vae.load_state_dict(load_weights(weights_file))
        return vae.to(device=device, dtype=dtype)


def vae_loss(
    vae: VideoVAE,
    video: torch.Tensor,
    *,
    l1_weight: float = 1.0,
    l2_weight: float = 1.0,
    kl_weight: float = 1e-4,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One training step's loss: reconstruction (L1 + L2) of a reparameterised posterior sample plus a
    small KL to N(0, I). All terms are means over elements. No perceptual loss.

    video (B, 3, 8k+1, H, W) in [-1, 1]. Returns {"loss", "l1", "l2", "kl"} (scalars; "loss" has grad).
    """
    vae.check_video(video)
    video = video.to(vae.device, vae.dtype)
    mean, logvar = vae.encode_moments(video)
    logvar = logvar.clamp(-30.0, 20.0)
    device = generator.device if generator is not None else mean.device
    noise = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype).to(mean.device)
    recon = vae.decode_raw(mean + torch.exp(0.5 * logvar) * noise)
    err = recon.float() - video.float()
    l1 = err.abs().mean()
    l2 = err.square().mean()
    kl = 0.5 * (mean.float().square() + logvar.float().exp() - 1.0 - logvar.float()).mean()
    loss = l1_weight * l1 + l2_weight * l2 + kl_weight * kl
    return {"loss": loss, "l1": l1.detach(), "l2": l2.detach(), "kl": kl.detach()}
