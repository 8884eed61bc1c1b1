"""`sanawm refine pairs|train CONFIG [--section.key=value ...] [--resume]` and `sanawm refine export`: the
small stage-2 refiner of a pipeline (README, Refiner)."""

from __future__ import annotations

from .arguments import add_config_arguments, add_output_arguments, overrides_and_resume


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
        add_config_arguments(s, "refiner-default, refiner-smoke")
        s.set_defaults(run=run_stage)
    e = stages.add_parser("export", help="write a pipeline folder with the refiner in refiner/")
    e.add_argument(
        "run_dir", metavar="RUN", help="a refiner run folder (its latest checkpoint) or a checkpoint"
    )
    e.add_argument("--pipeline", required=True, help="the stage-1 pipeline folder")
    add_output_arguments(e)
    e.add_argument(
        "--int8",
        action="store_true",
        help="store the refiner in int8 (and the stage-1 copy and our small VAE unless they already are): "
        "about half of bf16, as the shipped default model; sanawm loads them, diffusers does not",
    )
    e.set_defaults(run=run_export)


def run_stage(args) -> dict:
    from pathlib import Path

    from ..refine.train import RefinerTrainer, load_refiner_config
    from ..training.checkpoint import latest_checkpoint

    overrides, resume = overrides_and_resume(args)
    cfg = load_refiner_config(args.config, overrides)
    if args.stage == "pairs":  # building pairs never trains: a run folder with checkpoints is fine
        resume = latest_checkpoint(Path(cfg.run.out_dir) / "checkpoints") is not None
    trainer = RefinerTrainer(cfg, resume=resume)
    if args.stage == "pairs":
        folder = trainer.build()
        return {"pairs": str(folder)}
    return trainer.train()


def run_export(args) -> dict:
    from ..pipelines.export import folder_megabytes
    from ..refine.train import export_refiner

    out = export_refiner(
        args.run_dir,
        args.pipeline,
        args.out,
        weights=args.weights,
        dtype=args.dtype,
        overwrite=args.overwrite,
        int8=args.int8,
    )
    return {"out": str(out), "refiner_megabytes": folder_megabytes(out / "refiner")}
