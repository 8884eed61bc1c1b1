"""`sanawm vae train DATASET --preset small --frames 17 --size 256,256 --steps N --out DIR [--resume]`.

Trains our small causal video VAE (`sanawm.training.vae_train`); the result, DIR/vae, is a VAE folder
for `sanawm cache-latents --vae` and `--data.vae`.
"""

from __future__ import annotations

from .cache_latents import parse_size


def add_parser(sub) -> None:
    from ..vae import SMALL_VAE_PRESETS

    p = sub.add_parser("vae", help="video VAE tools (train our small VAE, measure reconstruction)")
    vsub = p.add_subparsers(dest="vae_command", required=True)
    t = vsub.add_parser(
        "train",
        help="train a SmallVideoVAE on a clip dataset",
        description="Train a SmallVideoVAE (L1 + L2 + KL, AdamW) on windows of a clip dataset; writes "
        "metrics.jsonl, checkpoints/ and, at the end, OUT/vae with estimated latent statistics.",
    )
    t.add_argument("dataset", help="dataset root with manifest.jsonl")
    t.add_argument("--preset", default="small", choices=sorted(SMALL_VAE_PRESETS), help="VAE size")
    t.add_argument("--frames", type=int, default=17, help="raw frames per window, 8k+1")
    t.add_argument("--size", default="256,256", help="H,W pixels, multiples of 32")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--warmup-steps", type=int, default=100)
    t.add_argument("--schedule", default="constant", choices=("constant", "cosine"), help="after warm-up")
    t.add_argument("--min-lr-ratio", type=float, default=0.1, help="cosine floor, a fraction of --lr")
    t.add_argument(
        "--time-limit-minutes", type=float, default=None, help="stop early (checkpoint and vae/ written)"
    )
    t.add_argument("--kl-weight", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--ckpt-every", type=int, default=500)
    t.add_argument("--stats-samples", type=int, default=64, help="windows for the latent statistics")
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--init-from", help="start from this SmallVideoVAE folder (same preset)")
    t.add_argument(
        "--decoder-only",
        action="store_true",
        help="train the decoder alone (with --init-from): the encoder and latent statistics stay frozen, "
        "so a world model trained on this VAE's latents still fits",
    )
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.add_argument("--precision", default="bf16", choices=("fp32", "bf16"), help="bf16: autocast on CUDA")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(run=run)

    e = vsub.add_parser(
        "eval",
        help="reconstruction PSNR / SSIM of a VAE on held-out clips",
        description="Encode (posterior mean) and decode one window per clip of a dataset; report PSNR and "
        "SSIM on uint8 frames, per clip and on average.",
    )
    e.add_argument("vae", help="VAE folder (SmallVideoVAE or diffusers LTX-2), or a pipeline folder")
    e.add_argument("dataset", help="dataset root with manifest.jsonl (clips never used in training)")
    e.add_argument("--frames", type=int, default=33, help="frames per window, 8k+1")
    e.add_argument("--size", default="256,256", help="H,W pixels, multiples of 32")
    e.add_argument("--clips", type=int, default=None, help="first N clips (default all)")
    e.add_argument("--seed", type=int, default=0, help="seeds the window starts")
    e.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    e.add_argument("--out", default=None, help="also write the report JSON here")
    e.set_defaults(run=run_eval)


def run(args) -> dict:
    from ..training.vae_train import VAETrainConfig, train_vae

    cfg = VAETrainConfig(
        dataset=args.dataset,
        out_dir=args.out,
        preset=args.preset,
        frames=args.frames,
        size=parse_size(args.size),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        min_lr_ratio=args.min_lr_ratio,
        time_limit_minutes=args.time_limit_minutes,
        init_from=args.init_from,
        train_part="decoder" if args.decoder_only else "all",
        kl_weight=args.kl_weight,
        seed=args.seed,
        log_every=args.log_every,
        ckpt_every=args.ckpt_every,
        stats_samples=args.stats_samples,
        workers=args.workers,
        device=args.device,
        precision=args.precision,
        progress=not args.no_progress,
    )
    return train_vae(cfg, resume=args.resume)


def run_eval(args) -> dict:
    import json
    from pathlib import Path

    import torch

    from ..eval.vae import evaluate_vae
    from ..vae import load_vae

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    vae = load_vae(args.vae, device=device)
    report = evaluate_vae(
        vae, args.dataset, frames=args.frames, size=parse_size(args.size), clips=args.clips, seed=args.seed
    )
    report = {"vae": str(args.vae), "dataset": str(args.dataset), **report}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    return {k: v for k, v in report.items() if k != "per_clip"}
