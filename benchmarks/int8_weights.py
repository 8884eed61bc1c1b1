"""Int8 weight storage (`sanawm.model.int8`) on a pipeline folder: sizes, weight error, one network
evaluation's error and the PSNR of the generated frames against the unquantised folder (CPU, fp32).

    python benchmarks/int8_weights.py --model my-model --seconds 2 --threads 2 --out int8.json

`--model` is a pipeline folder stored in bf16 or fp32 (`sanawm export` without --int8); the shipped
default model is int8 already, and quantising twice is refused.

A copy of the folder is quantised in a temporary folder (`quantize_folder`: every transformer and our
VAE, unless already int8); both are loaded in fp32 on
the CPU. Network error: ||f_int8(x) - f(x)|| / ||f(x)|| for one bidirectional evaluation on a fixed
random input (5 latent frames, the model's latent size, t = 500). Frames: one clip from the example
first frame and the example key path, same seed, the model's generation defaults.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sanawm.model import from_diffusers
from sanawm.model.int8 import (
    VAE_WEIGHTS,
    folder_megabytes,
    load_weights,
    quantize_folder,
    transformer_folders,
    weights_error,
)
from sanawm.pipelines import WorldModelPipeline
from sanawm.pipelines.world_model import EXAMPLE_ACTIONS, EXAMPLE_IMAGE


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@torch.no_grad()
def network_error(ref, quant, height: int, width: int, frames: int = 5) -> float:
    cfg = ref.cfg
    g = torch.Generator().manual_seed(0)
    h, w = height // 32, width // 32
    x = torch.randn(1, cfg.in_channels, frames, h, w, generator=g)
    text = torch.randn(1, 4, cfg.caption_channels, generator=g)
    camera = torch.randn(1, frames, 20, generator=g)
    plucker = torch.randn(1, 48, frames, h, w, generator=g)
    t = torch.full((1, frames), 500.0)
    a = ref(x, t, text, camera=camera, plucker=plucker)
    b = quant(x, t, text, camera=camera, plucker=plucker)
    return float((a - b).norm() / a.norm())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a bf16/fp32 pipeline folder")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        quant_dir = Path(tmp) / "int8"
        shutil.copytree(args.model, quant_dir)
        t0 = time.perf_counter()
        sizes = quantize_folder(quant_dir)
        quantize_s = time.perf_counter() - t0

        weights = {}
        network = {}
        for rel in sizes:
            sub = Path(rel).parent
            if Path(rel).name == VAE_WEIGHTS:  # our VAE (no network evaluation of its own here)
                ref_w, quant_w = load_weights(args.model / rel), load_weights(quant_dir / rel)
                weights[rel] = weights_error(ref_w, quant_w)
                continue
            ref = from_diffusers(args.model / sub, dtype=torch.float32).eval()
            quant = from_diffusers(quant_dir / sub, dtype=torch.float32).eval()
            weights[rel] = weights_error(ref.state_dict(), quant.state_dict())
            network[rel] = network_error(ref, quant, 256, 256)

        clips = {}
        for name, folder in (("reference", args.model), ("int8", quant_dir)):
            pipe = WorldModelPipeline.from_pretrained(folder, dtype=torch.float32, device="cpu")
            cfg = pipe.generation_config(seconds=args.seconds, seed=args.seed)
            clips[name] = pipe.generate(EXAMPLE_IMAGE, actions=EXAMPLE_ACTIONS, config=cfg).frames
        per_frame = [psnr(a, b) for a, b in zip(clips["reference"], clips["int8"], strict=True)]
        row = {
            "model": str(args.model),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "weights_files": sizes,
            "folder_megabytes": {
                "reference": folder_megabytes(args.model),
                "int8": folder_megabytes(quant_dir),
            },
            "transformers_found": [
                p.relative_to(quant_dir).as_posix() for p in transformer_folders(quant_dir)
            ],
            "weights": weights,
            "network_rel_error": network,
            "clip": {
                "seconds": (len(per_frame) - 1) / cfg.fps,
                "frames": len(per_frame),
                "size": [cfg.height, cfg.width],
                "steps": cfg.steps,
                "mode": cfg.mode,
                "psnr_db": psnr(clips["reference"], clips["int8"]),
                "psnr_db_min_frame": min(per_frame),
                "psnr_db_last_frame": per_frame[-1],
            },
            "quantize_seconds": round(quantize_s, 2),
            "total_seconds": round(time.perf_counter() - t_start, 1),
        }
    text = json.dumps(row, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
