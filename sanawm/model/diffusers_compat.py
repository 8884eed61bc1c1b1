"""Load and save checkpoints of the public reference port, diffusers' `SanaWMTransformer3DModel`.

The mapping is lossless: every state-dict key is identical, except the release's `*.recall_gate`
buffers (a constant zero the forward never reads), which are dropped on load and written back as
zeros on save. A diffusers folder is `config.json` plus `diffusion_pytorch_model.safetensors`
(or its sharded form with a `.index.json`). Weights files stored in int8 (`sanawm.model.int8`, a
header marker) are dequantised on load, into the dtype asked for.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .config import ModelConfig
from .transformer import SanaWMTransformer

WEIGHTS = "diffusion_pytorch_model.safetensors"
DROPPED_SUFFIXES = (".recall_gate",)


def from_diffusers(
    source, dtype: torch.dtype | None = None, device: str | torch.device | None = None
) -> SanaWMTransformer:
    """Build our network from a `SanaWMTransformer3DModel` instance or a folder it saved.

    The weights are copied; by default onto the source's device, in the source's dtype."""
    if isinstance(source, (str, Path)):
        cfg_dict, state = _read_folder(Path(source), dtype)
    else:
        cfg_dict, state = dict(source.config), source.state_dict()
    cfg = ModelConfig.from_diffusers_config(cfg_dict)
    state = {k: v for k, v in state.items() if not k.endswith(DROPPED_SUFFIXES)}
    first = next(v for v in state.values() if v.is_floating_point())
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    _check_keys(model, state)
    model = model.to_empty(device=device or first.device).to(dtype or first.dtype)
    model.load_state_dict(state, strict=True)
    return model


def to_diffusers_state_dict(model: SanaWMTransformer) -> dict[str, torch.Tensor]:
    """Our state dict with the release's constant `recall_gate` buffers added back."""
    state = dict(model.state_dict())
    for i in range(len(model.blocks)):
        state[f"blocks.{i}.attn.recall_gate"] = torch.zeros(1, dtype=torch.float32)
    return state


def save_diffusers(model: SanaWMTransformer, folder: str | Path, int8: bool = False) -> Path:
    """Write a folder that `SanaWMTransformer3DModel.from_pretrained` loads; with `int8`, the large
    weights in int8 (`sanawm.model.int8`: about half of bf16; then only sanawm's loaders read it)."""
    from safetensors.torch import save_file

    from .int8 import save_int8

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {"_class_name": "SanaWMTransformer3DModel", **model.cfg.to_diffusers_config()}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous().cpu() for k, v in to_diffusers_state_dict(model).items()}
    if int8:
        save_int8(state, folder / WEIGHTS)
    else:
        save_file(state, folder / WEIGHTS)
    return folder


def _read_folder(folder: Path, dtype: torch.dtype | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    from .int8 import load_weights

    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(
            f"{folder} has no config.json; pass the transformer folder of a diffusers checkpoint"
        )
    cfg = json.loads(cfg_path.read_text())
    single, index = folder / WEIGHTS, folder / (WEIGHTS + ".index.json")
    if single.is_file():
        return cfg, load_weights(single, dtype)
    if index.is_file():
        state: dict[str, torch.Tensor] = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_weights(folder / shard, dtype))
        return cfg, state
    raise FileNotFoundError(
        f"{folder} has neither {WEIGHTS} nor its sharded index; is this a diffusers model folder?"
    )


def _check_keys(model: SanaWMTransformer, state: dict) -> None:
    want = set(model.state_dict())
    missing, unexpected = sorted(want - set(state)), sorted(set(state) - want)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint does not match the config: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
        )
    for k, v in model.state_dict().items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise ValueError(
                f"checkpoint key {k} has shape {tuple(state[k].shape)}, the config needs {tuple(v.shape)}"
            )
