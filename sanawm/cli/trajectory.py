"""`sanawm trajectory`: make camera paths from key actions or presets, and plot them.

    sanawm trajectory from-actions "w-100,dw-60" --fps 16 [--speed diffusers|streaming]
                                   [--translation 0.05 --rotation 1.2 --pitch-limit 85] -o traj.json
    sanawm trajectory preset orbit --frames 161 --fps 16 [--param radius=3 --param height=0.5] -o traj.json
    sanawm trajectory plot traj.json [more.json ...] -o plot.png [--every 16]

Each prints a short JSON summary: frames, duration, path length and the file written.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np

from ..cameras.actions import SPEED_PRESETS, actions_to_trajectory, get_speeds
from ..cameras.formats import load_trajectory, save_trajectory
from ..cameras.presets import PRESETS, make_preset, preset_parameters
from ..cameras.trajectory import Trajectory


def add_parser(sub) -> None:
    p = sub.add_parser("trajectory", help="make camera paths from key actions or presets, and plot them")
    tsub = p.add_subparsers(dest="trajectory_command", required=True, metavar="{from-actions,preset,plot}")

    a = tsub.add_parser(
        "from-actions",
        help="roll out a key-action string such as 'w-100,dw-60'",
        description="Keys: w/s forward/back, d/a right/left, l/j yaw right/left, i/k pitch up/down, "
        "'none' stand still; segments '<keys>-<frames>' joined by commas.",
    )
    a.add_argument("actions", help="e.g. 'w-100,dw-60' (100 frames forward, then 60 forward + right)")
    a.add_argument("--fps", type=float, default=16.0, help="frame rate stored in the file (default 16)")
    a.add_argument(
        "--speed",
        choices=sorted(SPEED_PRESETS),
        default="diffusers",
        help="speed preset: diffusers = 0.05 units and 1.2°/frame (default), streaming = 0.025 and 0.6°",
    )
    a.add_argument("--translation", type=float, help="units per frame for w/a/s/d (overrides --speed)")
    a.add_argument("--rotation", type=float, help="degrees per frame for i/j/k/l (overrides --speed)")
    a.add_argument("--pitch-limit", type=float, help="largest |pitch| in degrees (overrides --speed)")
    a.add_argument("-o", "--output", required=True, help="trajectory file to write (.json or .npz)")
    a.set_defaults(run=run_from_actions)

    p_preset = tsub.add_parser(
        "preset",
        help="a named path: " + ", ".join(PRESETS),
        description="Parameters per preset: "
        + "; ".join(
            f"{n}: " + ", ".join(f"{k}={v}" for k, v in preset_parameters(n).items()) for n in PRESETS
        ),
    )
    p_preset.add_argument("name", help="one of: " + ", ".join(PRESETS))
    p_preset.add_argument("--frames", type=int, default=161, help="number of poses (default 161)")
    p_preset.add_argument("--fps", type=float, default=16.0, help="frame rate (default 16)")
    p_preset.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a preset parameter, repeatable: --param radius=3 --param target=0,0,4 --param ease=true",
    )
    p_preset.add_argument("-o", "--output", required=True, help="trajectory file to write (.json or .npz)")
    p_preset.set_defaults(run=run_preset)

    p_plot = tsub.add_parser("plot", help="draw trajectory files (top-down and side views) to a PNG")
    p_plot.add_argument("files", nargs="+", help="trajectory files (.json or .npz)")
    p_plot.add_argument("-o", "--output", required=True, help="PNG to write")
    p_plot.add_argument("--every", type=int, help="frames between numbered markers (default: one per second)")
    p_plot.set_defaults(run=run_plot)


def summarize(traj: Trajectory) -> dict:
    """frames, fps, seconds from first to last pose, and path length (world units; metres if metric)."""
    steps = np.linalg.norm(np.diff(traj.positions, axis=0), axis=-1)
    duration = float(traj.times[-1] - traj.times[0]) if traj.fps or traj.timestamps is not None else None
    return {
        "frames": len(traj),
        "fps": traj.fps,
        "duration_s": duration,
        "path_length": round(float(steps.sum()), 6),
    }


def run_from_actions(args) -> dict:
    overrides = {
        "translation": args.translation,
        "rotation_deg": args.rotation,
        "pitch_limit_deg": args.pitch_limit,
    }
    speeds = dataclasses.replace(
        get_speeds(args.speed), **{k: v for k, v in overrides.items() if v is not None}
    )
    traj = actions_to_trajectory(args.actions, speeds, fps=args.fps)
    out = save_trajectory(traj, args.output)
    speed_info = {**speeds.to_dict(), **speeds.per_second(args.fps)}
    return {**summarize(traj), "speeds": speed_info, "output": str(out)}


def parse_param(text: str) -> tuple[str, object]:
    """'radius=3' → ('radius', 3); values are Python literals ('0,0,4' is a tuple), true/false, or text."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    if not sep or not key or not raw:
        raise ValueError(f"--param {text!r} should look like KEY=VALUE, e.g. --param radius=3")
    if raw.lower() in ("true", "false"):
        return key, raw.lower() == "true"
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def run_preset(args) -> dict:
    params = dict(parse_param(p) for p in args.param)
    traj = make_preset(args.name, args.frames, args.fps, **params)
    out = save_trajectory(traj, args.output)
    used = {**preset_parameters(args.name), **params}
    return {**summarize(traj), "preset": args.name, "params": used, "output": str(out)}


def run_plot(args) -> dict:
    from ..cameras.plot import plot_trajectory  # matplotlib is only imported when plotting

    trajs = [load_trajectory(f) for f in args.files]
    out = plot_trajectory(
        trajs, args.output, labels=[Path(f).name for f in args.files], tick_every=args.every
    )
    inputs = [{"file": f, **summarize(t)} for f, t in zip(args.files, trajs, strict=True)]
    return {"inputs": inputs, "output": str(out)}
