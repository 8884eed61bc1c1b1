"""Training-step speed and memory under torchrun (FSDP2 on every rank, optional context parallelism),
and loss agreement between runs of the same config on different numbers of GPUs.

    NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc-per-node 2 benchmarks/bench_train.py \
        stage1-gdn --latent-frames 11 --batch-size 2 --steps 6 --warmup 2 --out fsdp_5s.json
    python benchmarks/bench_train.py CONFIG ... --out one.json             # one GPU, same global batch
    ... --model.preset=sana-wm-small --flow.mode=chunk_causal               # any other config overrides
    torchrun ... benchmarks/bench_train.py CONFIG ... --reference one.json # losses checked against it

It builds the trainer exactly as `sanawm train` does (the config's model, FSDP2 over all ranks,
`run.context_parallel` groups, activation checkpointing, AdamW, EMA) on synthetic latents of the config's
shape, runs `--warmup` untimed steps, then `--steps` timed ones (CUDA-synchronised wall time per step),
and writes no checkpoint. Rank 0 writes a JSON: per-step loss and seconds, the median step, latent
tokens per second per GPU, every rank's peak memory. The trainer's global batch is the same on any
number of ranks (see `sanawm.training.trainer`), so with `--reference` the losses of two runs of one
config must agree step by step up to floating-point reduction order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from sanawm.training.config import load_config
from sanawm.training.data import build_loader
from sanawm.training.distributed import gather_objects, shutdown
from sanawm.training.trainer import Trainer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="a training preset name or YAML file")
    p.add_argument("--latent-frames", type=int, help="data.latent_frames (default: the config's)")
    p.add_argument("--batch-size", type=int, help="data.batch_size, the global batch (default: the config's)")
    p.add_argument("--context-parallel", type=int, help="run.context_parallel (default: the config's)")
    p.add_argument("--steps", type=int, default=5, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--fp32", action="store_true", help="run.precision=fp32 and TF32 off (exactness runs)")
    p.add_argument("--reference", help="a JSON of this script; compare this run's losses to its losses")
    p.add_argument("--loss-rtol", type=float, default=1e-4, help="allowed relative loss difference")
    p.add_argument("--out", required=True, help="JSON written by rank 0")
    args, overrides = p.parse_known_args(argv)
    bad = [o for o in overrides if not (o.startswith("--") and "=" in o)]
    if bad:
        p.error(f"unrecognised arguments {bad}; config overrides look like --section.key=value")
    args.overrides = overrides
    return args


def build_config(args: argparse.Namespace, out_dir: str):
    overrides = ["--data.source=synthetic", f"--run.out_dir={out_dir}", "--run.progress=false"]
    overrides += ["--run.tensorboard=false", f"--run.steps={args.warmup + args.steps}"]
    if args.latent_frames:
        overrides.append(f"--data.latent_frames={args.latent_frames}")
    if args.batch_size:
        overrides.append(f"--data.batch_size={args.batch_size}")
    if args.context_parallel:
        overrides.append(f"--run.context_parallel={args.context_parallel}")
    if args.fp32:
        overrides.append("--run.precision=fp32")
    return load_config(args.config, [*overrides, *args.overrides])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.fp32:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    with tempfile.TemporaryDirectory() as tmp:
        cfg = build_config(args, tmp)
        t0 = time.perf_counter()
        trainer = Trainer(cfg)
        setup_s = time.perf_counter() - t0
        env = trainer.env
        cuda = env.device.type == "cuda"
        loader = build_loader(
            trainer.dataset, cfg.data, trainer.model_config, cfg.run.seed, 0, env.dp_rank, env.dp_size
        )
        batches = iter(loader)
        losses, seconds = [], []
        for i in range(args.warmup + args.steps):
            batch = next(batches)  # the loader's workers prepare the next one meanwhile
            if cuda:
                torch.cuda.synchronize(env.device)
                if i == args.warmup:
                    torch.cuda.reset_peak_memory_stats(env.device)
            start = time.perf_counter()
            out = trainer.train_step(batch)
            loss = out["loss"].item()  # synchronises
            if cuda:
                torch.cuda.synchronize(env.device)
            seconds.append(time.perf_counter() - start)
            losses.append(loss)
            if env.is_main:
                print(f"step {i}: loss {loss:.6f}, {seconds[-1]:.3f} s", flush=True)
        peak = torch.cuda.max_memory_allocated(env.device) / 2**30 if cuda else None
        peaks = gather_objects(peak, env)

    result = summarise(args, cfg, trainer, env, losses, seconds, peaks, setup_s)
    if args.reference:
        result["reference"] = compare(losses, args.reference, args.loss_rtol)
    if env.is_main:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps({k: v for k, v in result.items() if k not in ("losses", "step_seconds")}, indent=2))
    shutdown(env)
    ok = result.get("reference", {}).get("match", True)
    return 0 if ok else 1


def summarise(args, cfg, trainer, env, losses, seconds, peaks, setup_s) -> dict:
    T, (h, w) = cfg.data.latent_frames, cfg.data.latent_size
    tokens = cfg.data.batch_size * T * h * w  # latent tokens (patch 1) of the global batch
    timed = seconds[args.warmup :]
    median = statistics.median(timed) if timed else float("nan")
    n_params = sum(p.numel() for p in trainer.model.parameters())  # a DTensor's numel is the whole
    return {
        "config": args.config,
        "model_preset": cfg.model.preset,
        "parameters": n_params,
        "device": torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "world_size": env.world_size,
        "context_parallel": env.cp_size,
        "data_parallel": env.dp_size,
        "global_batch": cfg.data.batch_size,
        "latent_frames": T,
        "latent_grid": [h, w],
        "tokens_per_step": tokens,
        "flow_mode": cfg.flow.mode,
        "precision": cfg.run.precision,
        "activation_checkpointing": cfg.run.activation_checkpointing,
        "setup_s": setup_s,
        "warmup_steps": args.warmup,
        "median_step_s": median,
        "tokens_per_s_per_gpu": tokens / median / env.world_size,
        "peak_mem_gib_per_rank": peaks,
        "losses": losses,
        "step_seconds": seconds,
    }


def compare(losses: list[float], reference: str, rtol: float) -> dict:
    with open(reference) as f:
        ref = json.load(f)["losses"]
    if len(ref) != len(losses):
        raise ValueError(f"{reference} has {len(ref)} steps, this run {len(losses)}: use the same --steps")
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses, ref, strict=True)]
    return {"file": reference, "max_rel_diff": max(rel), "rtol": rtol, "match": max(rel) <= rtol}


if __name__ == "__main__":
    raise SystemExit(main())
