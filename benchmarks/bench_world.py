"""Frames per second of the procedural world renderer, one process: RGB, RGB + depth, and whole clips.

Renders `--frames` frames of a walk path in each of `--scenes` scenes (seeds 0, 1, ...: a mix of rooms
and yards) at `--size`, after a warm-up frame per scene; times rendering only. The "clip" row times
`render_world_clip` end to end (path planning + RGB rendering + H.264 encoding + writing the folder).
Prints a table and writes JSON (`--out`). Wall time depends on what else runs on the machine, so the
CPU seconds per frame of this process (OpenGL driver threads included) are reported too.

    python benchmarks/bench_world.py --size 256 --out bench_world.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import sanawm.world  # noqa: F401  (sets MUJOCO_GL=egl before mujoco is imported)
from sanawm.world.clips import render_world_clip
from sanawm.world.paths import path_for
from sanawm.world.render import WorldRenderer
from sanawm.world.scene import build_scene


def gl_renderer_name(renderer: WorldRenderer) -> str:
    try:
        from OpenGL import GL

        renderer._renderer._gl_context.make_current()
        return GL.glGetString(GL.GL_RENDERER).decode()
    except Exception as err:  # informational only
        return f"unknown ({type(err).__name__})"


def bench_render(scenes: int, frames: int, size: int, depth: bool) -> dict:
    wall = cpu = 0.0
    per_kind: dict[str, list[float]] = {}
    gl_name = ""
    for seed in range(scenes):
        scene = build_scene(seed)
        traj = path_for(scene, seed=0, kind="walk", seconds=frames / 16, fps=16, size=size)
        with WorldRenderer(scene, (size, size)) as renderer:
            gl_name = gl_name or gl_renderer_name(renderer)
            renderer.render(_first_frame(traj), depth=depth)  # warm-up: textures, shaders
            w0, c0 = time.perf_counter(), time.process_time()
            renderer.render(traj, depth=depth)
            w, c = time.perf_counter() - w0, time.process_time() - c0
        wall += w
        cpu += c
        per_kind.setdefault(scene.kind, []).append(len(traj) / w)
    n = scenes * (round(frames) + 1)
    return {
        "frames": n,
        "frames_per_s": n / wall,
        "cpu_s_per_frame": cpu / n,
        "frames_per_s_by_scene_kind": {k: sum(v) / len(v) for k, v in per_kind.items()},
        "gl_renderer": gl_name,
    }


def _first_frame(traj):
    return replace(traj, c2w=traj.c2w[:1], intrinsics=traj.intrinsics[:1])


def bench_clip(scenes: int, frames: int, size: int) -> dict:
    wall = cpu = 0.0
    n = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(scenes):
            w0, c0 = time.perf_counter(), time.process_time()
            res = render_world_clip(Path(tmp) / f"c{seed}", seed, seconds=frames / 16, fps=16, size=size)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            n += res["frames"]
    return {"frames": n, "frames_per_s": n / wall, "cpu_s_per_frame": cpu / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--scenes", type=int, default=6)
    ap.add_argument("--frames", type=int, default=48, help="frames per scene (plus one: F = frames + 1)")
    ap.add_argument("--no-clip", action="store_true", help="skip the end-to-end clip row")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    rows = {
        "rgb": bench_render(args.scenes, args.frames, args.size, depth=False),
        "rgb+depth": bench_render(args.scenes, args.frames, args.size, depth=True),
    }
    if not args.no_clip:
        rows["clip (plan+rgb+encode)"] = bench_clip(args.scenes, args.frames, args.size)
    gl_name = rows["rgb"].get("gl_renderer", "")
    shape = f"{args.size}x{args.size}, {args.scenes} scenes x {args.frames + 1} frames"
    print(f"world renderer, one process, {shape}")
    print(f"OpenGL: {gl_name}; CPUs: {os.cpu_count()}; load average: {os.getloadavg()}")
    print("| mode | frames/s | CPU s / frame | indoor frames/s | outdoor frames/s |")
    print("| --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        kinds = r.get("frames_per_s_by_scene_kind", {})
        print(
            f"| {name} | {r['frames_per_s']:.1f} | {r['cpu_s_per_frame']:.3f} | "
            f"{kinds.get('indoor', float('nan')):.1f} | {kinds.get('outdoor', float('nan')):.1f} |"
        )
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
        "size": [args.size, args.size],
        "scenes": args.scenes,
        "frames_per_scene": args.frames + 1,
        "results": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
