"""`sanawm train CONFIG_OR_PRESET [--section.key=value ...] [--resume]`: train from a typed config.

Under `torchrun --nproc-per-node N -m sanawm.cli.main train ...` every rank runs this; rank 0 prints.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    from ..training.config import list_presets

    p = sub.add_parser(
        "train",
        help="train a SANA-WM model from a YAML config or a named preset",
        description="Train from a YAML config or a named preset, with --section.key=value overrides "
        "(e.g. --optim.lr=1e-5 --run.steps=100). Writes config.yaml, metrics.jsonl and checkpoints/ "
        "under run.out_dir.",
    )
    p.add_argument("config", help=f"a YAML file or a preset: {', '.join(list_presets())}")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.key=value overrides")
    p.set_defaults(run=run)


def run(args) -> dict | int:
    from ..training.config import load_config
    from ..training.distributed import shutdown
    from ..training.trainer import Trainer

    overrides = [o for o in args.overrides if o != "--resume"]
    resume = args.resume or len(overrides) < len(args.overrides)
    cfg = load_config(args.config, overrides)
    trainer = Trainer(cfg, resume=resume)
    try:
        summary = trainer.train()
    finally:
        shutdown(trainer.env)
    return summary if trainer.env.is_main else 0
