"""The `sanawm` command line. Each subcommand lives in its own module with `add_parser(sub)`."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# One line per subcommand module of this package.
COMMAND_MODULES = (
    "model_info",
    "trajectory",
    "generate",
    "train",
    "world",
    "vae",
    "cache_latents",
    "export",
    "eval",
    "distill",
    "refine",
    "annotate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sanawm", description="SANA-WM camera-controlled video world model")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"sanawm {args.command}: error: {err}", file=sys.stderr)
        return 2
    if isinstance(result, int):
        return result
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
