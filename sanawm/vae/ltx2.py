"""The LTX-2 video VAE (diffusers' `AutoencoderKLLTX2Video`) behind the `VideoVAE` interface.

Loaded from a LOCAL diffusers-format folder (config.json + diffusion_pytorch_model.safetensors, or a
pipeline folder with `vae/` inside); nothing is downloaded. Encoding and decoding follow diffusers'
`SanaWMPipeline` exactly:

    encode: z = vae.encode(x).latent_dist.mode();  z = (z - latents_mean) * scaling_factor / latents_std
    decode: z = z / scaling_factor * latents_std + latents_mean;  vae.decode(z, return_dict=False)[0]

For a timestep-conditioned decoder (`timestep_conditioning: true`, not the LTX-2 release) the SANA-WM
pipeline would fail; here the decoder gets `temb = decode_timestep` per sample, as diffusers'
`LTX2Pipeline` does, but without its decode-noise injection (`decode_noise_scale`).

The strides are derived from the architecture (`downsample_type` x `spatio_temporal_scaling` x patch
sizes), not from diffusers' `spatial_compression_ratio` attribute, which its default formula over-counts
when the config leaves it unset.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .interface import VideoVAE

if TYPE_CHECKING:
    from diffusers import AutoencoderKLLTX2Video

LTX2_CLASS_NAME = "AutoencoderKLLTX2Video"

_DOWN_FACTORS = {"spatial": (1, 2), "temporal": (2, 1), "spatiotemporal": (2, 2), "conv": (2, 2)}


def _half_strides(config, scaling, layers_per_block, kinds) -> tuple[int, int]:
    """(temporal, spatial) stride of one half (encoder or decoder): the patch times each scaling block."""
    if isinstance(scaling, bool):
        scaling = (scaling,) * (len(layers_per_block) - 1)
    t, s = config.patch_size_t, config.patch_size
    for flag, kind in zip(scaling, kinds, strict=True):
        if flag:
            dt, ds = _DOWN_FACTORS[kind]
            t, s = t * dt, s * ds
    return t, s


def ltx2_strides(config) -> tuple[int, int]:
    """(temporal, spatial) strides of an `AutoencoderKLLTX2Video` config, from its architecture."""
    t, s = _half_strides(
        config, config.spatio_temporal_scaling, config.layers_per_block, config.downsample_type
    )
    ut, us = _half_strides(
        config, config.decoder_spatio_temporal_scaling, config.decoder_layers_per_block, config.upsample_type
    )
    if (ut, us) != (t, s):
        raise ValueError(
            f"LTX-2 VAE config is inconsistent: the encoder downsamples by {t}x time / {s}x space but the "
            f"decoder upsamples by {ut}x / {us}x"
        )
    for name, derived in (("temporal_compression_ratio", t), ("spatial_compression_ratio", s)):
        stated = getattr(config, name, None)
        if stated is not None and stated != derived:
            raise ValueError(f"LTX-2 VAE config says {name}={stated} but its blocks give {derived}")
    return t, s


def resolve_ltx2_folder(folder: str | Path) -> Path:
    """The folder holding the VAE's config.json: `folder` itself or `folder/vae` (a pipeline folder)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(
            f"LTX-2 VAE folder {root} does not exist; pass a local diffusers-format folder with "
            f"config.json (_class_name {LTX2_CLASS_NAME}) and diffusion_pytorch_model.safetensors, or a "
            "SANA-WM diffusers folder with vae/ inside"
        )
    found = []
    for candidate in (root, root / "vae"):
        config_file = candidate / "config.json"
        if not config_file.is_file():
            continue
        class_name = json.loads(config_file.read_text()).get("_class_name")
        if class_name == LTX2_CLASS_NAME:
            if not any(candidate.glob("diffusion_pytorch_model*.safetensors")) and not any(
                candidate.glob("diffusion_pytorch_model*.bin")
            ):
                raise FileNotFoundError(
                    f"{candidate} has the LTX-2 VAE config.json but no diffusion_pytorch_model.safetensors"
                )
            return candidate
        found.append(f"{config_file}: _class_name={class_name!r}")
    raise ValueError(
        f"expected config.json with _class_name {LTX2_CLASS_NAME} in {root} (or {root / 'vae'}); "
        + ("found " + "; ".join(found) if found else "found no config.json")
    )


class LTX2VAE(VideoVAE):
    """`AutoencoderKLLTX2Video` through the `VideoVAE` interface (frozen, eval mode)."""

    def __init__(self, model: AutoencoderKLLTX2Video, *, decode_timestep: float = 0.0):
        super().__init__()
        if model.config.patch_size_t != 1:
            raise ValueError(
                f"patch_size_t={model.config.patch_size_t} is not supported: the 8k+1 frame mapping needs 1"
            )
        self.model = model
        self._temporal, self._spatial = ltx2_strides(model.config)
        self.decode_timestep = float(decode_timestep)

    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        decode_timestep: float = 0.0,
    ) -> LTX2VAE:
        """Load from a local diffusers-format folder (or a pipeline folder with `vae/`)."""
        from diffusers import AutoencoderKLLTX2Video

        path = resolve_ltx2_folder(folder)
        model = AutoencoderKLLTX2Video.from_pretrained(
            path,
            torch_dtype=dtype,
            local_files_only=True,
            low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
        )
        model = model.to(device).eval().requires_grad_(False)
        return cls(model, decode_timestep=decode_timestep)

    @property
    def latent_channels(self) -> int:
        return self.model.config.latent_channels

    @property
    def temporal_stride(self) -> int:
        return self._temporal

    @property
    def spatial_stride(self) -> int:
        return self._spatial

    @property
    def encoder_causal(self) -> bool:
        return bool(self.model.config.encoder_causal)

    @property
    def decoder_causal(self) -> bool:
        return bool(self.model.config.decoder_causal)

    @property
    def scaling_factor(self) -> float:
        return float(self.model.config.scaling_factor)

    def latent_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.latents_mean, self.model.latents_std

    def encode_moments(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        posterior = self.model.encode(video).latent_dist
        return posterior.mean, posterior.logvar

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        temb = None
        if self.model.config.timestep_conditioning:
            temb = torch.full(
                (latents.shape[0],), self.decode_timestep, device=latents.device, dtype=latents.dtype
            )
        return self.model.decode(latents, temb, return_dict=False)[0]
