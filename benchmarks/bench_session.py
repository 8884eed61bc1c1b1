"""Interactive sessions (`WorldSession.step`) on the shipped default model: seconds a step, sampling
against decoding, with the VAE's carried decoder cache (each chunk decoded once) and, for comparison,
with every chunk decoded again together with `decode_context` latent frames of left context (the way
sessions decoded before, and still do for VAEs that cannot decode in pieces).

    python benchmarks/bench_session.py --seconds 12 --step-seconds 1 --threads 2 --out session.json

Both runs use the same seed and key path, so their frames must agree (max |Δ| in uint8 is reported; 1 is
float summation order). Times are medians over the steps after the first (the first chunk also encodes
the image and warms up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from contextlib import contextmanager

import numpy as np
import torch

from sanawm.pipelines import WorldModelPipeline
from sanawm.pipelines.world_model import DEFAULT_MODEL, EXAMPLE_IMAGE


@contextmanager
def context_decoding(vae):
    """Make `vae` decode sessions the old way (left context, no carried cache) while inside."""
    cls = type(vae)
    patched = type(
        cls.__name__ + "WithoutPieces", (cls,), {"decodes_in_pieces": property(lambda self: False)}
    )
    vae.__class__ = patched
    try:
        yield
    finally:
        vae.__class__ = cls


def run(pipe, seconds: float, step_seconds: float) -> dict:
    from PIL import Image

    session = pipe.session(Image.open(EXAMPLE_IMAGE), config=pipe.generation_config(mode="streaming"))
    vae = pipe.vae
    decode_s = []
    original = vae.decode, vae.decode_piece

    def timed(fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            decode_s[-1] += time.perf_counter() - t
            return out

        return wrapper

    vae.decode, vae.decode_piece = timed(original[0]), timed(original[1])
    frames_per_step = round(step_seconds * pipe.generation_config().fps)
    keys = ["w", "w", "l", "w", "j", "w"]
    steps, chunks = [], []
    try:
        for i in range(int(round(seconds / step_seconds))):
            decode_s.append(0.0)
            t = time.perf_counter()
            chunks.append(session.step(actions=f"{keys[i % len(keys)]}-{frames_per_step}"))
            steps.append(time.perf_counter() - t)
    finally:
        vae.decode, vae.decode_piece = original
    later = slice(1, None)
    return {
        "steps": len(steps),
        "frames": int(sum(len(c) for c in chunks)),
        "step_s_median": statistics.median(steps[later]),
        "decode_s_median": statistics.median(decode_s[later]),
        "total_s": sum(steps),
        "decode_total_s": sum(decode_s),
        "video": np.concatenate(chunks),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--step-seconds", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = WorldModelPipeline.from_pretrained(args.model)
    rows = {}
    with torch.inference_mode():
        rows["carried_cache"] = run(pipe, args.seconds, args.step_seconds)
        with context_decoding(pipe.vae):
            rows["left_context"] = run(pipe, args.seconds, args.step_seconds)
    a, b = rows["carried_cache"].pop("video"), rows["left_context"].pop("video")
    result = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "decode_context": pipe.vae.decode_overlap(),
        "cases": rows,
        "max_abs_diff_uint8": int(np.abs(a.astype(int) - b.astype(int)).max()),
    }
    print("| decoding | steps | step s (median) | decode s (median) | total s | decode total s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(
            f"| {name} | {r['steps']} | {r['step_s_median']:.2f} | {r['decode_s_median']:.2f} | "
            f"{r['total_s']:.1f} | {r['decode_total_s']:.1f} |"
        )
    print(f"frames agree to {result['max_abs_diff_uint8']} (uint8)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
