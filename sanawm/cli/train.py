"""`sanawm train CONFIG_OR_PRESET [--section.key=value ...] [--resume]`: train from a typed config.

Under `torchrun --nproc-per-node N -m sanawm.cli.main train ...` every rank runs this; rank 0 prints.
"""

from __future__ import annotations

from .arguments import add_config_arguments, overrides_and_resume


def add_parser(sub) -> None:
    from ..training.config import list_presets

    p = sub.add_parser(
        "train",
        help="train a SANA-WM model from a YAML config or a named preset",
        description="Train from a YAML config or a named preset, with --section.key=value overrides "
        "(e.g. --optim.lr=1e-5 --run.steps=100). Writes config.yaml, metrics.jsonl and checkpoints/ "
        "under run.out_dir.",
    )
    add_config_arguments(p, ", ".join(list_presets()))
    p.set_defaults(run=run)


def run(args) -> dict | int:
    from ..training.config import load_config
    from ..training.distributed import shutdown
    from ..training.trainer import Trainer

    overrides, resume = overrides_and_resume(args)
    cfg = load_config(args.config, overrides)
    trainer = Trainer(cfg, resume=resume)
    try:
        summary = trainer.train()
    finally:
        shutdown(trainer.env)
    return summary if trainer.env.is_main else 0
