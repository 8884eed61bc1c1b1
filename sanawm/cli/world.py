"""`sanawm world ...`: render procedural posed clips, look at a clip, render a given trajectory (the oracle).

sanawm world render --scenes 100 --seconds 10 --size 256 --out DIR [--workers N] [--seed S] [--depth]
                    [--kinds walk,orbit,fly,pan,revisit] [--fov 60]
sanawm world show CLIP -o sheet.png
sanawm world render-trajectory --scene-seed N --trajectory traj.json --size 256 --out CLIP [--place]
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from ..world.paths import MAX_SECONDS, PATH_KINDS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "world", help="procedural posed worlds: render clips, show a clip, render a trajectory"
    )
    wsub = p.add_subparsers(dest="world_command", required=True)

    r = wsub.add_parser("render", help="render a dataset of posed clips (resumable, parallel)")
    r.add_argument("--scenes", type=int, default=100, help="number of scenes, one clip each (default 100)")
    r.add_argument(
        "--seed", type=int, default=0, help="first scene seed: scenes S, S+1, ..., S+N-1 (default 0)"
    )
    r.add_argument(
        "--seconds", type=float, default=10.0, help=f"clip length, up to {MAX_SECONDS:g} (default 10)"
    )
    r.add_argument("--fps", type=float, default=16.0, help="frames per second (default 16)")
    r.add_argument("--size", default="256", help="N (square) or HxW in pixels, even (default 256)")
    r.add_argument(
        "--fov", type=float, default=60.0, help="horizontal field of view, 25-120 deg (default 60)"
    )
    r.add_argument(
        "--kinds", default=",".join(PATH_KINDS), help=f"path kinds to mix (default {','.join(PATH_KINDS)})"
    )
    r.add_argument("--depth", action="store_true", help="also store z-depth (metres) per frame")
    r.add_argument(
        "--depth-dtype", choices=("float32", "float16"), default="float32",
        help="depth storage: float32 (default) or float16 (half the disk, ~5e-4 relative precision)",
    )  # fmt: skip
    r.add_argument("--workers", type=int, default=1, help="parallel processes, one renderer each (default 1)")
    r.add_argument("--max-speed", type=float, default=1.5, help="camera speed limit, m/s (default 1.5)")
    r.add_argument("--max-turn-rate", type=float, default=60.0, help="turn-rate limit, deg/s (default 60)")
    r.add_argument(
        "--clearance", type=float, default=0.3, help="distance kept from every surface, m (default 0.3)"
    )
    r.add_argument(
        "--out", required=True, type=Path, help="dataset folder (clips world_NNNNNN + manifest.jsonl)"
    )
    r.set_defaults(run=run_render)

    s = wsub.add_parser("show", help="contact sheet PNG of a clip, with a trajectory plot beside it")
    s.add_argument("clip", type=Path, help="clip folder")
    s.add_argument("-o", "--output", type=Path, default=None, help="sheet PNG (default CLIP/sheet.png)")
    s.add_argument("--frames", type=int, default=16, help="frames on the sheet (default 16)")
    s.add_argument("--columns", type=int, default=4, help="columns of the grid (default 4)")
    s.set_defaults(run=run_show)

    t = wsub.add_parser("render-trajectory", help="render a given trajectory file in scene N (the oracle)")
    t.add_argument("--scene-seed", type=int, required=True, help="the scene's seed")
    t.add_argument(
        "--trajectory", type=Path, required=True, help="trajectory file (.json / .npz, world frame)"
    )
    t.add_argument("--size", default=None, help="N or HxW; default: the trajectory's image size, else 256")
    t.add_argument(
        "--fov", type=float, default=None, help="horizontal field of view when the file has no intrinsics"
    )
    t.add_argument("--fps", type=float, default=None, help="frame rate when the file has none (default 16)")
    t.add_argument(
        "--place",
        action="store_true",
        help="first move the path into the scene: start at a free spot at eye height, turned to stay clear",
    )
    t.add_argument("--place-seed", type=int, default=0, help="seed of the placement search (default 0)")
    t.add_argument(
        "--clearance", type=float, default=0.3, help="warn when the camera comes closer, m (default 0.3)"
    )
    t.add_argument("--depth", action="store_true", help="also store z-depth (metres) per frame")
    t.add_argument("--overwrite", action="store_true", help="replace an existing clip folder")
    t.add_argument("--out", type=Path, required=True, help="clip folder to write")
    t.set_defaults(run=run_render_trajectory)


# --- render -----------------------------------------------------------------------------------------


def _parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in PATH_KINDS]
    if not kinds or unknown:
        raise ValueError(f"--kinds {text!r}: unknown kind(s) {unknown}; choose from {','.join(PATH_KINDS)}")
    return list(dict.fromkeys(kinds))


def _job(job: dict) -> dict:
    """One clip, in a worker process (spawned, so each has its own OpenGL context and renderer)."""
    from ..world.clips import render_world_clip

    try:
        return render_world_clip(**job)
    except Exception as err:  # reported per clip; the other clips go on
        return {"scene_seed": job["scene_seed"], "error": f"{type(err).__name__}: {err}"}


def run_render(args) -> dict | int:
    from tqdm import tqdm

    from ..data.clip import is_complete_clip
    from ..data.manifest import write_manifest
    from ..world.camera import intrinsics_for_fov, parse_size
    from ..world.checks import PathLimits
    from ..world.clips import clip_name

    if args.scenes < 1 or args.seed < 0 or args.workers < 1:
        raise ValueError("--scenes and --workers must be >= 1 and --seed >= 0")
    if not (0 < args.seconds <= MAX_SECONDS):
        raise ValueError(f"--seconds must be in (0, {MAX_SECONDS:g}], got {args.seconds}")
    size = parse_size(args.size)
    if size[0] % 2 or size[1] % 2:
        raise ValueError(
            f"--size {args.size}: H.264 video needs an even height and width, e.g. 256 or 144x256"
        )
    intrinsics_for_fov(size, args.fov)  # refuses a field of view outside [25, 120] now, not in every worker
    kinds = _parse_kinds(args.kinds)
    limits = PathLimits(args.max_speed, args.max_turn_rate, args.clearance)
    args.out.mkdir(parents=True, exist_ok=True)

    seeds = range(args.seed, args.seed + args.scenes)
    todo = [s for s in seeds if not is_complete_clip(args.out / clip_name(s))]
    jobs = [
        dict(folder=args.out / clip_name(s), scene_seed=s, seconds=args.seconds, fps=args.fps, size=size,
             fov_deg=args.fov, kinds=kinds, depth=args.depth, depth_dtype=args.depth_dtype, limits=limits,
             overwrite=True)
        for s in todo
    ]  # fmt: skip
    results, t0 = [], time.perf_counter()
    bar = tqdm(
        total=len(seeds), initial=len(seeds) - len(todo), unit="clip", desc="world render", file=sys.stderr
    )
    frames = 0

    def done(res: dict) -> None:
        nonlocal frames
        results.append(res)
        frames += res.get("frames", 0)
        bar.update(1)
        bar.set_postfix(
            frames_per_s=f"{frames / max(time.perf_counter() - t0, 1e-9):.1f}", failed=_failed(results)
        )

    if args.workers == 1 or len(jobs) <= 1:
        for job in jobs:
            done(_job(job))
    else:
        with multiprocessing.get_context("spawn").Pool(min(args.workers, len(jobs))) as pool:
            for res in pool.imap_unordered(_job, jobs):
                done(res)
    bar.close()
    manifest = write_manifest(args.out)
    failed = [r for r in results if "error" in r]
    for r in failed:
        print(f"sanawm world render: scene {r['scene_seed']} failed: {r['error']}", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    kinds_used = {}
    for r in results:
        if "kind" in r:
            kinds_used[r["kind"]] = kinds_used.get(r["kind"], 0) + 1
    summary = {
        "out": str(args.out),
        "manifest": str(manifest),
        "clips_rendered": len(results) - len(failed),
        "clips_skipped_complete": len(seeds) - len(todo),
        "clips_failed": len(failed),
        "kinds": kinds_used,
        "frames_rendered": frames,
        "seconds": round(elapsed, 2),
        "frames_per_second": round(frames / elapsed, 2) if elapsed > 0 else None,
    }
    if failed:  # the summary still goes to stdout; the exit status says that some clips are missing
        print(json.dumps(summary, indent=2))
        return 1
    return summary


def _failed(results) -> int:
    return sum("error" in r for r in results)


# --- show -------------------------------------------------------------------------------------------


def run_show(args) -> dict:
    from ..cameras.plot import plot_trajectory
    from ..data.clip import read_clip
    from ..world.sheet import contact_sheet, sheet_indices

    if args.frames < 1 or args.columns < 1:
        raise ValueError("--frames and --columns must be >= 1")
    clip = read_clip(args.clip)
    output = args.output or args.clip / "sheet.png"
    if output.suffix.lower() != ".png":
        raise ValueError(f"the contact sheet is a PNG; give -o a path ending in .png, not {output.name!r}")
    idx = sheet_indices(len(clip), args.frames)
    frames = clip.frames(idx.tolist())
    depth = np.asarray(clip.depth(idx), dtype=np.float32) if clip.has_depth else None
    title = f"{args.clip.name}: {clip.meta.caption}" if clip.meta.caption else args.clip.name
    sheet = contact_sheet(
        frames, idx, output, depth=depth, fps=clip.meta.fps, title=title, columns=args.columns
    )
    plot = plot_trajectory(clip.trajectory, output.with_name(output.stem + "_trajectory.png"))
    return {"sheet": str(sheet), "trajectory_plot": str(plot), "frames_shown": idx.tolist()}


# --- render-trajectory ------------------------------------------------------------------------------


def run_render_trajectory(args) -> dict:
    from dataclasses import replace

    from ..cameras.formats import load_trajectory
    from ..data.clip import write_clip
    from ..world.camera import parse_size, prepare_trajectory
    from ..world.captions import caption_for
    from ..world.checks import check_clearance
    from ..world.clips import DEPTH_NOTE, LICENCE, SOURCE, WORLD_FRAME
    from ..world.paths import place_trajectory
    from ..world.render import WorldRenderer
    from ..world.scene import build_scene

    traj = load_trajectory(args.trajectory)
    if traj.fps is None:
        traj = replace(traj, fps=args.fps or 16.0)
    elif args.fps is not None and abs(args.fps - traj.fps) > 1e-9:
        raise ValueError(f"--fps {args.fps:g} contradicts the trajectory's fps {traj.fps:g}; drop --fps")
    size = parse_size(args.size) if args.size else (traj.image_size or (256, 256))
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"size {size[0]}x{size[1]}: H.264 video needs an even height and width")
    traj = prepare_trajectory(traj, size, args.fov)
    scene = build_scene(args.scene_seed)
    placement = None
    if args.place:
        traj, placement = place_trajectory(scene, traj, seed=args.place_seed)
    report = check_clearance(scene, traj, args.clearance)
    if not report.ok:
        print(
            f"sanawm world render-trajectory: warning: {report.message()} (rendered as given)",
            file=sys.stderr,
        )
    with WorldRenderer(scene, size) as renderer:
        rgb, z = renderer.render(traj, depth=args.depth)
    extra = {
        "generator": "sanawm.world (given trajectory)",
        "trajectory_file": str(args.trajectory),
        "scene_kind": scene.kind,
        "frames": WORLD_FRAME,
        "clearance": report.to_json(),
        "placement_world_transform": None if placement is None else placement.tolist(),
        "scene": scene.summary(),
    }
    if args.depth:
        extra["depth"] = DEPTH_NOTE
    try:
        folder = write_clip(
            args.out, rgb, traj, caption=caption_for(scene), source=f"{SOURCE} (given trajectory)",
            licence=LICENCE, scene_seed=args.scene_seed, depth=z, extra=extra, overwrite=args.overwrite,
        )  # fmt: skip
    except FileExistsError as err:
        raise ValueError(f"{err} (on the command line: --overwrite)") from None
    return {
        "clip": str(folder),
        "frames": len(rgb),
        "size": list(size),
        "clearance_ok": report.ok,
        "min_clearance_m": round(report.min_distance, 3),
        "placed": placement is not None,
    }
