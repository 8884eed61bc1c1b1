"""Resample a trajectory in time: new frame rate or frame count over the same time span.

Rotations are interpolated by SLERP between neighbouring frames (shortest arc), translations linearly
or by a cubic spline (scipy's not-a-knot CubicSpline, which reproduces constant-speed motion exactly),
intrinsics linearly. The time axis is `traj.times`: the timestamps, else i / fps, else the frame index.
Sample times that coincide with an original time return that frame unchanged, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, Slerp

from .trajectory import Trajectory

_TRANSLATIONS = ("linear", "spline")


def resample(
    traj: Trajectory,
    fps: float | None = None,
    num_frames: int | None = None,
    translation: str = "linear",
) -> Trajectory:
    """Interpolate a trajectory at new, evenly spaced times starting at its first time.

    Args:
        traj: at least 2 frames.
        fps: new frame rate. Alone: frames t0, t0 + 1/fps, ... up to the last original time.
        num_frames: new frame count. Alone: evenly spaced from the first to the last original time.
            With fps: exactly that many frames at 1/fps spacing (must not run past the last time).
        translation: "linear" or "spline" (cubic) interpolation of the camera centres.

    Returns:
        Trajectory of the new frames (N, 4, 4) with intrinsics (N, 4) if any, the same image_size,
        `fps` the new rate, and timestamps (N,) in seconds when the input had timestamps.
    """
    if translation not in _TRANSLATIONS:
        raise ValueError(f"translation={translation!r}; choose one of {_TRANSLATIONS}")
    if len(traj) < 2:
        raise ValueError(f"cannot resample a trajectory of {len(traj)} frame; it needs at least 2")
    old = traj.times
    t0, t1 = float(old[0]), float(old[-1])
    span = t1 - t0
    new = _new_times(t0, t1, fps, num_frames)
    if new[-1] > t1 + 1e-9 * max(1.0, abs(t1)):
        raise ValueError(
            f"{num_frames} frames at {fps:g} fps run to t = {new[-1]:.6g} s, past the trajectory's end "
            f"t = {t1:.6g} s (no extrapolation); ask for at most {math.floor(span * fps + 1e-9) + 1} frames"
        )
    new = np.minimum(new, t1)  # a last frame on the end may overshoot it by rounding
    new_fps = fps if fps is not None else (len(new) - 1) / span if len(new) > 1 else traj.fps

    rotations = Slerp(old, Rotation.from_matrix(traj.c2w[:, :3, :3]))(new).as_matrix()
    if translation == "linear":
        centres = np.stack([np.interp(new, old, traj.positions[:, i]) for i in range(3)], axis=-1)
    else:
        centres = CubicSpline(old, traj.positions, axis=0)(new)
    c2w = np.zeros((len(new), 4, 4))
    c2w[:, :3, :3] = rotations
    c2w[:, :3, 3] = centres
    c2w[:, 3, 3] = 1.0
    intrinsics = None
    if traj.intrinsics is not None:
        intrinsics = np.stack([np.interp(new, old, traj.intrinsics[:, i]) for i in range(4)], axis=-1)

    # Keep original frames exactly where a new time hits an original time.
    index = np.clip(np.searchsorted(old, new), 0, len(old) - 1)
    hit = old[index] == new
    c2w[hit] = traj.c2w[index[hit]]
    if intrinsics is not None:
        intrinsics[hit] = traj.intrinsics[index[hit]]

    return replace(
        traj,
        c2w=c2w,
        intrinsics=intrinsics,
        fps=new_fps,
        timestamps=new if traj.timestamps is not None else None,
    )


def _new_times(t0: float, t1: float, fps: float | None, num_frames: int | None) -> np.ndarray:
    if fps is None and num_frames is None:
        raise ValueError("pass fps=, num_frames= or both to say how to resample")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if num_frames is not None and (int(num_frames) != num_frames or num_frames < 1):
        raise ValueError(f"num_frames must be a positive integer, got {num_frames}")
    if fps is None:
        if num_frames == 1:
            return np.array([t0])
        return np.linspace(t0, t1, int(num_frames))
    count = math.floor((t1 - t0) * fps + 1e-9) + 1 if num_frames is None else int(num_frames)
    return t0 + np.arange(count) / fps
