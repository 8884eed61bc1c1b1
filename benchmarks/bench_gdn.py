"""The frame-wise GDN scan at the 60 s 720p size: the Triton kernel against the PyTorch scan.

    python benchmarks/bench_gdn.py --out bench_gdn.json

One head group of the 2.6 B network's GDN (B = 1, 20 heads, 121 frames of 22x40 = 880 tokens, D = Dv =
112), numerator + normaliser, bidirectional and chunk-causal (chunks 4, 3, 3, ...), with an initial state.
Checks the kernel against `gdn_parallel` in fp32 (relative L2 of the numerator, normaliser and final
state) for bf16 and fp32 inputs, then times both (medians of CUDA-event-timed repeats).
"""

from __future__ import annotations

import argparse
import json

import torch
from bench_720p import cuda_time  # a sibling script: benchmarks/ is on sys.path

from sanawm.model.ops.gdn import GDNInputs, GDNState, gdn_parallel, to_fp32
from sanawm.model.ops.gdn_triton import gdn_scan_triton
from sanawm.sampling import chunk_layout


def inputs(B, H, T, S, D, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def r(*shape):
        return torch.rand(*shape, generator=g, device="cuda")

    k, kd = r(B, H, T, S, D) / (D * S) ** 0.5, r(B, H, T, S, D) / (D * S) ** 0.5
    x = GDNInputs(r(B, H, T, S, D), k, r(B, H, T, S, D) - 0.5, r(B, H, T, S), 0.8 + 0.2 * r(B, H, T),
                  r(B, H, T, S, D), kd)  # fmt: skip
    x = GDNInputs(
        *(t.to(dtype) if t.dim() == 5 else t for t in (x.q, x.k, x.v, x.beta, x.decay, x.q_den, x.k_den))
    )
    state = GDNState(0.1 * r(B, H, D, D), 0.1 * r(B, H, D))
    return x, state


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


@torch.no_grad()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=121)
    ap.add_argument("--heads", type=int, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    B, H, T, S, D = 1, args.heads, args.frames, 880, 112
    rows = []
    for mode, chunks in (("bidirectional", None), ("chunk_causal", chunk_layout(T))):
        for dtype in (torch.bfloat16, torch.float32):
            x, state = inputs(B, H, T, S, D, dtype, seed=len(rows))
            ref = gdn_parallel(to_fp32(x), chunks, state)
            out = gdn_scan_triton(x, chunks, state)
            row = {
                "mode": mode,
                "inputs": str(dtype).removeprefix("torch."),
                "precision": "tf32" if dtype == torch.bfloat16 else "ieee",
                "rel_num": rel(out.num, ref.num),
                "rel_den": rel(out.den, ref.den),
                "rel_state": rel(out.state.num, ref.state.num),
                "finite": bool(torch.isfinite(out.num).all() and torch.isfinite(out.den).all()),
                "triton_s": cuda_time(lambda x=x, c=chunks, s=state: gdn_scan_triton(x, c, s), 10)[0],
                "pytorch_s": cuda_time(lambda x=x, c=chunks, s=state: gdn_parallel(to_fp32(x), c, s), 3)[0],
            }
            row["speedup"] = row["pytorch_s"] / row["triton_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "shape": [B, H, T, S, D],
        "rows": rows,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(
        "| mode | inputs | products | rel. num | rel. den | rel. state | Triton (ms) | PyTorch (ms) "
        "| speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['mode']} | {r['inputs']} | {r['precision']} | {r['rel_num']:.1e} | {r['rel_den']:.1e} "
            f"| {r['rel_state']:.1e} | {1e3 * r['triton_s']:.1f} | {1e3 * r['pytorch_s']:.1f} "
            f"| {r['speedup']:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
