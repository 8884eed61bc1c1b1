"""Video VAEs behind one interface: the LTX-2 VAE (diffusers, local folder) and a small trainable one."""

from .interface import (
    DEFAULT_TILE_OVERLAP,
    VideoVAE,
    estimate_latent_stats,
    plan_tiles,
    tiled_over_time,
    to_uint8_frames,
)
from .loading import load_vae
from .ltx2 import LTX2VAE, ltx2_strides, resolve_ltx2_folder
from .small import SMALL_VAE_PRESETS, SmallVAEConfig, SmallVideoVAE, vae_loss

__all__ = [
    "DEFAULT_TILE_OVERLAP",
    "LTX2VAE",
    "SMALL_VAE_PRESETS",
    "SmallVAEConfig",
    "SmallVideoVAE",
    "VideoVAE",
    "estimate_latent_stats",
    "load_vae",
    "ltx2_strides",
    "plan_tiles",
    "resolve_ltx2_folder",
    "tiled_over_time",
    "to_uint8_frames",
    "vae_loss",
]
