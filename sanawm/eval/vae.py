"""Reconstruction quality of a video VAE on held-out clips: encode (posterior mean), decode, compare.

report = evaluate_vae(vae, "worlds-heldout", frames=33, size=(256, 256), clips=32)
report["psnr"], report["ssim"]     # means over every frame of every window, on uint8 frames
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..vae import VideoVAE, to_uint8_frames
from .image_metrics import psnr, ssim


@torch.no_grad()
def evaluate_vae(
    vae: VideoVAE,
    dataset,
    *,
    frames: int = 33,
    size: tuple[int, int] = (256, 256),
    clips: int | None = None,
    seed: int = 0,
) -> dict:
    """PSNR / SSIM (uint8 frames, data range 255) of VAE reconstructions of one window per clip.

    dataset: a `sanawm.data.ClipDataset` root (manifest.jsonl); windows of `frames` (8k + 1) frames
    resized / centre-cropped to `size`, the window start drawn from `seed`; the first `clips` clips
    (None: all). Returns means, per-clip rows and the encode + decode time.
    """
    from ..data import ClipDataset

    ds = ClipDataset(dataset, frames, size=size, seed=seed)
    n = len(ds) if clips is None else min(int(clips), len(ds))
    if n < 1:
        raise ValueError(f"{dataset} holds no clip of at least {frames} frames; render or pick longer clips")
    rows, seconds = [], 0.0
    for i in range(n):
        item = ds[i]
        video = item["video"].permute(1, 0, 2, 3)[None]  # (1, 3, F, H, W)
        t0 = time.perf_counter()
        recon = vae.decode(vae.encode(video), output_device="cpu")
        seconds += time.perf_counter() - t0
        truth, pred = to_uint8_frames(video), to_uint8_frames(recon)
        p, s = np.asarray(psnr(pred, truth)), np.asarray(ssim(pred, truth))
        rows.append({"clip": item["clip"], "psnr": float(p.mean()), "ssim": float(s.mean())})
    return {
        "clips": n,
        "frames": frames,
        "size": list(size),
        "psnr": float(np.mean([r["psnr"] for r in rows])),
        "ssim": float(np.mean([r["ssim"] for r in rows])),
        "psnr_min_clip": float(np.min([r["psnr"] for r in rows])),
        "seconds_per_frame": seconds / (n * frames),
        "per_clip": rows,
    }


__all__ = ["evaluate_vae"]
