"""Time the generator network against the public reference (diffusers' SanaWMTransformer3DModel).

Both networks hold the same random weights (ours loads the reference's state dict), see the same
inputs, and run one denoiser forward at a time. Prints a table and writes JSON.

    python benchmarks/bench_model.py --seconds 5 10 --out results.json           # GPU, bf16
    python benchmarks/bench_model.py --preset sana-wm-tiny --device cpu --dtype fp32 --height 64 --width 96
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sanawm.cameras import latent_camera_inputs
from sanawm.model.config import get_preset
from sanawm.model.diffusers_compat import from_diffusers

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@torch.no_grad()
def random_reference(cfg, device, dtype, seed=0):
    from diffusers import SanaWMTransformer3DModel

    with torch.device("meta"):
        ref = SanaWMTransformer3DModel(**cfg.to_diffusers_config())
    ref = ref.to_empty(device=device).eval()
    ref.rope = type(ref.rope)(
        cfg.linear_head_dim, cfg.patch_size, cfg.rope_max_len
    )  # its table is not a buffer
    return _fill_random(ref, device, seed).to(dtype)


@torch.no_grad()
def random_ours(cfg, device, dtype, seed=0):
    """Our network with random weights drawn by `random_reference`'s rule (not the same values: the
    parameters come in another order), without importing diffusers."""
    from sanawm.model import SanaWMTransformer

    with torch.device("meta"):
        ours = SanaWMTransformer(cfg)
    ours = ours.to_empty(device=device).eval()
    return _fill_random(ours, device, seed).to(dtype)


def _fill_random(model, device, seed):
    g = torch.Generator(device=device).manual_seed(seed)
    for name, p in model.named_parameters():
        if "norm" in name:
            p.fill_(1.0)
        elif name.endswith("A_log"):
            p.copy_(torch.empty_like(p).uniform_(1, 16, generator=g).log())
        elif name.endswith("dt_bias"):
            p.fill_(-4.0)
        else:
            p.normal_(0.0, 0.02, generator=g)
    for b in model.buffers():
        b.zero_()
    return model


def inputs(cfg, seconds, height, width, device, dtype, text_len=300):
    raw = 16 * seconds + 1  # 16 fps; 8k+1 frames for the VAE
    T = (raw - 1) // 8 + 1
    Hl, Wl = height // 32, width // 32
    import numpy as np

    c2w = np.tile(np.eye(4), (raw, 1, 1))
    yaw = np.linspace(0, 0.6, raw)
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = (
        np.cos(yaw),
        np.sin(yaw),
        -np.sin(yaw),
        np.cos(yaw),
    )
    c2w[:, 2, 3] = np.linspace(0, 3, raw)
    cam = latent_camera_inputs(c2w, [0.8 * width, 0.8 * width, width / 2, height / 2], (height, width))
    camera, plucker = (t.to(device, dtype) for t in cam.batched())
    g = torch.Generator(device=device).manual_seed(1)
    latents = torch.randn(1, cfg.in_channels, T, Hl, Wl, generator=g, device=device, dtype=dtype)
    timestep = torch.full((1, T), 700.0, device=device)
    timestep[:, 0] = 0
    text = torch.randn(1, text_len, cfg.caption_channels, generator=g, device=device, dtype=dtype)
    mask = torch.ones(1, text_len, dtype=torch.bool, device=device)
    return raw, latents, timestep, text, mask, camera, plucker


def reference_call(ref, lat, ts, text, mask, camera, plucker):
    """diffusers' SanaWMTransformer3DModel on our inputs (it takes per-frame timesteps and text with an
    extra axis, and names the camera inputs differently)."""
    return ref(
        lat,
        ts[:, None],
        text[:, None],
        encoder_attention_mask=mask,
        camera_conditions=camera,
        chunk_plucker=plucker,
    ).sample


def timed(fn, device, repeats):
    fn()  # warm-up
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return out, min(times), peak


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="sana-wm-2.6b")
    ap.add_argument("--seconds", type=int, nargs="+", default=[5])
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-reference", action="store_true", help="time only our network")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    cfg = get_preset(args.preset)
    ref = random_reference(cfg, device, dtype)
    ours = from_diffusers(ref).eval()  # a copy of the same weights
    rows = []
    for seconds in args.seconds:
        rows.append(measure(ours, None if args.no_reference else ref, cfg, seconds, args, device, dtype))
        print(json.dumps(rows[-1]), flush=True)
    header = [
        "seconds",
        "latent_frames",
        "tokens",
        "ours_bidirectional_s",
        "reference_s",
        "speedup",
        "ours_chunk_causal_s",
        "ours_stream_step_s",
        "ours_peak_gib",
        "reference_peak_gib",
        "rel_diff_vs_reference",
    ]
    print("| " + " | ".join(header) + " |")
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(h)) for h in header) + " |")
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "dtype": args.dtype,
        "preset": args.preset,
        "size": [args.height, args.width],
        "torch": torch.__version__,
        "rows": rows,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


@torch.inference_mode()
def measure(ours, ref, cfg, seconds, args, device, dtype) -> dict:
    raw, lat, ts, text, mask, cam, pl = inputs(cfg, seconds, args.height, args.width, device, dtype)
    T = lat.shape[2]
    row = {
        "seconds": seconds,
        "raw_frames": raw,
        "latent_frames": T,
        "tokens": T * lat.shape[3] * lat.shape[4],
    }
    out, row["ours_bidirectional_s"], row["ours_peak_gib"] = timed(
        lambda: ours(lat, ts, text, mask, cam, pl), device, args.repeats
    )
    chunks = [1] + [3] * ((T - 1) // 3) + ([(T - 1) % 3] if (T - 1) % 3 else [])
    _, row["ours_chunk_causal_s"], _ = timed(
        lambda: ours(lat, ts, text, mask, cam, pl, chunks=chunks, kv_window=2), device, args.repeats
    )
    row["ours_stream_step_s"] = stream_step_time(ours, lat, ts, text, mask, cam, pl, chunks, device)
    if ref is not None:
        expected, row["reference_s"], row["reference_peak_gib"] = timed(
            lambda: reference_call(ref, lat, ts, text, mask, cam, pl), device, args.repeats
        )
        row["speedup"] = row["reference_s"] / row["ours_bidirectional_s"]
        diff = (out.float() - expected.float()).norm() / expected.float().norm()
        row["rel_diff_vs_reference"] = diff.item()
    return row


def stream_step_time(model, lat, ts, text, mask, cam, pl, chunks, device):
    """Seconds for one streamed chunk once the state is warm (sink + 2 chunks held), mean of the rest."""
    state, start, times = model.init_stream_state(2), 0, []
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i, size in enumerate(chunks):
        sl = slice(start, start + size)
        sync()
        t0 = time.perf_counter()
        _, state = model.stream_step(lat[:, :, sl], ts[:, sl], text, state, mask, cam[:, sl], pl[:, :, sl])
        sync()
        if i >= 3 and size == 3:
            times.append(time.perf_counter() - t0)
        start += size
    return sum(times) / len(times) if times else float("nan")


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


if __name__ == "__main__":
    main()
