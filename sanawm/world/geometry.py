"""Scene geometry for collision checks, and the fixed map between scene and world coordinates.

Two frames, both metres, one fixed rotation apart:
- scene (MuJoCo's, used by `SceneSpec` and the MJCF): x, y horizontal, z up, floor at z = 0;
- world (every `Trajectory` of sanawm, as in `sanawm.cameras.presets`): the ground is the x–z plane
  and "up" is −y, so a level camera has a pure yaw rotation about y. world = SCENE_TO_WORLD @ scene:
  x_w = x_s, y_w = −z_s, z_w = y_s (a camera at eye height h has world y = −h).

Distances: `clearance(spec, points)` is a lower bound on the distance (metres) from each point to the
scene's surfaces (exact for boxes, spheres, cylinders, capsules, planes; a tight lower bound for
ellipsoids), negative inside a solid.
"""

from __future__ import annotations

import numpy as np

from .scene import Primitive, SceneSpec

SCENE_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def scene_to_world(points) -> np.ndarray:
    """(..., 3) scene points → world points."""
    return np.asarray(points, dtype=np.float64) @ SCENE_TO_WORLD.T


def world_to_scene(points) -> np.ndarray:
    """(..., 3) world points → scene points."""
    return np.asarray(points, dtype=np.float64) @ SCENE_TO_WORLD


def c2w_scene_to_world(c2w_scene: np.ndarray) -> np.ndarray:
    """(F, 4, 4) camera-to-scene poses (OpenCV camera axes) → camera-to-world poses."""
    out = np.array(c2w_scene, dtype=np.float64, copy=True)
    out[:, :3, :] = SCENE_TO_WORLD @ out[:, :3, :]
    return out


def c2w_world_to_scene(c2w_world: np.ndarray) -> np.ndarray:
    """(F, 4, 4) camera-to-world poses → camera-to-scene poses (OpenCV camera axes)."""
    out = np.array(c2w_world, dtype=np.float64, copy=True)
    out[:, :3, :] = SCENE_TO_WORLD.T @ out[:, :3, :]
    return out


def primitive_distance(part: Primitive, points: np.ndarray) -> np.ndarray:
    """(N,) distance from (N, 3) scene points to the primitive's surface (negative inside)."""
    local = (np.asarray(points, dtype=np.float64) - np.asarray(part.pos)) @ part.rotation()
    s = part.size
    if part.shape == "sphere":
        return np.linalg.norm(local, axis=-1) - s[0]
    if part.shape == "box":
        q = np.abs(local) - np.asarray(s[:3])
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        return outside + np.minimum(q.max(axis=-1), 0.0)
    if part.shape == "cylinder":
        d = np.stack([np.linalg.norm(local[:, :2], axis=-1) - s[0], np.abs(local[:, 2]) - s[1]], axis=-1)
        return np.minimum(d.max(axis=-1), 0.0) + np.linalg.norm(np.maximum(d, 0.0), axis=-1)
    if part.shape == "capsule":
        axis = np.clip(local[:, 2], -s[1], s[1])
        return np.linalg.norm(local - np.stack([0 * axis, 0 * axis, axis], -1), axis=-1) - s[0]
    if part.shape == "ellipsoid":
        # Scaling by 1/a maps the ellipsoid to the unit sphere and shrinks lengths by at most 1/min(a),
        # so (|p/a| - 1) * min(a) never exceeds the true distance.
        a = np.asarray(s[:3])
        return (np.linalg.norm(local / a, axis=-1) - 1.0) * a.min()
    raise ValueError(f"unknown primitive shape {part.shape!r}")


def room_distance(spec: SceneSpec, points: np.ndarray) -> np.ndarray:
    """(N,) distance to the floor, and indoors to the walls and the ceiling (negative outside)."""
    p = np.asarray(points, dtype=np.float64)
    d = [p[:, 2]]
    if spec.walls:
        x0, x1, y0, y1 = spec.bounds
        d += [p[:, 0] - x0, x1 - p[:, 0], p[:, 1] - y0, y1 - p[:, 1]]
    if spec.ceiling_height is not None:
        d.append(spec.ceiling_height - p[:, 2])
    return np.min(np.stack(d, axis=-1), axis=-1)


def clearance(spec: SceneSpec, points, include_markers: bool = False) -> tuple[np.ndarray, list[str]]:
    """Distance from each scene point to the nearest surface, and what that surface is.

    Args:
        points: (N, 3) scene coordinates.
        include_markers: count marker objects (added by `SceneSpec.with_marker`) as obstacles.

    Returns:
        ((N,) metres, N names: an object name, or "room" for floor/walls/ceiling).
    """
    p = np.atleast_2d(np.asarray(points, dtype=np.float64))
    names = ["room"]
    dists = [room_distance(spec, p)]
    for obj, part in spec.primitives():
        if obj.role == "marker" and not include_markers:
            continue
        names.append(obj.name)
        dists.append(primitive_distance(part, p))
    stack = np.stack(dists, axis=-1)
    nearest = stack.argmin(axis=-1)
    return stack[np.arange(len(p)), nearest], [names[i] for i in nearest]


def segment_clearance(spec: SceneSpec, a, b, step: float = 0.05) -> float:
    """The smallest clearance along the straight segment a → b (scene points), sampled every `step` m."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = max(2, int(np.ceil(np.linalg.norm(b - a) / step)) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return float(clearance(spec, a + t * (b - a))[0].min())
