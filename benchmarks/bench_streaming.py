"""Streaming generation: speed and peak memory against video length (the network and sampler only;
no VAE or text encoder: text is a fixed random embedding, the first latent frame random).

    python benchmarks/bench_streaming.py --seconds 10 60 --timesteps 1000 960 889 727 0 --out stream.json

`--compile` puts the blocks under torch.compile, `--cuda-graphs` replays every network call as a CUDA
graph (`sanawm.model.graphs.GraphedStreamStep`); either warms up on a 10 s clip (compiling, capturing
every chunk shape) before the timed runs, which reuse the compiled code and the graphs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from sanawm.cameras import latent_camera_inputs
from sanawm.model import SanaWMTransformer, get_preset
from sanawm.model.graphs import GraphedStreamStep
from sanawm.sampling import Conditions, EulerSchedule, FewStepSchedule, Guidance, chunk_layout, sample_chunked

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def build(preset, device, dtype):
    with torch.device("meta"):
        model = SanaWMTransformer(get_preset(preset))
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            elif name.endswith("A_log"):
                p.zero_()
            elif name.endswith("dt_bias"):
                p.fill_(-4.0)
            else:
                p.normal_(0.0, 0.02, generator=g)
    return model.to(dtype).eval()


def run(
    model, seconds, height, width, schedule, guidance, device, dtype, cuda_graphs=False, keep_latents=False
):
    """One streamed clip, timed. `cuda_graphs`: as `sample_chunked`'s (pass one `GraphedStreamStep` to
    every run to keep its graphs). `keep_latents`: the result also holds the clip's latents ("latents")."""
    raw = int(16 * seconds) + 1
    T = (raw - 1) // 8 + 1
    c2w = np.tile(np.eye(4), (raw, 1, 1))
    c2w[:, 2, 3] = np.linspace(0, 0.05 * raw, raw)
    cam = latent_camera_inputs(c2w, [0.8 * width, 0.8 * width, width / 2, height / 2], (height, width))
    camera, plucker = (t.to(device, dtype) for t in cam.batched())
    cfg = model.cfg
    g = torch.Generator(device=device).manual_seed(1)
    shape = (1, cfg.in_channels, T, height // 32, width // 32)
    noise = torch.randn(shape, generator=g, device=device, dtype=dtype)
    first = noise[:, :, :1].clone()
    text = torch.randn(1, 300, cfg.caption_channels, generator=g, device=device, dtype=dtype)
    cond = Conditions(text, None, camera, plucker)
    chunks = chunk_layout(T)
    renoise_gen = torch.Generator(device=device).manual_seed(2)

    def renoise(i, step):  # seeded: every run of the same clip draws the same noise (so runs compare)
        return torch.randn((1, cfg.in_channels, chunks[i], *shape[3:]), generator=renoise_gen, device=device)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    latents = sample_chunked(
        model,
        noise,
        first,
        cond,
        chunks,
        schedule,
        guidance,
        kv_window=2,
        streaming=True,
        renoise=renoise,
        cuda_graphs=cuda_graphs,
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    row = {
        "seconds": seconds,
        "raw_frames": raw,
        "latent_frames": T,
        "chunks": len(chunks),
        "wall_s": wall,
        "realtime_factor": seconds / wall,
        "peak_gib": peak,
    }
    if keep_latents:
        row["latents"] = latents
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="sana-wm-2.6b")
    ap.add_argument("--seconds", type=float, nargs="+", default=[10, 60])
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--steps", type=int, default=4, help="Euler steps per chunk (ignored with --timesteps)")
    ap.add_argument("--timesteps", type=float, nargs="+", help="few-step schedule, e.g. 1000 960 889 727 0")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--compile", action="store_true", help="the blocks under torch.compile")
    ap.add_argument("--cuda-graphs", action="store_true", help="replay the network calls as CUDA graphs")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    model = build(args.preset, device, dtype)
    if args.compile:
        model.compile_blocks()
    graphs = GraphedStreamStep(model) if args.cuda_graphs else False
    schedule = FewStepSchedule(tuple(args.timesteps)) if args.timesteps else EulerSchedule(args.steps)
    guidance = Guidance(args.guidance)
    warm = 10 if args.compile or args.cuda_graphs else 2  # 10 s meets every chunk shape of a longer clip
    run(model, warm, args.height, args.width, schedule, guidance, device, dtype, graphs)  # warm-up
    rows = []
    for s in args.seconds:
        rows.append(run(model, s, args.height, args.width, schedule, guidance, device, dtype, graphs))
        print(json.dumps(rows[-1]), flush=True)
    print("| seconds | latent frames | chunks | wall (s) | x real time | peak (GiB) |")
    for r in rows:
        print(
            f"| {r['seconds']:g} | {r['latent_frames']} | {r['chunks']} | {r['wall_s']:.1f} | "
            f"{r['realtime_factor']:.2f} | {r['peak_gib']:.2f} |"
        )
    if args.out:
        info = {
            "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "dtype": args.dtype,
            "preset": args.preset,
            "size": [args.height, args.width],
            "schedule": repr(schedule),
            "guidance": args.guidance,
            "compile": args.compile,
            "cuda_graphs": dataclasses.asdict(graphs.stats) if graphs else None,
            "torch": torch.__version__,
            "rows": rows,
        }
        with open(args.out, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
