"""`sanawm refine pairs|train CONFIG [--section.key=value ...] [--resume]` and `sanawm refine export`: the
small stage-2 refiner of a pipeline (README, Refiner)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser(
        "refine",
        help="train the small stage-2 refiner of a pipeline (pairs, train, export)",
        description="`pairs`: stage-1 rollouts of the pipeline against ground-truth latents (resumable). "
        "`train`: truncated-σ flow matching of the refiner (builds missing pairs first). `export`: the "
        "pipeline folder plus refiner/, which `sanawm generate --refine` uses.",
    )
    stages = p.add_subparsers(dest="stage", required=True)
    for stage, text in (("pairs", "build the training pairs"), ("train", "train the refiner")):
        s = stages.add_parser(stage, help=text, description=text)
        s.add_argument("config", help="a YAML file or a preset: refiner-default, refiner-smoke")
        s.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
        s.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.key=value overrides")
        s.set_defaults(run=run_stage)
    e = stages.add_parser("export", help="write a pipeline folder with the refiner in refiner/")
    e.add_argument(
        "run_dir", metavar="RUN", help="a refiner run folder (its latest checkpoint) or a checkpoint"
    )
    e.add_argument("--pipeline", required=True, help="the stage-1 pipeline folder")
    e.add_argument("--out", required=True, help="pipeline folder to write")
    e.add_argument("--weights", choices=("ema", "model"), default="ema")
    e.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="storage dtype")
    e.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    e.set_defaults(run=run_export)


def run_stage(args) -> dict:
    from pathlib import Path

    from ..refine.train import RefinerTrainer, load_refiner_config
    from ..training.checkpoint import latest_checkpoint

    overrides = [o for o in args.overrides if o != "--resume"]
    resume = args.resume or len(overrides) < len(args.overrides)
    cfg = load_refiner_config(args.config, overrides)
    if args.stage == "pairs":  # building pairs never trains: a run folder with checkpoints is fine
        resume = latest_checkpoint(Path(cfg.run.out_dir) / "checkpoints") is not None
    trainer = RefinerTrainer(cfg, resume=resume)
    if args.stage == "pairs":
        folder = trainer.build()
        return {"pairs": str(folder)}
    return trainer.train()


def run_export(args) -> dict:
    from ..refine.train import export_refiner

    try:
        out = export_refiner(
            args.run_dir,
            args.pipeline,
            args.out,
            weights=args.weights,
            dtype=args.dtype,
            overwrite=args.overwrite,
        )
    except FileExistsError as err:
        raise ValueError(str(err)) from None
    size = sum(f.stat().st_size for f in (out / "refiner").rglob("*") if f.is_file())
    return {"out": str(out), "refiner_megabytes": round(size / 1e6, 2)}
