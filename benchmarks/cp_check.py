"""Context parallelism on several GPUs (NCCL): exactness against one GPU, and the speed/memory of a long
clip split across GPUs. Run under torchrun:

    NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc-per-node 2 benchmarks/cp_check.py --out cp.json

1. Exactness (float32): a randomised small model, forward and gradients with the clip's frames split
   over the ranks, against the same model on one GPU (rank 0), bidirectional and chunk-causal.
2. Speed: one bf16 forward of `--preset` over `--latent-frames` at 704x1280 with the frames split over
   the ranks (peak memory per GPU, seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.distributed as dist
from bench_streaming import build  # a sibling script: benchmarks/ is on sys.path when run as a file

from sanawm.cameras import latent_camera_inputs
from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.ops.context_parallel import ContextParallel
from sanawm.sampling import chunk_layout


def inputs(cfg, T, grid, device, dtype, seed=1):
    g = torch.Generator(device="cpu").manual_seed(seed)
    H, W = grid
    raw = 8 * (T - 1) + 1
    c2w = np.tile(np.eye(4), (raw, 1, 1))
    yaw = np.linspace(0, 0.5, raw)
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = (
        np.cos(yaw),
        np.sin(yaw),
        -np.sin(yaw),
        np.cos(yaw),
    )
    c2w[:, 2, 3] = np.linspace(0, 2, raw)
    cam = latent_camera_inputs(c2w, [0.8 * 32 * W, 0.8 * 32 * W, 16 * W, 16 * H], (32 * H, 32 * W))
    camera, plucker = (t.to(device, dtype) for t in cam.batched())
    lat = torch.randn(1, cfg.in_channels, T, H, W, generator=g).to(device, dtype)
    ts = (torch.rand(1, T, generator=g) * 1000).to(device)
    text = torch.randn(1, 16, cfg.caption_channels, generator=g).to(device, dtype)
    weight = torch.randn(lat.shape, generator=g).to(device, dtype)
    return lat, ts, text, camera, plucker, weight


def randomised(preset, device, dtype, seed=0):
    torch.manual_seed(seed)
    model = SanaWMTransformer(get_preset(preset))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.to(device, dtype)


def fwd_bwd(model, args, chunks, cp=None):
    lat, ts, text, camera, plucker, weight = args
    if cp is not None:
        lat, weight, camera = cp.local(lat, 2), cp.local(weight, 2), cp.local(camera, 1)
        ts, plucker = cp.local(ts, 1), cp.local(plucker, 2)
    model.zero_grad()
    out = model(lat, ts, text, None, camera, plucker, chunks=chunks, kv_window=2 if chunks else None, cp=cp)
    (out.float() * weight.float()).sum().backward()
    return out.detach(), {
        n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None
    }


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-30)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check-preset", default="sana-wm-small")
    ap.add_argument("--check-frames", type=int, default=16)
    ap.add_argument("--preset", default="sana-wm-2.6b")
    ap.add_argument("--latent-frames", type=int, default=120)
    ap.add_argument("--out")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")  # gloo: a CPU smoke test of this script
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    result = {"world": world, "device": name, "torch": torch.__version__}

    # 1. exactness, float32
    T = args.check_frames
    model = randomised(args.check_preset, device, torch.float32)
    data = inputs(model.cfg, T, (4, 6), device, torch.float32)
    cp = ContextParallel.from_process_group(T)
    for name, chunks in (("bidirectional", None), ("chunk_causal", chunk_layout(T))):
        out, grads = fwd_bwd(model, data, chunks, cp)
        for g in grads.values():
            dist.all_reduce(g)
        full_out = cp.gather(out, 2)
        if rank == 0:
            ref_out, ref_grads = fwd_bwd(model, data, chunks)
            worst = max(rel(grads[n], g) for n, g in ref_grads.items() if g.norm() > 0)
            result[name] = {"output_rel_diff": rel(full_out, ref_out), "worst_grad_rel_diff": worst}
            print(name, result[name], flush=True)
        dist.barrier()
    del model

    # 2. speed of a long clip split across GPUs, bf16
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    big = build(
        args.preset, device, torch.bfloat16 if cuda else torch.float32
    )  # random weights, as bench_streaming
    T = args.latent_frames
    grid = (22, 40) if cuda else (2, 3)
    lat, ts, text, camera, plucker, _ = inputs(
        big.cfg, T, grid, device, torch.bfloat16 if cuda else torch.float32
    )
    cp = ContextParallel.from_process_group(T)
    local = (cp.local(lat, 2), cp.local(ts, 1), text, None, cp.local(camera, 1), cp.local(plucker, 2))
    with torch.inference_mode():
        big(*local, cp=cp)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        dist.barrier()
        t0 = time.perf_counter()
        big(*local, cp=cp)
        sync()
        dist.barrier()
        seconds = time.perf_counter() - t0
    peak = torch.tensor([torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0], device=device)
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    result["speed"] = {
        "preset": args.preset,
        "latent_frames": T,
        "tokens": T * grid[0] * grid[1],
        "bidirectional_forward_s": seconds,
        "peak_gib_per_gpu": peak.item(),
    }
    if rank == 0:
        print(json.dumps(result), flush=True)
        if args.out:
            with open(args.out, "w") as f:
                json.dump(result, f, indent=2)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
