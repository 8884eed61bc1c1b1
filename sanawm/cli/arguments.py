"""Argument groups that several subcommands share (a helper module, not a subcommand)."""

from __future__ import annotations

import argparse


def add_config_arguments(p: argparse.ArgumentParser, presets: str) -> None:
    """CONFIG (a YAML file or a preset), --resume and --section.key=value overrides of a training run."""
    p.add_argument("config", help=f"a YAML file or a preset: {presets}")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in run.out_dir")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="--section.key=value overrides")


def overrides_and_resume(args: argparse.Namespace) -> tuple[list[str], bool]:
    """The --section.key=value overrides, and whether to resume: a --resume after the first override
    lands among them (argparse's REMAINDER keeps everything from there)."""
    overrides = [o for o in args.overrides if o != "--resume"]
    return overrides, args.resume or len(overrides) < len(args.overrides)


def add_output_arguments(p: argparse.ArgumentParser) -> None:
    """--out, --weights, --dtype and --overwrite of a command that writes a pipeline folder."""
    p.add_argument("--out", required=True, help="pipeline folder to write")
    p.add_argument("--weights", choices=("ema", "model"), default="ema")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16", help="storage dtype")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
