"""`sanawm vae train DATASET --preset small --frames 17 --size 256,256 --steps N --out DIR [--resume]`.

Trains our small causal video VAE (`sanawm.training.vae_train`); the result, DIR/vae, is a VAE folder
for `sanawm cache-latents --vae` and `--data.vae`.
"""

from __future__ import annotations

from .cache_latents import parse_size


def add_parser(sub) -> None:
    from ..vae import SMALL_VAE_PRESETS

    p = sub.add_parser("vae", help="video VAE tools (train our small VAE)")
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
    t.add_argument("--kl-weight", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--log-every", type=int, default=10)
    t.add_argument("--ckpt-every", type=int, default=500)
    t.add_argument("--stats-samples", type=int, default=64, help="windows for the latent statistics")
    t.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    t.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    t.add_argument("--precision", default="bf16", choices=("fp32", "bf16"), help="bf16: autocast on CUDA")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(run=run)


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
