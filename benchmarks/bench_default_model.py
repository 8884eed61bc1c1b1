"""The shipped default model end to end on this machine: what `sanawm generate` (no arguments) does,
timed by stage. Loading, sampling (the streaming sampler) and VAE decoding, then the mp4 write.

    python benchmarks/bench_default_model.py --seconds 60 --threads 2 --out default_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from sanawm.data import write_video
from sanawm.pipelines import WorldModelPipeline
from sanawm.pipelines.world_model import EXAMPLE_ACTIONS, EXAMPLE_IMAGE
from sanawm.vae import to_uint8_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None, help="default: the model's (generation.json)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    pipe = WorldModelPipeline.from_pretrained(device=args.device)
    load_s = time.perf_counter() - t0
    cfg = pipe.generation_config(seconds=args.seconds, steps=args.steps)
    path = pipe.camera_path(cfg, actions=EXAMPLE_ACTIONS, image_size=(256, 256))
    pixels, path = pipe.prepare_image(EXAMPLE_IMAGE, path, cfg)
    with torch.no_grad():
        t0 = time.perf_counter()
        latents = pipe.sample_latents(pixels, path, "", cfg)
        sample_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        video = pipe.vae.decode(latents, tile_latent_frames=cfg.decode_tile_latent_frames)
        frames = to_uint8_frames(video)
        decode_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_video(Path(tmp) / "out.mp4", frames, cfg.fps)
        write_s = time.perf_counter() - t0
    cpu = f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"
    row = {
        "device": args.device if args.device != "cpu" else cpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds_of_video": (len(frames) - 1) / cfg.fps,
        "frames": len(frames),
        "size": [cfg.height, cfg.width],
        "mode": cfg.mode,
        "steps": cfg.steps,
        "load_s": round(load_s, 2),
        "sample_s": round(sample_s, 2),
        "decode_s": round(decode_s, 2),
        "write_mp4_s": round(write_s, 2),
        "total_s": round(load_s + sample_s + decode_s + write_s, 2),
    }
    print(json.dumps(row, indent=2))
    if args.out:
        args.out.write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
