"""The frame-wise GDN at the 60 s 720p size: the three scans `gdn.gdn_scan` chooses among (the row kernel
`gdn_triton_rows`, "rows"; the differentiable kernels `gdn_triton`, "memory"; the PyTorch scan
`gdn_parallel`, "pytorch"), and one whole GDN attention layer on each, eager or under torch.compile.

    python benchmarks/bench_gdn.py --out bench_gdn.json [--skip scan train layer_eager layer_compiled]

Parts (each case its own try; a failure is recorded and the rest still run):
- scan: one head group of the 2.6 B network's GDN (B = 1, 20 heads, 121 frames of 22x40 = 880 tokens,
  D = Dv = 112), numerator + normaliser with an initial state, bidirectional and chunk-causal, bf16 and
  fp32 inputs; forward only. Relative L2 errors of both kernels against `gdn_parallel` in fp32, then
  times of all three.
- train: the same scan (bf16 inputs, bidirectional) forward + backward, the differentiable kernels
  against `gdn_parallel` (fp32), with the gradients' relative errors (the row kernel has no backward).
- layer: one GDN `SelfAttention` of the 2.6 B preset (feature maps, K conv, gates, scan, camera branch,
  output gate; bf16 weights) over the whole minute, forward on each path and forward + backward on
  "pytorch" and "memory"; `layer_compiled`: the same under torch.compile (feature maps fused by
  Inductor; the kernels stay outside the graph).
Times are medians of CUDA-event-timed repeats after a warm-up call.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from types import SimpleNamespace

import torch
from bench_720p import cuda_time  # a sibling script: benchmarks/ is on sys.path

from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_parallel, set_gdn_kernel, to_fp32
from sanawm.model.ops.gdn_chunk import gdn_scan_chunk
from sanawm.model.ops.gdn_triton import gdn_scan_triton
from sanawm.model.ops.gdn_triton_rows import gdn_scan_rows
from sanawm.sampling import chunk_layout

FIELDS = ("q", "k", "v", "beta", "decay", "q_den", "k_den")
CHUNK_MAX_FRAMES = 16  # the chunk scan (`gdn_chunk`) is timed up to this many frames (it loops over them)


def inputs(B, H, T, S, D, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g, device="cuda")

    k, kd = r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, D) / (D * S) ** 0.5
    x = GDNInputs(r(B, H, T, S, D), k, r(B, H, T, S, D) - 0.5, r(B, H, T, S), 0.8 + 0.2 * r(B, H, T),
                  r(B, H, T, S, D), kd)  # fmt: skip
    x = GDNInputs(*(t.to(dtype) if t.dim() == 5 else t for t in (getattr(x, f) for f in FIELDS)))
    state = GDNState(0.1 * r(B, H, D, D), 0.1 * r(B, H, D))
    return x, state


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def scan_case(B, H, T, S, D, mode, chunks, dtype, seed) -> dict:
    x, state = inputs(B, H, T, S, D, dtype, seed)
    row = {"part": "scan", "mode": mode, "inputs": str(dtype).removeprefix("torch.")}
    scans = {"rows": gdn_scan_rows, "memory": gdn_scan_triton}
    if dtype in (torch.bfloat16, torch.float16) and T <= CHUNK_MAX_FRAMES:
        scans["chunk"] = gdn_scan_chunk  # 16-bit inputs, a few frames
    with torch.no_grad():
        ref = gdn_parallel(to_fp32(x), chunks, state)
        finite = True
        for name, fn in scans.items():
            out = fn(x, chunks, state)
            row[f"rel_{name}_num"] = rel(out.num, ref.num)
            row[f"rel_{name}_den"] = rel(out.den, ref.den)
            row[f"rel_{name}_state"] = rel(out.state.num, ref.state.num)
            finite &= bool(torch.isfinite(out.num).all() and torch.isfinite(out.den).all())
            del out
        row["finite"] = finite
        del ref
        for name, fn in scans.items():
            row[f"{name}_s"] = cuda_time(lambda f=fn: f(x, chunks, state), 10)[0]
        row["pytorch_s"] = cuda_time(lambda: gdn_parallel(to_fp32(x), chunks, state), 3)[0]
    times = {name: row[f"{name}_s"] for name in (*scans, "pytorch")}
    row["fastest"] = min(times, key=times.get)
    return row


def train_case(B, H, T, S, D, seed) -> dict:
    """Forward + backward of the scan with bf16 inputs (bidirectional, with a state)."""
    x, state = inputs(B, H, T, S, D, torch.bfloat16, seed)
    leaves = [t.detach().requires_grad_() for t in (getattr(x, f) for f in FIELDS)]
    xg = GDNInputs(*leaves)
    g = torch.Generator(device="cuda").manual_seed(seed + 1)
    w_num = torch.randn(B, H, T, S, D, generator=g, device="cuda")
    w_den = torch.randn(B, H, T, S, generator=g, device="cuda")

    def step(fn):
        for t in leaves:
            t.grad = None
        out = fn()
        ((out.num * w_num).sum() + (out.den * w_den).sum()).backward()

    def kernel():
        return gdn_scan_triton(xg, None, state)

    def pytorch():
        return gdn_parallel(to_fp32(xg), None, state)

    step(pytorch)
    ref = [t.grad.float().clone() for t in leaves]
    step(kernel)
    row = {"part": "train", "mode": "bidirectional", "inputs": "bfloat16"}
    for name, t, r in zip(FIELDS, leaves, ref, strict=True):
        row[f"rel_d{name}"] = rel(t.grad, r)
    del ref
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    row["memory_s"] = cuda_time(lambda: step(kernel), 5)[0]
    row["memory_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    row["pytorch_s"] = cuda_time(lambda: step(pytorch), 3)[0]
    row["pytorch_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    row["fastest"] = "memory" if row["memory_s"] < row["pytorch_s"] else "pytorch"
    return row


def gdn_layer(seconds: int):
    """One GDN SelfAttention of the 2.6 B preset (bf16, random weights) with its input and context."""
    from bench_model import inputs as model_inputs

    from sanawm.model.attention import SelfAttention
    from sanawm.model.config import get_preset
    from sanawm.model.ops.rope import angle_table
    from sanawm.model.transformer import SanaWMTransformer

    cfg = get_preset("sana-wm-2.6b")
    torch.manual_seed(0)
    attn = SelfAttention(cfg.hidden_size, cfg.linear_head_dim, "gdn", cfg.conv_kernel_size, cfg.qk_norm,
                         cfg.norm_eps, cfg.gdn_eps)  # fmt: skip
    attn.reset_parameters()
    with torch.no_grad():  # a live camera branch, so the layer does all its work
        attn.out_proj_cam.weight.normal_(0, 0.02)
    attn = attn.to("cuda", torch.bfloat16)
    _, lat, _, _, _, camera, _ = model_inputs(cfg, seconds, 704, 1280, torch.device("cuda"), torch.bfloat16)
    T, Hl, Wl = lat.shape[2:]
    proxy = SimpleNamespace(
        cfg=cfg, _rope_table=angle_table(cfg.linear_head_dim, cfg.rope_max_len, cfg.rope_theta)
    )
    ropes = SanaWMTransformer._ropes(proxy, (T, Hl, Wl), 0, lat.device)
    ctx = SanaWMTransformer._context(proxy, (T, Hl, Wl), 0, camera, None, None, None, lat.device, None, ropes)
    x = torch.randn(1, T * Hl * Wl, cfg.hidden_size, device="cuda", dtype=torch.bfloat16)
    return attn, ctx, x


def layer_case(attn, ctx, x, path: str, compiled: bool, backward: bool) -> dict:
    set_gdn_kernel(path)
    name = f"layer_{'fwd_bwd' if backward else 'fwd'}_{path}_{'compiled' if compiled else 'eager'}"
    fn = torch.compile(attn) if compiled else attn
    if compiled:
        torch._dynamo.reset()
    xg = x.detach().requires_grad_(backward)

    def call():
        if backward:
            attn.zero_grad(set_to_none=True)
            fn(xg, ctx)[0].float().square().mean().backward()
        else:
            with torch.no_grad():
                fn(xg, ctx)

    start = time.time()
    call()  # the first call compiles
    first = time.time() - start
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(call, 3)[0]
    return {"part": "layer", "case": name, "path": path, "seconds": seconds, "first_call_s": first,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30}  # fmt: skip


def guarded(rows, name, fn, save):
    try:
        row = fn()
    except torch.OutOfMemoryError as e:
        row = {"case": name, "error": "out of memory", "detail": str(e).splitlines()[0]}
    except Exception as e:  # noqa: BLE001 - a failed case is recorded; the others still run
        row = {"case": name, "error": type(e).__name__, "detail": traceback.format_exc()[-2000:]}
    finally:
        torch.cuda.empty_cache()
    row.setdefault("case", name)
    rows.append(row)
    print(json.dumps({k: v for k, v in row.items() if k != "detail"}), flush=True)
    if "detail" in row:
        print(row["detail"], flush=True)
    save()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--heads", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=60, help="clip length of the layer part")
    ap.add_argument(
        "--skip", nargs="*", default=[], choices=["scan", "train", "layer_eager", "layer_compiled"]
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    B, H, T, S, D = 1, args.heads, args.frames, 880, 112
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "shape": [B, H, T, S, D]}
    rows = result["rows"] = []

    def save():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)

    if "scan" not in args.skip:
        for mode, chunks in (("bidirectional", None), ("chunk_causal", chunk_layout(T))):
            for dtype in (torch.bfloat16, torch.float32):
                name = f"scan_{mode}_{str(dtype).removeprefix('torch.')}"
                guarded(
                    rows,
                    name,
                    lambda m=mode, c=chunks, d=dtype: scan_case(B, H, T, S, D, m, c, d, len(rows)),
                    save,
                )
    if "train" not in args.skip:
        guarded(rows, "train_bidirectional_bf16", lambda: train_case(B, H, T, S, D, 11), save)
    # (path, compiled, backward): forward on every path, forward + backward on those with a backward;
    # eager first, then compiled (forward cases first: the PyTorch layer's first compile took 97 s)
    variants = []
    for compiled in (False, True):
        if ("layer_compiled" if compiled else "layer_eager") not in args.skip:
            variants += [(p, compiled, False) for p in ("pytorch", "rows", "memory")]
            variants += [(p, compiled, True) for p in ("pytorch", "memory")]
    if variants:
        try:
            attn, ctx, x = gdn_layer(args.seconds)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            attn = None
        for path, compiled, backward in variants if attn is not None else []:
            name = f"layer_{backward}_{path}_{compiled}"
            guarded(
                rows,
                name,
                lambda p=path, c=compiled, b=backward: layer_case(attn, ctx, x, p, c, b),
                save,
            )
        set_gdn_kernel(None)
    save()
    summarise(rows)
    return 0


def summarise(rows) -> None:
    print(
        "\n| case | rows kernel (ms) | memory kernels (ms) | chunk scan (ms) | PyTorch scan (ms) | fastest "
        "| max rel. error |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r.get("part") in ("scan", "train"):
            err = max(v for k, v in r.items() if k.startswith("rel_"))
            ms = {
                p: f"{1e3 * r[p + '_s']:.2f}" if p + "_s" in r else "-"
                for p in ("rows", "memory", "chunk", "pytorch")
            }
            print(
                f"| {r['case']} | {ms['rows']} | {ms['memory']} | {ms['chunk']} | {ms['pytorch']} "
                f"| {r['fastest']} | {err:.1e} |"
            )
        elif "error" in r:
            print(f"| {r['case']} | {r['error']} | | | | | |")
    print("\n| GDN layer, 60 s | ms | first call (s) | peak GiB |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        if r.get("part") == "layer":
            print(
                f"| {r['case']} | {1e3 * r['seconds']:.1f} | {r['first_call_s']:.1f} | {r['peak_gib']:.1f} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
