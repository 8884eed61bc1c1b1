"""`sanawm eval ...`: evaluate a world model on held-out procedural worlds.

sanawm eval worlds --model DIR --scenes 20 --seconds 10 --size 256 --out report.json
                   [--kinds walk,revisit] [--steps 60] [--guidance 5] [--mode streaming]
                   [--context-sigma 0.05]
                   [--seed-offset 1000000] [--device cuda] [--dtype bf16]
sanawm eval merge A.json B.json ... --out report.json [--plot psnr.png]
sanawm eval compare A.json B.json [--method refined] [--method refined:model] [--out cmp.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..pipelines.world_model import MODES
from ..world.paths import MAX_SECONDS, PATH_KINDS
from .generate import DTYPES


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a world model (held-out procedural worlds)")
    esub = p.add_subparsers(dest="eval_command", required=True)

    w = esub.add_parser(
        "worlds",
        help="PSNR / SSIM per horizon and revisit consistency vs ground-truth renders, with baselines",
    )
    w.add_argument("--model", help="a local pipeline folder (default: the shipped small model)")
    w.add_argument("--scenes", type=int, default=20, help="number of held-out scenes (default 20)")
    w.add_argument(
        "--seed-offset", type=int, default=1_000_000,
        help="first scene seed (default 1000000; training renders use seeds from 0, so keep them apart)",
    )  # fmt: skip
    w.add_argument(
        "--seconds", type=float, default=10.0, help=f"clip length, up to {MAX_SECONDS:g} (default 10)"
    )
    w.add_argument("--fps", type=float, default=16.0, help="frames per second (default 16)")
    w.add_argument("--size", default="256", help="N (square) or HxW in pixels (default 256)")
    w.add_argument(
        "--kinds", default="walk,revisit", help=f"path kinds, cycled over scenes ({','.join(PATH_KINDS)})"
    )
    w.add_argument("--horizons", default="1,5,10,30,60", help="horizons in seconds (default 1,5,10,30,60)")
    w.add_argument("--steps", type=int, help="sampling steps (default: the model's generation.json, else 60)")
    w.add_argument("--guidance", type=float, help="classifier-free guidance (default: the model's, else 5)")
    w.add_argument("--mode", choices=MODES, default="streaming", help="sampler (default streaming)")
    w.add_argument(
        "--context-sigma",
        type=float,
        help="re-noise finished chunks to this σ as context (default: the model's generation.json, else 0)",
    )
    w.add_argument(
        "--no-ablation",
        action="store_true",
        help="skip the camera-removed baseline (no_camera): half the time, e.g. to compare samplers",
    )
    w.add_argument(
        "--teacher",
        action="store_true",
        help="evaluate the multi-step model even when the pipeline folder has a distilled student/",
    )
    w.add_argument(
        "--refine",
        action="store_true",
        help="also evaluate stage 1 + the pipeline's own refiner (refiner/, `sanawm refine export`) as "
        "method 'refined', paired with 'model' (same seed)",
    )
    w.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    w.add_argument("--path-seed", type=int, default=1, help="path seed (default 1; training clips use 0)")
    w.add_argument("--out", type=Path, required=True, help="report JSON to write")
    w.add_argument("--sheets", type=Path, help="folder for per-scene comparison sheets (PNG)")
    w.add_argument("--plot", type=Path, help="PSNR-vs-time plot (PNG) of the report")
    w.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    w.add_argument("--dtype", choices=sorted(DTYPES), default="bf16" if torch.cuda.is_available() else "fp32")
    w.set_defaults(run=run_worlds)

    m = esub.add_parser(
        "merge",
        help="one report from `eval worlds` runs over disjoint scene seeds (e.g. one process per range)",
    )
    m.add_argument("reports", nargs="+", type=Path, help="report JSONs written by `sanawm eval worlds --out`")
    m.add_argument("--out", type=Path, required=True, help="merged report JSON to write")
    m.add_argument("--plot", type=Path, help="PSNR-vs-time plot (PNG) of the merged report")
    m.set_defaults(run=run_merge)

    c = esub.add_parser(
        "compare",
        help="paired per-scene differences between two `eval worlds` reports of the same scenes "
        "(two checkpoints, two refiners, two samplers)",
    )
    c.add_argument("first", type=Path, help="report A (differences are A − B)")
    c.add_argument("second", type=Path, help="report B")
    c.add_argument(
        "--method",
        action="append",
        dest="methods",
        metavar="M[:N]",
        help="compare A's method M with B's method N (default N = M); repeatable (default: every method "
        "both reports have, but repeat_first)",
    )
    c.add_argument("--out", type=Path, help="write the comparison as JSON too")
    c.set_defaults(run=run_compare)


def run_worlds(args) -> int:
    from ..eval.worlds import evaluate_worlds
    from ..pipelines import WorldModelPipeline
    from ..sampling import check_context_sigma

    if args.scenes < 1:
        raise ValueError(f"--scenes must be at least 1, got {args.scenes}")
    if args.seed_offset < 0:
        raise ValueError(f"--seed-offset must be >= 0, got {args.seed_offset}")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = [k for k in kinds if k not in PATH_KINDS]
    if unknown or not kinds:
        raise ValueError(f"--kinds {args.kinds!r}: choose from {','.join(PATH_KINDS)}")
    try:
        horizons = tuple(float(h) for h in args.horizons.split(",") if h.strip())
    except ValueError:
        raise ValueError(
            f"--horizons must be comma-separated seconds, e.g. 1,5,10; got {args.horizons!r}"
        ) from None
    if args.out.suffix.lower() != ".json":
        raise ValueError(f"--out must end in .json, got {args.out.name}")
    if args.context_sigma is not None:
        check_context_sigma(args.context_sigma)
    from ..pipelines.world_model import DEFAULT_MODEL

    model = args.model if args.model is not None else DEFAULT_MODEL
    pipe = WorldModelPipeline.from_pretrained(
        model, dtype=DTYPES[args.dtype], device=args.device, student=False if args.teacher else None
    )
    if args.refine and pipe.refiner is None:
        raise ValueError(
            f"--refine evaluates the pipeline's own refiner, but {model} has no refiner/; write one with "
            "`sanawm refine export` (recipes/refiner_default.sh)"
        )
    report = evaluate_worlds(
        pipe,
        range(args.seed_offset, args.seed_offset + args.scenes),
        seconds=args.seconds,
        size=args.size,
        fps=args.fps,
        kinds=kinds,
        horizons=horizons,
        steps=args.steps,
        guidance=args.guidance,
        mode=args.mode,
        seed=args.seed,
        context_sigma=args.context_sigma,
        path_seed=args.path_seed,
        progress=lambda msg: print(msg, file=sys.stderr),
        sheets=args.sheets,
        refiner=pipe.refiner if args.refine else None,
        ablation=not args.no_ablation,
    )
    _write(report, args.out, args.plot)
    return 0


def _write(report, out: Path, plot: Path | None) -> None:
    """Save the report JSON (and its PSNR-vs-time plot), print its tables, say where it went."""
    from ..eval.worlds import plot_psnr_over_time

    out.parent.mkdir(parents=True, exist_ok=True)
    report.save(out)
    if plot is not None:
        plot_psnr_over_time(report.to_json(), plot)
    print(report.to_markdown())
    print(f"wrote {out} ({len(report.scenes)} scenes)", file=sys.stderr)


def run_compare(args) -> int:
    import json

    from ..eval.worlds import WorldsReport, compare_reports, paired_markdown

    missing = [str(p) for p in (args.first, args.second) if not p.is_file()]
    if missing:
        print(f"sanawm eval compare: no such report: {', '.join(missing)}", file=sys.stderr)
        return 2
    pairs = None
    if args.methods:
        pairs = []
        for m in args.methods:
            a, _, b = m.partition(":")
            if not a or (m.count(":") > 1) or (":" in m and not b):
                print(
                    f"sanawm eval compare: --method {m!r}: write M or M:N, e.g. refined:model",
                    file=sys.stderr,
                )
                return 2
            pairs.append((a, b or a))
    try:
        a, b = WorldsReport.load(args.first), WorldsReport.load(args.second)
        table = compare_reports(a, b, pairs)
    except (ValueError, KeyError) as e:
        print(f"sanawm eval compare: {e}", file=sys.stderr)
        return 2
    n = len({s.scene_seed for s in a.scenes} & {s.scene_seed for s in b.scenes})
    header = (
        f"A = {args.first}, B = {args.second}, {n} scene{'s' * (n != 1)} in common. Paired per scene (A − B "
        "in dB, positive where A is better; drift: B's minus A's): mean ± standard error, median, scenes "
        "where A is better:"
    )
    print("\n".join(paired_markdown(table, header)))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "first": str(args.first),
            "second": str(args.second),
            "scenes": n,
            "paired": {c: {k: v.to_json() for k, v in row.items()} for c, row in table.items()},
        }
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def run_merge(args) -> int:
    from ..eval.worlds import WorldsReport

    missing = [str(p) for p in args.reports if not p.is_file()]
    if missing:
        print(f"sanawm eval merge: no such report: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        report = WorldsReport.merge([WorldsReport.load(p) for p in args.reports])
    except (ValueError, KeyError) as e:
        print(f"sanawm eval merge: {e}", file=sys.stderr)
        return 2
    _write(report, args.out, args.plot)
    return 0
