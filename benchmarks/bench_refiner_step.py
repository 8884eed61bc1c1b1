"""The small refiner's training step (`sanawm.refine.train.refiner_loss`, forward + backward) with the clip
cut after its target block, against the same step on the whole clip (the last block's, which runs every
frame, as every step did before the cut): seconds by target block, and the mean over the target-block draw
of `refiner.target_bias` 0 (uniform) and 1 (∝ position). The network is a pipeline folder's transformer
(default: the shipped model's) at its training shape; the tensors are synthetic (the step's cost does not
depend on their values).

    python benchmarks/bench_refiner_step.py --frames 121 --out refiner_step.json [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from sanawm.distill.trainer import load_network
from sanawm.pipelines.world_model import DEFAULT_MODEL
from sanawm.refine.train import random_batch, refiner_chunks, refiner_loss


def step_seconds(model, batch, block: int, chunks, repeats: int, device) -> float:
    """Median seconds of forward + backward of `refiner_loss` with target block `block` (the clip cut after
    it). The last block's step runs the whole clip: the cost every step had before the cut."""
    B = batch["latents"].shape[0]
    blocks = torch.full((B,), block)
    tau = torch.full((B,), 0.5)
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = refiner_loss(model, batch, blocks, tau, sigma_s=0.909375, chunks=chunks, kv_window=2)
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        model.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="pipeline folder (its transformer/)")
    ap.add_argument("--frames", type=int, default=121, help="latent frames of a training clip (121: 60 s)")
    ap.add_argument("--grid", default="8,8", help="latent tokens H,W (8,8: 256² with the shipped VAE)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--blocks", type=int, default=5, help="target blocks timed, evenly spaced")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    model = load_network(args.model, "ema").to(device).train()
    cfg = model.cfg
    H, W = (int(v) for v in args.grid.split(","))
    B, T = args.batch, args.frames
    batch = random_batch(cfg, B, T, (H, W), device=device)
    chunks = refiner_chunks(T, 3, 1)
    n = len(chunks) - 1
    picks = sorted({round(i * (n - 1) / max(args.blocks - 1, 1)) for i in range(args.blocks)})
    rows = []
    for j in picks:  # the last pick is the last block: the whole clip
        rows.append({"block": j, "cut_s": step_seconds(model, batch, j, chunks, args.repeats, device)})
        print(json.dumps(rows[-1]), flush=True)
    # the cut step's cost grows with the frames up to the block's end (GDN and a windowed softmax: linearly);
    # seconds a frame, averaged over the timed blocks, give the mean over each draw of target blocks
    ends = [sum(chunks[: j + 2]) for j in range(n)]  # block j's last frame + 1: the cut clip's length
    per_frame = statistics.mean(r["cut_s"] / ends[j] for r, j in zip(rows, picks, strict=True))
    whole_s = rows[-1]["cut_s"]
    result = {"device": str(device), "frames": T, "grid": [H, W], "batch": B, "rows": rows}
    result["whole_s"] = whole_s
    for bias in (0.0, 1.0):
        w = torch.arange(1, n + 1, dtype=torch.float64) ** bias
        mean_end = float((w * torch.tensor(ends, dtype=torch.float64)).sum() / w.sum())
        result[f"cut_mean_s_bias{bias:g}"] = per_frame * mean_end
        result[f"speedup_bias{bias:g}"] = whole_s / (per_frame * mean_end)
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
