"""Load any of our video VAEs from a local folder, picked by its config.json `_class_name`."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .interface import VideoVAE

# config.json `_class_name` -> loader
_LOADERS = {"SmallVideoVAE": "small", "AutoencoderKLLTX2Video": "ltx2"}


def load_vae(folder, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> VideoVAE:
    """The `VideoVAE` saved in `folder` (or in `folder/vae`, a pipeline folder), in eval mode and frozen.

    A `SmallVideoVAE` (config.json + model.safetensors, `save_pretrained`) or a diffusers LTX-2 VAE
    (`AutoencoderKLLTX2Video`). Nothing is downloaded.
    """
    root = Path(folder).expanduser()
    configs = [c for c in (root / "config.json", root / "vae" / "config.json") if c.is_file()]
    if not configs:
        raise FileNotFoundError(
            f"VAE folder {root} has no config.json (nor vae/config.json): give the folder that "
            "SmallVideoVAE.save_pretrained or diffusers' AutoencoderKLLTX2Video.save_pretrained wrote"
        )
    name = json.loads(configs[0].read_text()).get("_class_name")
    if name not in _LOADERS:
        raise ValueError(
            f"{configs[0]} names _class_name={name!r}; a VAE folder must hold one of {sorted(_LOADERS)}"
        )
    if _LOADERS[name] == "small":
        from .small import SmallVideoVAE as cls
    else:
        from .ltx2 import LTX2VAE as cls
    vae = cls.from_pretrained(configs[0].parent, dtype=dtype, device=device)
    return vae.eval().requires_grad_(False)
