"""Named camera paths: orbit, dolly, pan, figure_eight, out_and_back, random_smooth.

Every generator takes `num_frames` and `fps` plus metric parameters (metres, degrees, seconds) and
returns a `Trajectory` of exactly rigid poses (OpenCV axes: x right, y down — so "up" is −y — and z
forward; the ground is the x–z plane). dolly, pan, out_and_back and random_smooth start at the
identity; figure_eight starts at the origin heading along the curve; orbit starts at (0, −height, 0)
looking at its target. `make_preset(name, num_frames, fps, **params)` picks one by name.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import numpy as np

from .actions import yaw_pitch_roll_rotation
from .trajectory import Trajectory

_WORLD_UP = np.array([0.0, -1.0, 0.0])


# --- helpers ----------------------------------------------------------------------------------------


def _number(name: str, value, *, positive: bool = False, nonnegative: bool = False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(out) or (positive and out <= 0) or (nonnegative and out < 0):
        need = "a positive number" if positive else "a number >= 0" if nonnegative else "a finite number"
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return out


def _whole(name: str, value, minimum: int | None = None) -> int:
    try:
        ok = not isinstance(value, bool) and float(value).is_integer()
    except (TypeError, ValueError):
        ok = False
    if not ok or (minimum is not None and int(value) < minimum):
        need = "a whole number" + ("" if minimum is None else f" >= {minimum}")
        raise ValueError(f"{name} must be {need}, got {value!r}")
    return int(value)


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_frames(num_frames, fps, minimum: int = 2) -> tuple[int, float]:
    return _whole("num_frames", num_frames, minimum), _number("fps", fps, positive=True)


def _progress(num_frames: int, ease: bool) -> np.ndarray:
    """(F,) from 0 to 1: uniform in time, or cosine ease-in/out (zero speed at both ends)."""
    s = np.linspace(0.0, 1.0, num_frames)
    return 0.5 - 0.5 * np.cos(np.pi * s) if ease else s


def _poses(rotation: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(F, 3, 3) rotations and (F, 3) positions → (F, 4, 4) camera-to-world."""
    c2w = np.tile(np.eye(4), (len(position), 1, 1))
    c2w[:, :3, :3], c2w[:, :3, 3] = rotation, position
    return c2w


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = _WORLD_UP) -> np.ndarray:
    """(F, 3, 3) camera-to-world rotations whose z axis points from `eye` (F, 3) to `target` (3,) or (F, 3).

    The camera's x axis stays horizontal (no roll) and its y axis points down, as in OpenCV.
    """
    forward = np.asarray(target, dtype=np.float64) - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, up)
    norm = np.linalg.norm(right, axis=-1, keepdims=True)
    if (norm < 1e-9).any():
        raise ValueError(
            "look_at: the camera looks straight up or down; move the eye off the target's vertical"
        )
    right = right / norm
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=-1)


def _heading_rotation(yaw: np.ndarray) -> np.ndarray:
    return yaw_pitch_roll_rotation(yaw, np.zeros_like(yaw))


# --- presets ----------------------------------------------------------------------------------------


def orbit(
    num_frames: int,
    fps: float = 16.0,
    radius: float = 2.0,
    height: float = 0.0,
    degrees: float = 360.0,
    target: tuple[float, float, float] | None = None,
) -> Trajectory:
    """Circle a target point at horizontal distance `radius` and `height` metres above it, looking at it.

    The camera starts behind the target (−z side) and sweeps `degrees` around it at constant angular
    speed; positive degrees circle to the camera's right. A full 360° ends where it started. `target`
    defaults to (0, 0, radius): straight ahead of the origin, so the camera starts at (0, −height, 0).
    """
    num_frames, fps = _check_frames(num_frames, fps)
    radius = _number("radius", radius, positive=True)
    height = _number("height", height)
    angle = np.radians(_number("degrees", degrees)) * np.linspace(0.0, 1.0, num_frames)
    if target is None:
        target = (0.0, 0.0, radius)
    target = np.asarray(target, dtype=np.float64)
    if target.shape != (3,) or not np.isfinite(target).all():
        raise ValueError(f"target must be three numbers (x, y, z), got {target.tolist()}")
    eye = target + np.stack(
        [radius * np.sin(angle), np.full_like(angle, -height), -radius * np.cos(angle)], -1
    )
    return Trajectory(c2w=_poses(look_at(eye, target), eye), fps=fps)


def dolly(num_frames: int, fps: float = 16.0, distance: float = 2.0, ease: bool = False) -> Trajectory:
    """Move straight forward `distance` metres (negative: backward) without turning."""
    num_frames, fps = _check_frames(num_frames, fps)
    z = _number("distance", distance) * _progress(num_frames, _flag("ease", ease))
    position = np.stack([np.zeros_like(z), np.zeros_like(z), z], axis=-1)
    return Trajectory(c2w=_poses(np.tile(np.eye(3), (num_frames, 1, 1)), position), fps=fps)


def pan(num_frames: int, fps: float = 16.0, degrees: float = 90.0, ease: bool = False) -> Trajectory:
    """Turn in place about the world vertical by `degrees` (positive: to the right)."""
    num_frames, fps = _check_frames(num_frames, fps)
    yaw = np.radians(_number("degrees", degrees)) * _progress(num_frames, _flag("ease", ease))
    return Trajectory(c2w=_poses(_heading_rotation(yaw), np.zeros((num_frames, 3))), fps=fps)


def figure_eight(
    num_frames: int, fps: float = 16.0, length: float = 4.0, width: float = 2.0, loops: int = 1
) -> Trajectory:
    """Drive a figure eight on the ground at constant speed, looking along the direction of travel.

    The eight is `length` metres along z (one lobe ahead of the start, one behind) and `width` metres
    along x; it crosses itself at the origin, where it starts and, after `loops` laps, ends.
    """
    num_frames, fps = _check_frames(num_frames, fps)
    half_length = _number("length", length, positive=True) / 2
    width = _number("width", width, positive=True)
    loops = _whole("loops", loops, minimum=1)

    def point(t):  # x = (w/2) sin 2t, z = (L/2) sin t
        return np.stack([width / 2 * np.sin(2 * t), np.zeros_like(t), half_length * np.sin(t)], axis=-1)

    def tangent(t):
        return np.stack([width * np.cos(2 * t), np.zeros_like(t), half_length * np.cos(t)], axis=-1)

    # Constant speed: sample the curve densely and pick the parameter at equal arc lengths.
    dense = np.linspace(0.0, 2 * np.pi * loops, 4096 * loops + 1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(point(dense), axis=0), axis=-1))])
    t = np.interp(np.linspace(0.0, arc[-1], num_frames), arc, dense)
    d = tangent(t)
    yaw = np.arctan2(d[:, 0], d[:, 2])
    return Trajectory(c2w=_poses(_heading_rotation(yaw), point(t)), fps=fps)


def out_and_back(
    num_frames: int, fps: float = 16.0, distance: float = 2.0, degrees: float = 60.0, ease: bool = True
) -> Trajectory:
    """Walk out along an arc, then retrace it backwards in time so the end revisits the start exactly.

    The first half walks `distance` metres forward while turning `degrees` (positive: right) at a
    constant rate, looking along the path; the second half is the first half's poses in reverse order,
    so pose[F − 1 − i] == pose[i] for every i (with an even F the turning pose is held for two frames).
    `ease` starts and stops each half gently, so the camera does not reverse at full speed.
    """
    num_frames, fps = _check_frames(num_frames, fps, minimum=3)
    distance = _number("distance", distance)
    turn = np.radians(_number("degrees", degrees))
    out_frames = (num_frames + 1) // 2
    s = _progress(out_frames, _flag("ease", ease))  # fraction of the arc walked
    yaw = turn * s
    if abs(turn) < 1e-12:
        x, z = np.zeros_like(s), distance * s
    else:  # an arc of length `distance` whose heading turns by `turn`: radius distance / turn
        r = distance / turn
        x, z = r * (1.0 - np.cos(yaw)), r * np.sin(yaw)
    out = _poses(_heading_rotation(yaw), np.stack([x, np.zeros_like(s), z], axis=-1))
    back = out[: num_frames - out_frames][::-1]
    return Trajectory(c2w=np.concatenate([out, back]), fps=fps)


def _smooth_noise(
    rng: np.random.Generator, num_frames: int, sigma_frames: float, channels: int
) -> np.ndarray:
    """(F, channels) Gaussian-filtered white noise with unit standard deviation at every frame."""
    radius = int(math.ceil(4 * sigma_frames))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma_frames) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    white = rng.standard_normal((num_frames + 2 * radius, channels))
    return np.stack([np.convolve(white[:, c], kernel, mode="valid") for c in range(channels)], axis=-1)


def random_smooth(
    num_frames: int,
    fps: float = 16.0,
    seed: int = 0,
    max_speed: float = 0.5,
    max_turn_rate_deg: float = 30.0,
    max_pitch_deg: float = 15.0,
    max_roll_deg: float = 0.0,
    smoothness_s: float = 1.5,
) -> Trajectory:
    """A random but smooth 6-DoF path, the same for the same seed and arguments.

    Smooth noise (white noise under a Gaussian of `smoothness_s` seconds) drives the yaw rate, the
    pitch and roll angles and the velocity in the heading frame (mostly forward, some sideways and
    vertical drift). Limits hold at every frame: camera speed <= `max_speed` (m/s); the rotation
    between consecutive frames <= `max_turn_rate_deg` / fps (shared: yaw up to 80 % of it, or 70 % when
    roll is on, pitch up to 20 %, roll up to 10 %); |pitch| <= `max_pitch_deg`; |roll| <= `max_roll_deg`.
    Starts at the identity (pitch and roll fade in over the first `smoothness_s` seconds).
    """
    num_frames, fps = _check_frames(num_frames, fps)
    seed = _whole("seed", seed)
    max_speed = _number("max_speed", max_speed, nonnegative=True)
    turn_rate = _number("max_turn_rate_deg", max_turn_rate_deg, nonnegative=True)
    max_turn = np.radians(turn_rate) / fps  # radians per frame
    max_pitch = np.radians(_number("max_pitch_deg", max_pitch_deg, nonnegative=True))
    max_roll = np.radians(_number("max_roll_deg", max_roll_deg, nonnegative=True))
    if max_pitch >= np.pi / 2:
        raise ValueError(f"max_pitch_deg must be below 90, got {max_pitch_deg}")
    sigma = _number("smoothness_s", smoothness_s, positive=True) * fps

    noise = _smooth_noise(np.random.default_rng(seed), num_frames, sigma, channels=6)
    fade_in = np.clip(np.arange(num_frames) / sigma, 0.0, 1.0)
    fade_in = fade_in * fade_in * (3 - 2 * fade_in)  # smoothstep

    def bounded_angle(signal: np.ndarray, limit: float, max_step: float) -> np.ndarray:
        """limit·tanh(signal) faded in, scaled down as a whole if any frame-to-frame step exceeds max_step."""
        angle = limit * np.tanh(signal) * fade_in
        biggest = np.abs(np.diff(angle)).max(initial=0.0)
        return angle * min(1.0, max_step / biggest) if biggest > 0 else angle

    turn_share = (0.7, 0.2, 0.1) if max_roll > 0 else (0.8, 0.2, 0.0)
    yaw_rate = turn_share[0] * max_turn * np.tanh(noise[:, 0])
    yaw = np.concatenate([[0.0], np.cumsum(yaw_rate[:-1])])
    pitch = bounded_angle(noise[:, 1], max_pitch, turn_share[1] * max_turn)
    roll = bounded_angle(noise[:, 2], max_roll, turn_share[2] * max_turn)

    # Velocity in the heading frame (x right, y down, z forward), then capped at max_speed.
    local = np.stack(
        [0.3 * np.tanh(noise[:, 3]), 0.15 * np.tanh(noise[:, 4]), 0.6 + 0.4 * np.tanh(noise[:, 5])], -1
    )
    local /= np.maximum(1.0, np.linalg.norm(local, axis=-1, keepdims=True))
    velocity = np.einsum("fij,fj->fi", _heading_rotation(yaw), local) * max_speed
    position = np.concatenate([np.zeros((1, 3)), np.cumsum(velocity[:-1] / fps, axis=0)])
    return Trajectory(c2w=_poses(yaw_pitch_roll_rotation(yaw, pitch, roll), position), fps=fps)


PRESETS: dict[str, Callable[..., Trajectory]] = {
    "orbit": orbit,
    "dolly": dolly,
    "pan": pan,
    "figure_eight": figure_eight,
    "out_and_back": out_and_back,
    "random_smooth": random_smooth,
}


def preset_parameters(name: str) -> dict[str, object]:
    """The metric parameters of preset `name` and their defaults (num_frames and fps excluded)."""
    fn = _lookup(name)
    skip = {"num_frames", "fps"}
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.name not in skip}


def _lookup(name: str) -> Callable[..., Trajectory]:
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown trajectory preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def make_preset(name: str, num_frames: int, fps: float = 16.0, **params) -> Trajectory:
    """Build preset `name` with `num_frames` poses at `fps`; `params` are that preset's metric parameters."""
    fn = _lookup(name)
    allowed = preset_parameters(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in allowed.items())
        raise ValueError(
            f"preset {name!r} has no parameter {', '.join(unknown)}; its parameters are: {listing}"
        )
    return fn(num_frames, fps, **params)


__all__ = [
    "PRESETS",
    "dolly",
    "figure_eight",
    "look_at",
    "make_preset",
    "orbit",
    "out_and_back",
    "pan",
    "preset_parameters",
    "random_smooth",
]
