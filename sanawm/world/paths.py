"""Collision-free, smooth 6-DoF camera paths through a scene, with speed and turn-rate limits.

Kinds:
- walk: eye height (1.35–1.75 m), along a smoothed random route between free waypoints, looking
  where it goes with a gentle look-around; slows down in bends so the turn rate stays in bounds.
- fly: the same through the air, the height changing between waypoints, pitch following the climb.
- orbit: circles an object (or a free spot) looking at it; the radius and height breathe slightly.
- pan: stands at a free spot and turns (a steady sweep or a back-and-forth scan), drifting slightly.
- revisit: walks or flies out along a route and comes back along the same poses in reverse, easing
  in and out, so pose[F − 1 − i] == pose[i]: frame pairs that see the same view at different times.

Every path is planned in scene coordinates with a planning margin (clearance + 0.2 m), then checked
as a world-frame `Trajectory`: camera centres at every frame and half-way between frames keep
`limits.clearance` from every surface, and speed and turn rate stay within `limits`. A path that fails
is drawn again from the next random stream (seeded by scene seed, path seed, kind and attempt), so the
same arguments always give the same path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.ndimage import gaussian_filter1d, minimum_filter1d

from ..cameras import Trajectory
from ..cameras.actions import yaw_pitch_roll_rotation
from .camera import intrinsics_for_fov, parse_size
from .checks import PathLimits, check_clearance, check_limits
from .geometry import clearance, scene_to_world, segment_clearance, world_to_scene
from .scene import SceneSpec

PATH_KINDS = ("walk", "orbit", "fly", "pan", "revisit")
MAX_SECONDS = 60.0
PLAN_MARGIN = 0.2  # metres added to the clearance while planning, so smoothing never eats into it


def num_frames(seconds: float, fps: float) -> int:
    """Frames of a clip of `seconds` at `fps`, both ends included: 10 s at 16 fps → 161 (8k + 1)."""
    return int(round(float(seconds) * float(fps))) + 1


@dataclass(frozen=True)
class CameraPath:
    """A generated path: the trajectory plus how it was made (for clip metadata)."""

    trajectory: Trajectory
    kind: str
    seed: int
    attempt: int
    limits: PathLimits

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "path_seed": self.seed,
            "attempt": self.attempt,
            "max_speed_m_s": self.limits.max_speed,
            "max_turn_rate_deg_s": self.limits.max_turn_rate,
            "clearance_m": self.limits.clearance,
        }


# --- small numeric helpers -------------------------------------------------------------------------


def _heading(dx, dy):
    """Yaw (radians, positive = turning right) of a scene-horizontal direction; 0 looks along scene +y."""
    return np.arctan2(dx, dy)


def _chaikin(points: np.ndarray, iterations: int = 4) -> np.ndarray:
    """Corner-cutting subdivision: a smooth curve inside the polyline's hull, ends kept."""
    p = points
    for _ in range(iterations):
        q = 0.75 * p[:-1] + 0.25 * p[1:]
        r = 0.25 * p[:-1] + 0.75 * p[1:]
        p = np.concatenate([p[:1], np.stack([q, r], axis=1).reshape(-1, 3), p[-1:]])
    return p


def _resample(points: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every `step` metres of arc length along a polyline, and their arc lengths."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=-1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(0.0, arc[-1], step)
    return np.stack([np.interp(s, arc, points[:, k]) for k in range(3)], axis=-1), s


def _interp(x, xp, fp: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(x, xp, fp[:, k]) for k in range(fp.shape[1])], axis=-1)


def _wave(rng, t, amplitude: float, period_range) -> np.ndarray:
    """amplitude·sin(2πt/T + φ) with T and φ drawn from rng."""
    return amplitude * np.sin(2 * np.pi * t / rng.uniform(*period_range) + rng.uniform(0, 2 * np.pi))


# --- planning in scene coordinates ------------------------------------------------------------------


class _Planner:
    def __init__(self, scene: SceneSpec, limits: PathLimits, rng: np.random.Generator):
        self.scene, self.limits, self.rng = scene, limits, rng
        self.margin = limits.clearance + PLAN_MARGIN

    def heights(self, kind: str) -> tuple[float, float]:
        """(low, high) camera heights for a kind of path, kept below the ceiling or the wall tops."""
        s = self.scene
        top = s.ceiling_height or s.room_height or 5.5
        top = top - self.margin if s.kind == "indoor" else top
        if kind in ("walk", "pan"):
            return min(1.35, top - 0.05), min(1.75, top)
        if kind == "orbit":
            return min(0.8, top - 0.05), min(2.4, top)
        return min(0.6, top - 0.05), min(5.0, top)

    def inside(self, p: np.ndarray, pad: float) -> np.ndarray:
        x0, x1, y0, y1 = self.scene.bounds
        p = np.atleast_2d(p)
        return (p[:, 0] > x0 + pad) & (p[:, 0] < x1 - pad) & (p[:, 1] > y0 + pad) & (p[:, 1] < y1 - pad)

    def inward(self, p: np.ndarray) -> float:
        """Yaw from scene point p towards the centre of the room or yard."""
        x0, x1, y0, y1 = self.scene.bounds
        return float(_heading((x0 + x1) / 2 - p[0], (y0 + y1) / 2 - p[1]))

    def free_point(self, z_range, extra: float = 0.0, tries: int = 300) -> np.ndarray | None:
        x0, x1, y0, y1 = self.scene.bounds
        need = self.margin + extra
        for _ in range(tries):
            p = np.array([self.rng.uniform(x0, x1), self.rng.uniform(y0, y1), self.rng.uniform(*z_range)])
            if self.inside(p, need)[0] and clearance(self.scene, p[None])[0][0] >= need:
                return p
        return None

    def waypoints(self, length: float, z_range, vary_height: bool) -> np.ndarray | None:
        """A random route of free straight segments (1.5–4 m) whose total length is >= `length`."""
        rng = self.rng
        p = self.free_point(z_range, extra=0.3)
        if p is None:
            return None
        heading, points, total = self.inward(p) + rng.normal(0.0, 0.8), [p], 0.0
        while total < length:
            x0, x1, y0, y1 = self.scene.bounds  # how far out (0 centre, 1 edge): turn back in near the edge
            out = max(abs(2 * p[0] - x0 - x1) / (x1 - x0), abs(2 * p[1] - y0 - y1) / (y1 - y0))
            if rng.random() < out**2:
                heading = self.inward(p) + rng.normal(0.0, 0.5)
            for attempt in range(40):
                h = heading + rng.normal(0.0, 0.5 + 0.08 * attempt)
                step = rng.uniform(1.5, 4.0)
                z = rng.uniform(*z_range) if vary_height else p[2]
                q = np.array([p[0] + step * math.sin(h), p[1] + step * math.cos(h), z])
                if self.inside(q, self.margin)[0] and segment_clearance(self.scene, p, q) >= self.margin:
                    break
            else:
                return None
            points.append(q)
            total += float(np.linalg.norm(q - p))
            p, heading = q, h
        return np.array(points)


def _route(planner: _Planner, length: float, z_range, vary_height: bool, step: float = 0.02):
    """A smooth route (dense points every `step` m, their arc lengths, smoothed headings) or None."""
    pts = planner.waypoints(length, z_range, vary_height)
    if pts is None:
        return None
    dense, s = _resample(_chaikin(pts), step)
    if len(s) < 4:
        return None
    tangent = np.gradient(dense, axis=0)
    heading = np.unwrap(_heading(tangent[:, 0], tangent[:, 1]))
    heading = gaussian_filter1d(heading, sigma=0.4 / step, mode="nearest")
    return dense, s, heading


def _travel(planner: _Planner, kind: str, seconds: float, fps: float, n: int):
    """walk / fly: constant cruising speed, slower in bends; looks ahead with a gentle look-around."""
    rng, limits = planner.rng, planner.limits
    fly = kind == "fly"
    v0 = min(rng.uniform(0.7, 1.6) if fly else rng.uniform(0.5, 1.2), 0.9 * limits.max_speed)
    z_range = planner.heights(kind)
    if not fly:
        z_range = (z := rng.uniform(*z_range), z)
    route = _route(planner, v0 * seconds + 1.0, z_range, vary_height=fly)
    if route is None:
        return None
    dense, s, heading = route
    step = s[1] - s[0]
    kappa = np.abs(np.gradient(heading, step))
    v = np.minimum(v0, np.radians(0.45 * limits.max_turn_rate) / np.maximum(kappa, 1e-6))
    v = gaussian_filter1d(minimum_filter1d(v, size=int(1.0 / step)), sigma=0.3 / step, mode="nearest")
    v = np.maximum(v, 0.1)
    t_of_s = np.concatenate([[0.0], np.cumsum(step / v[:-1])])
    times = np.arange(n) / fps
    if t_of_s[-1] < times[-1]:
        return None
    si = np.interp(times, t_of_s, s)
    pos = _interp(si, s, dense)
    yaw = np.interp(si, s, heading) + _wave(rng, times, np.radians(rng.uniform(0, 12)), (7, 14))
    yaw = gaussian_filter1d(yaw, sigma=0.25 * fps, mode="nearest")
    pitch = np.radians(rng.uniform(-10, 2)) + _wave(rng, times, np.radians(rng.uniform(0, 3)), (6, 12))
    if fly:
        vel = np.gradient(pos, axis=0)
        climb = np.arctan2(vel[:, 2], np.linalg.norm(vel[:, :2], axis=-1) + 1e-9)
        pitch = pitch + 0.5 * gaussian_filter1d(climb, sigma=0.5 * fps, mode="nearest")
    return pos, yaw, pitch


def _revisit(planner: _Planner, kind: str, seconds: float, fps: float, n: int):
    """Out along a route and back along the same poses: s(t) = L(1 − cos 2πt/T)/2, mirrored exactly."""
    rng, limits = planner.rng, planner.limits
    fly = rng.random() < 0.3
    v0 = min(rng.uniform(0.6, 1.4), 0.9 * limits.max_speed)
    length = v0 * seconds / np.pi  # the peak speed of the cosine profile is v0
    z_range = planner.heights("fly" if fly else "walk")
    if not fly:
        z_range = (z := rng.uniform(*z_range), z)
    route = _route(planner, length + 0.5, z_range, vary_height=fly)
    if route is None:
        return None
    dense, s, heading = route
    step = s[1] - s[0]
    heading = gaussian_filter1d(heading, sigma=0.6 / step, mode="nearest")
    kappa = np.abs(np.gradient(heading, step))[s <= length].max()
    if v0 * kappa > np.radians(0.45 * limits.max_turn_rate):  # slower everywhere: a shorter trip out
        length *= np.radians(0.45 * limits.max_turn_rate) / (v0 * kappa)
    half = np.arange((n + 1) // 2)
    si = np.empty(n)
    si[: len(half)] = length * (1.0 - np.cos(2.0 * np.pi * half / (n - 1))) / 2.0
    si[len(half) :] = si[: n - len(half)][::-1]  # frame F−1−i revisits frame i exactly
    wavelength = rng.uniform(4.0, 8.0)
    look, phase = np.radians(rng.uniform(0, 15)), rng.uniform(0, 2 * np.pi)
    pos = _interp(si, s, dense)
    yaw = np.interp(si, s, heading) + look * np.sin(2 * np.pi * si / wavelength + phase)
    pitch = np.radians(rng.uniform(-10, 2)) + np.radians(rng.uniform(0, 3)) * np.sin(si / wavelength)
    return pos, yaw, pitch


def _orbit(planner: _Planner, kind: str, seconds: float, fps: float, n: int):
    """Circle an object at a collision-free radius, looking at it."""
    rng, limits, scene = planner.rng, planner.limits, planner.scene
    candidates = [o for o in scene.objects if o.role in ("object", "tree")]
    times = np.arange(n) / fps
    for attempt in range(12):
        if candidates and rng.random() < 0.85:
            obj = candidates[int(rng.integers(len(candidates)))]
            centre = np.array(obj.parts[0].pos[:2])
            ext = np.array([np.abs(np.asarray(p.pos[:2]) - centre).max() + p.scene_half_extents()[:2].max()
                            for p in obj.parts]).max()  # fmt: skip
            top = max(p.pos[2] + p.scene_half_extents()[2] for p in obj.parts)
        else:
            spot = planner.free_point(planner.heights("walk"), extra=0.5)
            if spot is None:
                continue
            centre, ext, top = spot[:2], 0.0, 1.0
        radius = ext + planner.margin + rng.uniform(0.6, 3.5)
        h_lo, h_hi = planner.heights("orbit")
        height = rng.uniform(h_lo, h_hi)
        target_z = rng.uniform(0.2, max(0.3, min(top, height + 0.5)))
        v0 = rng.uniform(0.4, 1.1)
        omega = min(v0 / radius, np.radians(0.45 * limits.max_turn_rate), 0.9 * limits.max_speed / radius)
        if attempt < 6 and rng.random() < 0.7:  # full circles
            angle = rng.uniform(0, 2 * np.pi) + rng.choice([-1.0, 1.0]) * omega * times
        else:  # an arc swung back and forth, for crowded spots
            swing = rng.uniform(np.radians(30), np.radians(100))
            period = max(rng.uniform(8, 16), 2 * np.pi * swing / omega)
            angle = rng.uniform(0, 2 * np.pi) + swing * np.sin(
                2 * np.pi * times / period + rng.uniform(0, 6.3)
            )
        r = radius * (1.0 + _wave(rng, times, rng.uniform(0.0, 0.08), (10, 18)))
        z = height + _wave(rng, times, rng.uniform(0.0, 0.15), (8, 14))
        pos = np.stack([centre[0] + r * np.cos(angle), centre[1] + r * np.sin(angle), z], axis=-1)
        if not planner.inside(pos, planner.margin).all():
            continue
        if clearance(scene, pos)[0].min() < planner.margin:
            continue
        look = np.array([centre[0], centre[1], target_z]) - pos
        yaw = _heading(look[:, 0], look[:, 1])
        pitch = np.arctan2(look[:, 2], np.linalg.norm(look[:, :2], axis=-1))
        return pos, np.unwrap(yaw), pitch
    return None


def _pan(planner: _Planner, kind: str, seconds: float, fps: float, n: int):
    """Turn in place (sweep or scan) with a slight drift of the camera centre."""
    rng, limits = planner.rng, planner.limits
    z_range = planner.heights("pan")
    spot = planner.free_point(z_range, extra=0.45)
    if spot is None:
        return None
    times = np.arange(n) / fps
    max_rate = np.radians(0.55 * limits.max_turn_rate)
    if rng.random() < 0.5:  # steady sweep
        rate = rng.uniform(min(np.radians(8.0), max_rate), max_rate)
        yaw = rng.uniform(-np.pi, np.pi) + rng.choice([-1.0, 1.0]) * rate * times
    else:  # back-and-forth scan
        amplitude = np.radians(rng.uniform(30, 100))
        period = max(rng.uniform(6, 14), 2 * np.pi * amplitude / max_rate)
        inward = planner.inward(spot) + rng.uniform(-1.0, 1.0)  # scan around the way to the centre
        yaw = inward + amplitude * np.sin(2 * np.pi * times / period + rng.uniform(0, 6.3))
    pitch = np.radians(rng.uniform(-10, 5)) + _wave(rng, times, np.radians(rng.uniform(0, 6)), (6, 12))
    drift = np.stack(
        [_wave(rng, times, rng.uniform(0, 0.15), (8, 20)) + _wave(rng, times, rng.uniform(0, 0.1), (8, 20)),
         _wave(rng, times, rng.uniform(0, 0.15), (8, 20)) + _wave(rng, times, rng.uniform(0, 0.1), (8, 20)),
         _wave(rng, times, rng.uniform(0, 0.05), (8, 20))], axis=-1,
    )  # fmt: skip
    return spot + drift, yaw, pitch


_GENERATORS = {"walk": _travel, "fly": _travel, "orbit": _orbit, "pan": _pan, "revisit": _revisit}


def _to_trajectory(pos, yaw, pitch, k: np.ndarray, size, fps: float) -> Trajectory:
    c2w = np.tile(np.eye(4), (len(pos), 1, 1))
    c2w[:, :3, :3] = yaw_pitch_roll_rotation(yaw, pitch, np.zeros_like(yaw))
    c2w[:, :3, 3] = scene_to_world(pos)
    return Trajectory(c2w=c2w, intrinsics=np.tile(k, (len(pos), 1)), image_size=size, fps=fps)


def _midpoints_clear(scene: SceneSpec, traj: Trajectory, required: float) -> bool:
    mid = 0.5 * (traj.positions[1:] + traj.positions[:-1])
    return len(mid) == 0 or clearance(scene, world_to_scene(mid))[0].min() >= required


def plan_path(
    scene: SceneSpec,
    seed: int,
    kind: str,
    seconds: float,
    fps: float = 16.0,
    *,
    size=256,
    fov_deg: float = 60.0,
    limits: PathLimits | None = None,
    attempts: int = 40,
) -> CameraPath:
    """A collision-free `kind` path of `seconds` at `fps` through `scene` (see `path_for`), with metadata."""
    if kind not in PATH_KINDS:
        raise ValueError(f"unknown path kind {kind!r}; choose one of {', '.join(PATH_KINDS)}")
    if not (0 < float(seconds) <= MAX_SECONDS):
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:g}], got {seconds}")
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    limits = limits or PathLimits()
    size = parse_size(size)
    k = intrinsics_for_fov(size, fov_deg)
    n = num_frames(seconds, fps)
    for attempt in range(attempts):
        rng = np.random.default_rng([scene.seed, int(seed), PATH_KINDS.index(kind), attempt])
        planned = _GENERATORS[kind](_Planner(scene, limits, rng), kind, float(seconds), float(fps), n)
        if planned is None:
            continue
        traj = _to_trajectory(*planned, k, size, float(fps))
        if check_limits(traj, limits) or not check_clearance(scene, traj, limits.clearance).ok:
            continue
        if _midpoints_clear(scene, traj, limits.clearance):
            return CameraPath(traj, kind, int(seed), attempt, limits)
    raise RuntimeError(
        f"found no collision-free {kind} path of {seconds} s in scene {scene.seed} ({scene.kind}) within "
        f"{attempts} attempts; try another path seed or kind, a shorter duration or a smaller clearance"
    )


def path_for(
    scene: SceneSpec, seed: int, kind: str, seconds: float, fps: float = 16.0, **kwargs
) -> Trajectory:
    """A smooth collision-free camera path (world frame, OpenCV axes, metres) through `scene`.

    Args:
        scene: the scene (its seed is part of the path's random stream).
        seed: the path seed; kind: one of PATH_KINDS; seconds: up to 60; fps: frames per second.
        size: (H, W) or N of the images the intrinsics are for (default 256); fov_deg: horizontal field
            of view in [25, 120] (default 60); limits: `PathLimits` (speed, turn rate, clearance).

    Returns:
        A `Trajectory` of round(seconds·fps) + 1 poses with intrinsics, image_size and fps.
    """
    return plan_path(scene, seed, kind, seconds, fps, **kwargs).trajectory


def place_trajectory(
    scene: SceneSpec, trajectory: Trajectory, seed: int = 0, height: float = 1.6, tries: int = 64
) -> tuple[Trajectory, np.ndarray]:
    """Move a trajectory into the scene by a yaw about the vertical and a translation.

    For paths given in their own frame (e.g. a preset or an action string, starting at the identity):
    the first camera centre goes to a free spot `height` m above the floor and the path turns about the
    vertical; of `tries` seeded candidates, the one whose path stays farthest from every surface wins.
    The path's shape, pitch and roll are unchanged (its world frame must be y-down, like sanawm's).

    Returns:
        (the moved trajectory, the (4, 4) world transform G applied: c2w' = G @ c2w).
    """
    rng = np.random.default_rng([scene.seed, int(seed), 99])
    planner = _Planner(scene, PathLimits(), rng)
    start = trajectory.positions[0]
    best, best_score = None, -np.inf
    for _ in range(tries):
        spot = planner.free_point((height, height))
        if spot is None:
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        g = np.eye(4)
        g[:3, :3] = yaw_pitch_roll_rotation(yaw, 0.0)
        g[:3, 3] = scene_to_world(spot) - g[:3, :3] @ start
        moved = g @ trajectory.c2w
        score = clearance(scene, world_to_scene(moved[:, :3, 3]))[0].min()
        if score > best_score:
            best, best_score = g, score
    if best is None:
        raise RuntimeError(
            f"scene {scene.seed} has no free spot at height {height} m to place the trajectory"
        )
    return replace(trajectory, c2w=best @ trajectory.c2w), best
