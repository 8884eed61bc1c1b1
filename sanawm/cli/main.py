"""The `sanawm` command line."""

from __future__ import annotations

import argparse
import json
import sys

from . import model_info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sanawm", description="SANA-WM camera-controlled video world model")
    sub = parser.add_subparsers(dest="command", required=True)
    model_info.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except ValueError as err:
        print(f"sanawm {args.command}: error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
