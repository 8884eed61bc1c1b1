"""Write a pipeline folder from a training run: the network, its VAE, the sampler and generation defaults.

    export_pipeline("runs/default-world-2", "runs/vae/vae", "my-model", steps=8, guidance=1.0)
    WorldModelPipeline.from_pretrained("my-model")      # or `sanawm generate --model my-model`

Layout (diffusers' SANA-WM layout where it applies, so the transformer folder also loads in diffusers):

    transformer/   config.json + diffusion_pytorch_model.safetensors   (SanaWMTransformer3DModel)
    vae/           config.json + model.safetensors                     (SmallVideoVAE) or an LTX-2 VAE
    scheduler/     scheduler_config.json    FlowMatchEulerDiscreteScheduler with the training shift
    generation.json                          GenerationConfig defaults: size, sampler, steps, guidance
    (no text_encoder/: the model was trained without text; a NullTextEncoder stands in)

With `int8=True` (`--int8`) the transformer's large weights are stored in int8 (`sanawm.model.int8`),
and so are our `SmallVideoVAE`'s convolutions: about half the size of bf16; sanawm loads them
transparently, diffusers' own loader does not.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
GENERATION_FILE = "generation.json"


def export_pipeline(
    checkpoint,
    vae,
    out,
    *,
    weights: str = "ema",
    dtype: str = "bf16",
    steps: int = 8,
    guidance: float = 1.0,
    overwrite: bool = False,
    int8: bool = False,
) -> Path:
    """Write `out` from a training checkpoint (or run folder) and a VAE folder; returns `out`.

    Weights are stored in `dtype` (bf16 halves the size; loading casts to the dtype asked for). The
    generation defaults come from the training config: frame size, chunk layout, KV window, flow
    shift; the sampler is 'streaming'; `steps` and `guidance` are the caller's choice. `int8`: the
    transformer's large weights and a `SmallVideoVAE`'s convolutions in int8 (norms, biases and other small
    tensors stay in `dtype`; a diffusers LTX-2 VAE is copied as it is).
    """
    from ..model.diffusers_compat import save_diffusers
    from ..training.checkpoint import load_model, resolve_checkpoint
    from ..training.config import load_config
    from ..vae import load_vae

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; choose another folder or pass overwrite=True (--overwrite)")
    ckpt = resolve_checkpoint(checkpoint)
    train_cfg = load_config(ckpt / "config.yaml")
    model = load_model(ckpt, weights)
    model_cfg = model.cfg
    video_vae = load_vae(vae)
    if video_vae.latent_channels != model_cfg.in_channels:
        raise ValueError(
            f"the network reads {model_cfg.in_channels}-channel latents but {vae} makes "
            f"{video_vae.latent_channels}: pass the VAE the network was trained with"
        )
    flow, data = train_cfg.flow, train_cfg.data
    generation = {
        "height": data.size[0],
        "width": data.size[1],
        "fps": 16.0,
        "mode": "streaming" if flow.mode == "chunk_causal" else "bidirectional",
        "steps": int(steps),
        "shift": flow.timesteps.shift,
        "guidance": float(guidance),
        "chunk": flow.chunk,
        "first_chunk": flow.first_chunk,
        "kv_window": flow.kv_window,
    }
    scheduler = {
        "_class_name": "FlowMatchEulerDiscreteScheduler",
        "num_train_timesteps": 1000,
        "shift": flow.timesteps.shift,
        "use_dynamic_shifting": False,
    }
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_diffusers(model.to(DTYPES[dtype]), tmp / "transformer", int8=int8)
    if hasattr(video_vae, "save_pretrained"):  # ours: stored in `dtype`
        video_vae.to(DTYPES[dtype]).save_pretrained(tmp / "vae", int8=int8)
    else:  # a diffusers LTX-2 VAE folder: copied as it is
        vae_dir = Path(vae) / "vae" if (Path(vae) / "vae" / "config.json").is_file() else Path(vae)
        shutil.copytree(vae_dir, tmp / "vae")
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2) + "\n")
    source = {"checkpoint": str(ckpt), "weights": weights, "vae": str(vae)}
    (tmp / GENERATION_FILE).write_text(json.dumps({**generation, "_source": source}, indent=2) + "\n")
    return publish_folder(tmp, out)


def weights_report(folder: Path) -> dict:
    """{relative path: {"megabytes", "int8"}} of every transformer weights file in a pipeline folder."""
    from ..model.int8 import WEIGHTS, file_is_int8, transformer_folders

    report = {}
    for d in transformer_folders(folder):
        f = d / WEIGHTS
        report[f.relative_to(folder).as_posix()] = {
            "megabytes": round(f.stat().st_size / 1e6, 2),
            "int8": file_is_int8(f),
        }
    return report


def folder_megabytes(folder: Path) -> float:
    """The size of every file under `folder`, in MB to two decimals."""
    return round(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6, 2)


def publish_folder(tmp: Path, out: Path) -> Path:
    """Move a fully written folder `tmp` into place as `out` (replacing an old one; same filesystem)."""
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


__all__ = ["GENERATION_FILE", "export_pipeline", "publish_folder", "weights_report"]
