"""`sanawm cache-latents DATASET --vae VAE --frames N --size H,W --out DIR`: encode a dataset once.

Writes safetensors shards of normalised VAE latents, camera / Plücker inputs and text embeddings plus
index.json (see `sanawm.training.cache`); train from it with `--data.source=latents --data.path=DIR`.
Rerunning the same command resumes an interrupted cache.
"""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "cache-latents",
        help="encode a clip dataset once into a latent cache for training",
        description="Encode every window of a clip dataset (manifest.jsonl) with a video VAE (and a "
        "Gemma-2 text encoder) into safetensors shards; rerun to resume.",
    )
    p.add_argument("dataset", help="dataset root with manifest.jsonl")
    p.add_argument("--vae", required=True, help="VAE folder (SmallVideoVAE or diffusers LTX-2)")
    p.add_argument("--text-encoder", default=None, help="Gemma-2 folder (default: no text)")
    p.add_argument("--frames", type=int, required=True, help="raw frames per window, 8k+1 (e.g. 81)")
    p.add_argument("--size", required=True, help="H,W in pixels, multiples of 32 (e.g. 256,256)")
    p.add_argument("--out", required=True, help="cache folder")
    p.add_argument("--frame-stride", type=int, default=1, help="step between window frames")
    p.add_argument("--windows-per-clip", type=int, default=1, help="windows (random starts) per clip")
    p.add_argument("--shard-size", type=int, default=64, help="samples per shard")
    p.add_argument("--tile-frames", type=int, default=None, help="VAE temporal tile, latent frames")
    p.add_argument("--seed", type=int, default=0, help="seeds the window starts")
    p.add_argument(
        "--workers", type=int, default=0, help="processes decoding windows ahead of the VAE (default 0)"
    )
    p.add_argument("--batch-size", type=int, default=1, help="windows per VAE call (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def parse_size(text: str) -> tuple[int, int]:
    parts = text.replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--size must be H,W in pixels, e.g. 256,256; got {text!r}")
    return int(parts[0]), int(parts[1])


def run(args) -> dict:
    from tqdm import tqdm

    from ..training.cache import LatentCache, cache_latents

    bar = tqdm(desc="cache-latents", unit="sample", dynamic_ncols=True, disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        index = cache_latents(
            args.dataset,
            args.out,
            args.vae,
            args.text_encoder,
            num_frames=args.frames,
            size=parse_size(args.size),
            frame_stride=args.frame_stride,
            shard_size=args.shard_size,
            windows_per_clip=args.windows_per_clip,
            seed=args.seed,
            tile_latent_frames=args.tile_frames,
            progress=progress,
            workers=args.workers,
            batch_size=args.batch_size,
        )
    finally:
        bar.close()
    cache = LatentCache(index.parent)
    return {"out": str(index.parent), "samples": len(cache), "latent_shape": list(cache.latent_shape)}
