"""The 60-second 720p benchmark of the full `sana-wm-2.6b` preset on one GPU (random weights, bf16):

    python benchmarks/bench_720p.py --out bench_720p.json [--profile profile.txt] [--skip reference vae]

Cases (each its own try: an out-of-memory case is recorded as such and the rest still run):
- peaks: a large bf16 matrix product and a FlashAttention-sized SDPA call, measured on this card; the
  floor of each network case is its matmul FLOPs over the first plus its attention FLOPs over the second.
- bidirectional: one network evaluation over the whole minute, 121 latent frames x 22x40 tokens
  (106,480 tokens), 300 text tokens, camera + Plücker inputs; ours, then the same network with all 20
  blocks softmax, then diffusers' `SanaWMTransformer3DModel` holding the same weights.
- streaming: the whole 60 s chunk-causal rollout at 4 steps (1000, 960, 889, 727, 0; no guidance),
  chunks of 3 latent frames (first 4), softmax KV window sink + 2 chunks, plus the σ = 0 pass per chunk
  that records the cache; with `--compile` also under torch.compile; with `--stream-graphs` also with
  every network call replayed as a CUDA graph (`GraphedStreamStep`), the blocks eager or compiled. Each
  rollout after the eager one reports its difference to the eager latents (max |Δ| / max |eager| and
  the relative L2 norm; bf16 rollouts of 40 chunks drift apart a little without any bug), the graphed
  ones also to the compiled rollout of the same mode when that ran (the same kernels replayed).
- vae_decode: diffusers' `AutoencoderKLLTX2Video` (default config, random weights, bf16) decoding the
  121 x 22 x 40 latents to 961 frames of 704x1280 with tiling.

Times are medians of CUDA-event-timed repeats after a warm-up call; FLOPs come from
`torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, SDPA) over one call.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import time
import traceback

import torch
from bench_model import (
    inputs,
    random_ours,
    random_reference,
    reference_call,
)  # sibling scripts: benchmarks/ is on sys.path
from bench_streaming import run as stream_run

from sanawm.model.config import get_preset
from sanawm.model.diffusers_compat import from_diffusers
from sanawm.model.graphs import GraphedStreamStep
from sanawm.sampling import FewStepSchedule, Guidance

DISTILLED = (1000.0, 960.0, 889.0, 727.0, 0.0)


def cuda_time(fn, repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median seconds of `fn` over `repeats` event-timed calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), times


def reset_peak() -> None:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def count_flops(fn) -> dict[str, float]:
    """Total FLOPs of one call, and the part in scaled-dot-product attention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    per_op = {str(op): n for op, n in counter.get_flop_counts().get("Global", {}).items()}
    attention = sum(n for op, n in per_op.items() if "attention" in op)
    return {"total": float(counter.get_total_flops()), "attention": float(attention), "per_op": per_op}


def measure_peaks(device) -> dict:
    n = 8192
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    t, _ = cuda_time(lambda: a @ b, 20, 3)
    q, k, v = (torch.randn(1, 20, 16384, 128, device=device, dtype=torch.bfloat16) for _ in range(3))
    f = torch.nn.functional.scaled_dot_product_attention
    ta, _ = cuda_time(lambda: f(q, k, v), 10, 2)
    attn_flops = 4 * 20 * 16384 * 16384 * 128
    return {"matmul_tflops": 2 * n**3 / t / 1e12, "attention_tflops": attn_flops / ta / 1e12}


def floor_seconds(fl: dict, peaks: dict) -> float:
    """The time `count_flops`'s FLOPs need at the measured peaks: matmuls at the matmul rate, attention at
    the SDPA rate."""
    matmul = fl["total"] - fl["attention"]
    return matmul / (peaks["matmul_tflops"] * 1e12) + fl["attention"] / (peaks["attention_tflops"] * 1e12)


def network_case(name, model_call, repeats, peaks, flops=True) -> dict:
    row = {"case": name}
    with torch.inference_mode():
        if flops:
            fl = count_flops(model_call)
            row["flops"], row["attention_flops"] = fl["total"], fl["attention"]
            row["floor_s"] = floor_seconds(fl, peaks)
        reset_peak()
        row["seconds"], row["all_seconds"] = cuda_time(model_call, repeats)
        row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if flops:
        row["achieved_tflops"] = row["flops"] / row["seconds"] / 1e12
        row["fraction_of_matmul_peak"] = row["achieved_tflops"] / peaks["matmul_tflops"]
        row["time_over_floor"] = row["seconds"] / row["floor_s"]
    return row


def guarded(rows, name, fn):
    try:
        rows.append(fn())
    except torch.OutOfMemoryError as e:
        rows.append({"case": name, "error": "out of memory", "detail": str(e).splitlines()[0]})
    except Exception as e:  # noqa: BLE001 - a failed case is recorded; the others still run
        rows.append({"case": name, "error": type(e).__name__, "detail": traceback.format_exc()[-2000:]})
    finally:
        torch.cuda.empty_cache()
    print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("all_seconds", "detail")}), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--height", type=int, default=704)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=["bidirectional", "softmax", "reference", "streaming", "vae"]
    )
    ap.add_argument(
        "--compile",
        nargs="*",
        choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"],
        help="also time the streaming rollout with the blocks under torch.compile in these modes",
    )
    ap.add_argument(
        "--stream-graphs",
        nargs="+",
        choices=["eager", "default", "max-autotune-no-cudagraphs"],
        help="also time the streaming rollout with every network call replayed as a CUDA graph, the blocks "
        "eager or under torch.compile in these modes (graphs captured on a 10 s warm-up rollout)",
    )
    ap.add_argument(
        "--gdn-baseline",
        action="store_true",
        help="also time the bidirectional evaluation with the GDN on the PyTorch scan "
        "(SANAWM_GDN_KERNEL=pytorch; the default runs bf16 inference on the row kernel)",
    )
    ap.add_argument(
        "--compile-bidirectional",
        nargs="*",
        choices=["auto", "pytorch"],
        help="also time the bidirectional evaluation with the blocks under torch.compile (default mode), "
        "with the GDN on these paths (auto: the row kernel, a graph break; pytorch: the scan inside the "
        "graph, fused with the feature maps); last, since compiling takes minutes",
    )
    ap.add_argument("--profile", help="write the top CUDA kernels of one bidirectional call here")
    ap.add_argument(
        "--profile-stream",
        help="write the top CUDA kernels of a warm 10 s eager streaming rollout here (4 steps + cache pass a "
        "chunk), with its wall time against the GPU's busy time: where a streamed call's time goes",
    )
    ap.add_argument(
        "--profile-stream-compiled",
        help="the same profile with every block under torch.compile (default mode; compiles first: slow)",
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("bench_720p.py needs a CUDA GPU")
    device, dtype = torch.device("cuda"), torch.bfloat16
    cfg = get_preset("sana-wm-2.6b")
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": []}
    rows = result["cases"]
    result["peaks"] = peaks = measure_peaks(device)
    print(json.dumps(peaks), flush=True)

    if "reference" in args.skip:  # no diffusers needed (the VAE case still imports it)
        models = {"ours": random_ours(cfg, device, dtype)}
    else:
        models = {"reference": random_reference(cfg, device, dtype)}
        models["ours"] = from_diffusers(models["reference"]).eval()  # the same weights
    raw, lat, ts, text, mask, cam, pl = inputs(cfg, args.seconds, args.height, args.width, device, dtype)
    result["tokens"] = lat.shape[2] * lat.shape[3] * lat.shape[4]
    result["latent_frames"] = lat.shape[2]

    def call_ours():
        return models["ours"](lat, ts, text, mask, cam, pl)

    def call_reference():
        return reference_call(models["reference"], lat, ts, text, mask, cam, pl)

    def call_softmax():
        return models["softmax"](lat, ts, text, mask, cam, pl)

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)

    def case(name, fn):
        guarded(rows, name, fn)
        save()  # after every case: a run cut short keeps what it measured

    if "bidirectional" not in args.skip:  # e.g. a profile-only run (device_kernels.sh's profile_stream part)
        case("ours_bidirectional", lambda: network_case("ours_bidirectional", call_ours, args.repeats, peaks))
    if args.gdn_baseline:
        case("ours_bidirectional_pytorch_gdn", lambda: without_gdn_kernel(call_ours, args.repeats, peaks))
    if args.profile:
        case("profile", lambda: profile(call_ours, args.profile))
    if "reference" in models:
        case(
            "reference_bidirectional",
            lambda: network_case("reference_bidirectional", call_reference, 2, peaks),
        )
        models.pop("reference")
    if "softmax" not in args.skip:
        models["softmax"] = all_softmax(models["ours"])
        case(
            "all_softmax_bidirectional",
            lambda: network_case("all_softmax_bidirectional", call_softmax, 2, peaks),
        )
        models.pop("softmax")
    stream_latents: dict[str, torch.Tensor] = {}  # each rollout's latents, to compare with the eager one
    if "streaming" not in args.skip:
        case("streaming_4step", lambda: streaming_case(models["ours"], args, latents=stream_latents))
        if "eager" in (args.stream_graphs or []):  # before any compile: the blocks stay compiled after
            case(
                "streaming_4step_graphs",
                lambda: streaming_case(models["ours"], args, graphs=True, latents=stream_latents),
            )
    if args.profile_stream:
        case("profile_stream", lambda: profile_stream(models["ours"], args, args.profile_stream, peaks))
    if args.profile_stream_compiled:  # compiles the blocks (they stay compiled): after the eager cases
        out = args.profile_stream_compiled
        case(
            "profile_stream_compiled_default",
            lambda: profile_stream(models["ours"], args, out, peaks, compile_mode="default"),
        )
    if "vae" not in args.skip:
        case("vae_decode", lambda: vae_case(lat, device, dtype))
    summarise(result)
    save()
    for mode in (args.compile or []) if "streaming" not in args.skip else []:  # last: compiling takes minutes
        case(
            f"streaming_4step_compiled_{mode}",
            lambda m=mode: streaming_case(models["ours"], args, compile_mode=m, latents=stream_latents),
        )
    graphed = [m for m in args.stream_graphs or [] if m != "eager"] if "streaming" not in args.skip else []
    for mode in graphed:
        case(
            f"streaming_4step_compiled_{mode}_graphs",
            lambda m=mode: streaming_case(
                models["ours"], args, compile_mode=m, graphs=True, latents=stream_latents
            ),
        )
    for path in args.compile_bidirectional or []:
        case(
            f"ours_bidirectional_compiled_{path}",
            lambda p=path: compiled_bidirectional(models["ours"], call_ours, p, args.repeats, peaks),
        )
    summarise(result)
    save()
    return 0


def compiled_bidirectional(ours, call, path, repeats, peaks) -> dict:
    """The bidirectional case with every block under torch.compile and the GDN on `path` (the choice is
    traced into the graph, so each path compiles afresh); the first call's time is the compile."""
    import torch._dynamo

    torch._dynamo.reset()
    os.environ["SANAWM_GDN_KERNEL"] = path
    try:
        ours.compile_blocks()
        t0 = time.perf_counter()
        with torch.inference_mode():
            call()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        row = network_case(f"ours_bidirectional_compiled_{path}", call, repeats, peaks, flops=False)
        row["first_call_s"] = first
        return row
    finally:
        os.environ.pop("SANAWM_GDN_KERNEL")
        for block in ours.blocks:  # back to eager for anything after
            block._compiled_call_impl = None


def without_gdn_kernel(call, repeats, peaks) -> dict:
    """The bidirectional case with the GDN on the PyTorch scan instead of the Triton kernels."""
    os.environ["SANAWM_GDN_KERNEL"] = "pytorch"
    try:
        return network_case("ours_bidirectional_pytorch_gdn", call, repeats, peaks, flops=False)
    finally:
        os.environ.pop("SANAWM_GDN_KERNEL")


def all_softmax(ours):
    """The same weights in a network whose 20 blocks are all softmax (softmax blocks use the GDN blocks'
    projections and norms, so the state dict loads key for key; the GDN-only gates are left out)."""
    from sanawm.model import SanaWMTransformer

    cfg = dataclasses.replace(ours.cfg, softmax_every_n=1)
    with torch.device("meta"):
        soft = SanaWMTransformer(cfg)
    missing = soft.load_state_dict(ours.state_dict(), assign=True, strict=False).missing_keys
    if missing:
        raise RuntimeError(f"all-softmax network lacks weights for {missing[:5]}")
    return soft.eval()


def compile_afresh(ours, mode: str) -> None:
    """Every block under torch.compile in `mode` ("default" or a torch.compile mode), after dropping what
    dynamo compiled before (an earlier case's graphs, another mode's)."""
    torch._dynamo.reset()
    ours.compile_blocks(None if mode == "default" else mode)


def streaming_case(
    ours, args, compile_mode: str | None = None, graphs: bool = False, latents: dict | None = None
) -> dict:
    """The 60 s rollout; with `compile_mode`, every block's forward under torch.compile in that mode (the
    sampler, the state bookkeeping and the per-chunk Python stay eager); with `graphs`, every network call
    replayed as a CUDA graph (one `GraphedStreamStep` for both rollouts). Either way a 10 s rollout runs
    first (compiling, capturing every chunk shape) and its time is reported as `warmup_s`. `latents`: the
    rollouts' latents by case, to which this one's are added and compared (see the module docstring)."""
    compiled = compile_mode is not None
    if compiled:
        compile_afresh(ours, compile_mode)
    name = f"streaming_4step_compiled_{compile_mode}" if compiled else "streaming_4step"
    name += "_graphs" if graphs else ""
    step = GraphedStreamStep(ours) if graphs else False
    schedule, guidance = FewStepSchedule(DISTILLED), Guidance(1.0)
    device, dtype = torch.device("cuda"), torch.bfloat16
    size = (args.height, args.width)
    warmup_s = None
    with torch.inference_mode():
        if compiled or graphs:
            warmup_s = stream_run(ours, 10, *size, schedule, guidance, device, dtype, step)["wall_s"]
        r = stream_run(ours, args.seconds, *size, schedule, guidance, device, dtype, step, keep_latents=True)
    row = {
        "case": name,
        "seconds": r["wall_s"],
        "peak_gib": r["peak_gib"],
        "chunks": r["chunks"],
        "network_evaluations": 5 * r["chunks"],
        "realtime_factor": r["realtime_factor"],
    }
    if warmup_s is not None:
        row["warmup_s"] = warmup_s
    if graphs:
        row["graphs"] = dataclasses.asdict(step.stats)
        step.clear()
    if latents is not None:
        compare = {"streaming_4step": "vs_eager"}
        if graphs:
            compare.setdefault(name.removesuffix("_graphs"), "vs_without_graphs")
        for case_name, key in compare.items():
            if case_name in latents and case_name != name:
                row[key] = latent_difference(r["latents"], latents[case_name])
        latents[name] = r["latents"]
    return row


def latent_difference(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """max |a - b| / max |b| and ||a - b|| / ||b|| (in fp32)."""
    a, b = a.float(), b.float()
    return {
        "max_rel": ((a - b).abs().max() / b.abs().max()).item(),
        "rel_l2": ((a - b).norm() / b.norm()).item(),
    }


def vae_case(lat, device, dtype) -> dict:
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(3)
    # The default config with its true compression (32x space, 8x time: the decoder has 3 up-blocks and a
    # 4x patch); the ratios derived from the encoder's 4 scaling flags (64 / 16) would break the tiling.
    vae = AutoencoderKLLTX2Video(spatial_compression_ratio=32, temporal_compression_ratio=8)
    vae = vae.to(device, dtype).eval()  # PyTorch's random init
    # Temporal tiles of 9 latent frames (65 raw) every 7, spatial tiles of 704x768 every 640 px: every tile
    # is large (diffusers' 512/448 defaults leave 8-latent-wide remainder tiles) and overlaps are blended.
    vae.enable_tiling(
        tile_sample_min_height=704,
        tile_sample_min_width=768,
        tile_sample_min_num_frames=64,
        tile_sample_stride_height=704,
        tile_sample_stride_width=640,
        tile_sample_stride_num_frames=56,
    )
    vae.use_framewise_decoding = True
    z = lat.to(dtype)
    if z.shape[1] != vae.config.latent_channels:
        raise ValueError(f"latents have {z.shape[1]} channels, the VAE {vae.config.latent_channels}")

    with torch.inference_mode():
        vae.decode(z[:, :, :9], return_dict=False)  # warm-up on one temporal tile
        reset_peak()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = vae.decode(z, return_dict=False)[0]  # one timed decode: it takes tens of seconds
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1e3
        peak = torch.cuda.max_memory_allocated() / 2**30
    return {
        "case": "vae_decode",
        "seconds": seconds,
        "peak_gib": peak,
        "frames": int(out.shape[2]),
        "size": list(out.shape[3:]),
        "finite": bool(torch.isfinite(out).all()),
    }


def profile(fn, path) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch.inference_mode():
        fn()
        with torch_profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
            fn()
            torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=40)
    with open(path, "w") as f:
        f.write(table)
    return {"case": "profile", "written": path}


def profile_stream(
    ours, args, path, peaks: dict | None = None, seconds: float = 10.0, compile_mode: str | None = None
) -> dict:
    """Profile a warm streaming rollout of `seconds` (eager, or with every block under torch.compile in
    `compile_mode`): the kernels by GPU time, and the GPU's busy time (the sum of kernel times) against the
    wall time. Busy time near the wall time means the stream is GPU-bound (faster kernels help); far below
    it, launch- or host-bound (graphs help). For an eager rollout a second profiled run wraps each part of
    each block (`module_ranges`) in a profiler range and adds a table of the parts by the GPU time of
    their kernels: where the copies, products and concatenations come from. With `peaks`
    (`measure_peaks`), also the rollout's FLOPs and its floor (matmul FLOPs at the matmul peak plus
    attention FLOPs at the attention peak), per network call, as for the bidirectional case."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    if compile_mode is not None:
        compile_afresh(ours, compile_mode)
    schedule, guidance = FewStepSchedule(DISTILLED), Guidance(1.0)
    weight = next(ours.parameters())
    device, dtype = weight.device, weight.dtype
    run = lambda: stream_run(ours, seconds, args.height, args.width, schedule, guidance, device, dtype, False)  # noqa: E731
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode():
        run()  # warm: the Triton kernels' first calls, the allocator (and compiling, if asked)
        with torch_profile(activities=activities) as prof:
            r = run()
            if device.type == "cuda":
                torch.cuda.synchronize()
        ranges = None
        if compile_mode is None:  # hooks in compiled blocks would break their graphs
            with module_ranges(ours), torch_profile(activities=activities) as ranged:  # not timed
                run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
            # the CPU-side ranges (their device time: their kernels'), not Kineto's GPU-side copies of them
            cpu = torch.autograd.DeviceType.CPU
            ranges = [
                e for e in ranged.key_averages() if e.device_type == cpu and e.key.startswith(RANGE_PREFIX)
            ]
    averages = prof.key_averages()
    kernels = [e for e in averages if e.device_type == torch.autograd.DeviceType.CUDA]
    busy_s = sum(e.self_device_time_total for e in kernels) / 1e6
    calls = 5 * r["chunks"]
    row = {
        "case": "profile_stream" if compile_mode is None else f"profile_stream_compiled_{compile_mode}",
        "written": path,
        "wall_s": r["wall_s"],
        "gpu_busy_s": busy_s,
        "network_calls": calls,
        "kernel_launches": sum(e.count for e in kernels),
    }
    how = "eager" if compile_mode is None else f"compiled ({compile_mode})"
    head = (
        f"{seconds:g} s {how} streaming rollout: {r['chunks']} chunks, {calls} network calls, wall "
        f"{r['wall_s']:.2f} s (profiled), GPU busy {busy_s:.2f} s, {1e3 * busy_s / calls:.1f} ms of kernels "
        f"a call, {row['kernel_launches']} kernel launches\n"
    )
    if peaks is not None:
        with torch.inference_mode():
            fl = count_flops(run)
        total, attention, floor = fl["total"], fl["attention"], floor_seconds(fl, peaks)
        row.update(flops=total, attention_flops=attention, floor_s=floor)
        head += (
            f"{total / calls / 1e12:.1f} TFLOP a call ({attention / calls / 1e12:.2f} in attention): floor "
            f"{1e3 * floor / calls:.1f} ms a call at the measured peaks; GPU busy {busy_s / floor:.1f}x it\n"
        )
    sort = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    with open(path, "w") as f:
        f.write(head + "\n" + averages.table(sort_by=sort, row_limit=60))
        if ranges is not None:
            f.write("\n\n" + ranges_table(ranges, calls, device.type == "cuda"))
    if ranges is not None:
        row["parts_ms_a_call"] = {
            e.key.removeprefix(RANGE_PREFIX): round(range_time(e, device.type == "cuda") / calls / 1e3, 3)
            for e in ranges
        }
    return row


RANGE_PREFIX = "sanawm:"


@contextlib.contextmanager
def module_ranges(model):
    """Profiler ranges around the network's parts while the context lasts (forward hooks, removed on
    exit): each block whole and its attention (by kind: gdn or softmax), camera
    projection, cross-attention, MLP and norms, the embedders and the final layer. Equal parts of
    different blocks share a name, so a table sums them over the network; a block's time outside its
    parts is its own glue (modulation, residuals, reshapes)."""
    from torch.profiler import record_function

    handles, open_ranges = [], {}

    def name_of(path: str) -> str | None:
        parts = path.split(".")
        if parts[0] == "blocks" and len(parts) in (2, 3):
            kind = model.blocks[int(parts[1])].kind
            return f"{RANGE_PREFIX}{kind} block" + (f": {parts[2]}" if len(parts) == 3 else " (whole)")
        if len(parts) == 1 and parts[0] != "blocks":
            return f"{RANGE_PREFIX}{parts[0]}"
        return None

    for path, module in model.named_modules():
        label = name_of(path)
        if label is None:
            continue

        def enter(mod, args, label=label):
            scope = record_function(label)
            scope.__enter__()
            open_ranges.setdefault(id(mod), []).append(scope)

        def leave(mod, args, out):
            open_ranges[id(mod)].pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def range_time(event, cuda: bool) -> float:
    """Microseconds inside a profiler range: its kernels' GPU time on CUDA, else its CPU time."""
    return event.device_time_total if cuda else event.cpu_time_total


def ranges_table(ranges, calls: int, cuda: bool) -> str:
    what = "GPU time of their kernels" if cuda else "CPU time"
    # the top-level parts (whole blocks, embedders, final layer) add up to the network's forward
    total = sum(range_time(e, cuda) for e in ranges if ": " not in e.key) or 1.0
    lines = [
        f"The network's parts by {what}, summed over blocks (ms a network call; share of the top-level "
        "parts' sum: whole blocks, embedders, final layer):",
        "",
        "| part | ms a call | share | calls a network call |",
        "| --- | --- | --- | --- |",
    ]
    for e in sorted(ranges, key=lambda e: -range_time(e, cuda)):
        t = range_time(e, cuda)
        name = e.key.removeprefix(RANGE_PREFIX)
        lines.append(f"| {name} | {t / calls / 1e3:.3f} | {100 * t / total:.1f}% | {e.count / calls:g} |")
    return "\n".join(lines) + "\n"


def summarise(result) -> None:
    rows = {r["case"]: r for r in result["cases"]}
    ours, ref = rows.get("ours_bidirectional", {}), rows.get("reference_bidirectional", {})
    if "seconds" in ours and "seconds" in ref:
        result["speedup_vs_reference"] = ref["seconds"] / ours["seconds"]
    stream, vae = rows.get("streaming_4step", {}), rows.get("vae_decode", {})
    if "seconds" in stream and "seconds" in vae:
        result["end_to_end_streaming_s"] = stream["seconds"] + vae["seconds"]
        result["end_to_end_realtime_factor"] = 60.0 / result["end_to_end_streaming_s"]
    print("| case | seconds | peak GiB | TFLOP | achieved TFLOP/s | × floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in result["cases"]:
        if "error" in r:
            print(f"| {r['case']} | {r['error']} | | | | |")
            continue
        if "seconds" not in r:
            continue
        cells = ["", "", ""]
        if "flops" in r:
            cells = [f"{r['flops'] / 1e12:.0f}", f"{r['achieved_tflops']:.0f}", f"{r['time_over_floor']:.2f}"]
        print(
            f"| {r['case']} | {r['seconds']:.3f} | {r.get('peak_gib', float('nan')):.1f} | "
            + " | ".join(cells)
            + " |"
        )
    if "seconds" in ours and "seconds" in rows.get("ours_bidirectional_pytorch_gdn", {}):
        result["gdn_kernel_speedup"] = rows["ours_bidirectional_pytorch_gdn"]["seconds"] / ours["seconds"]
    for k in (
        "gdn_kernel_speedup",
        "speedup_vs_reference",
        "end_to_end_streaming_s",
        "end_to_end_realtime_factor",
    ):
        if k in result:
            print(f"{k}: {result[k]:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
