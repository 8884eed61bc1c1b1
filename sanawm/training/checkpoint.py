"""Training checkpoints: written atomically, read back for an exact resume or as initial weights.

A run folder holds checkpoints/step_XXXXXXXX/ folders and checkpoints/latest (the name of the newest):

    model.safetensors     the weights, full (unsharded) fp32, keyed like the network's state dict
                          (= the diffusers port's keys without its constant recall_gate buffers)
    ema.safetensors       the fp32 EMA of the weights (when optim.ema_decay is set)
    optimizer.pt          AdamW state keyed by parameter name, and the LR scheduler's state
    trainer.pt            step, data position, RNG states (python, numpy, torch CPU / CUDA) of each rank
    config.yaml           the resolved training config; model_config.json: the architecture

A checkpoint is first written to a hidden temporary folder and renamed into place; `latest` is
replaced with an atomic rename afterwards. A crash at any moment leaves the previous checkpoint whole
and `latest` pointing at a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..model.config import ModelConfig

MODEL, EMA, OPTIMIZER, TRAINER = "model.safetensors", "ema.safetensors", "optimizer.pt", "trainer.pt"
CONFIG, MODEL_CONFIG, LATEST = "config.yaml", "model_config.json", "latest"


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict
    trainer: dict


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def save_checkpoint(
    root: str | Path,
    step: int,
    *,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer: dict,
    trainer: dict,
    config_yaml: str,
    model_config: ModelConfig,
    keep: int | None = None,
) -> Path:
    """Write checkpoint `step` under `root` (a run's checkpoints/ folder); return its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(_contiguous(model), tmp / MODEL, metadata={"step": str(step)})
    if ema is not None:
        save_file(_contiguous(ema), tmp / EMA, metadata={"step": str(step)})
    torch.save(optimizer, tmp / OPTIMIZER)
    torch.save(trainer, tmp / TRAINER)
    (tmp / CONFIG).write_text(config_yaml)
    (tmp / MODEL_CONFIG).write_text(json.dumps(model_config.to_dict(), indent=2))
    _fsync_folder(tmp)
    old = None
    if final.exists():  # re-saving a step (a resumed run passing it again): swap, then drop the old one
        old = root / f".old-{final.name}-{os.getpid()}"
        final.rename(old)
    tmp.rename(final)
    _write_atomic(root / LATEST, final.name + "\n")
    if old is not None:
        shutil.rmtree(old)
    if keep is not None:
        for stale in list_checkpoints(root)[:-keep]:
            shutil.rmtree(stale)
    return final


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir() and (p / TRAINER).is_file())


def latest_checkpoint(root: str | Path) -> Path | None:
    root = Path(root)
    pointer = root / LATEST
    if pointer.is_file():
        path = root / pointer.read_text().strip()
        if (path / TRAINER).is_file():
            return path
    found = list_checkpoints(root)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder, a checkpoints/ folder or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / TRAINER).is_file():
        return path
    for root in (path, path / "checkpoints"):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"{path} holds no sanawm training checkpoint (a step_XXXXXXXX folder with {TRAINER}); "
        "pass a checkpoint folder or a run folder"
    )


def load_checkpoint(path: str | Path) -> Checkpoint:
    path = resolve_checkpoint(path)
    ema = load_file(path / EMA) if (path / EMA).is_file() else None
    return Checkpoint(
        path=path,
        model=load_file(path / MODEL),
        ema=ema,
        optimizer=torch.load(path / OPTIMIZER, map_location="cpu", weights_only=False),
        trainer=torch.load(path / TRAINER, map_location="cpu", weights_only=False),
    )


def is_diffusers_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / "config.json").is_file() and (
        (path / "diffusion_pytorch_model.safetensors").is_file()
        or (path / "diffusion_pytorch_model.safetensors.index.json").is_file()
    )


def read_model_config(path: str | Path) -> ModelConfig:
    """The architecture stored with a diffusers folder or a sanawm checkpoint."""
    if is_diffusers_folder(path):
        return ModelConfig.from_diffusers_config(json.loads((Path(path) / "config.json").read_text()))
    return ModelConfig.from_dict(json.loads((resolve_checkpoint(path) / MODEL_CONFIG).read_text()))


def load_weights(path: str | Path, which: str = "model") -> dict[str, torch.Tensor]:
    """Initial weights: a diffusers SanaWMTransformer3DModel folder, or the 'model' / 'ema' weights of a
    sanawm checkpoint (or of a run folder's latest checkpoint)."""
    if is_diffusers_folder(path):
        from ..model.diffusers_compat import from_diffusers

        return dict(from_diffusers(path, dtype=torch.float32, device="cpu").state_dict())
    ckpt = resolve_checkpoint(path)
    file = ckpt / (EMA if which == "ema" else MODEL)
    if not file.is_file():
        raise FileNotFoundError(
            f"{ckpt} has no {file.name} (the run kept no EMA); use --model.init_weights=model"
        )
    return load_file(file)


def load_model(path: str | Path, which: str = "ema"):
    """The `SanaWMTransformer` of a checkpoint (or run folder) on the CPU, with its model or EMA weights."""
    from ..model.transformer import SanaWMTransformer

    cfg = read_model_config(path)
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    model = model.to_empty(device="cpu")
    model.load_state_dict(load_weights(path, which), strict=True)
    return model


def export_diffusers(path: str | Path, folder: str | Path, which: str = "ema") -> Path:
    """Write a checkpoint's weights as a diffusers `SanaWMTransformer3DModel` folder (also loadable
    with `sanawm.model.from_diffusers`)."""
    from ..model.diffusers_compat import save_diffusers

    return save_diffusers(load_model(path, which), folder)


# ---- random number generators ---------------------------------------------------------------------


def capture_rng() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- files ----------------------------------------------------------------------------------------


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in state.items()}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_folder(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.fsync(f.fileno())


__all__ = [
    "Checkpoint",
    "capture_rng",
    "checkpoint_name",
    "export_diffusers",
    "is_diffusers_folder",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_weights",
    "read_model_config",
    "resolve_checkpoint",
    "restore_rng",
    "save_checkpoint",
]
