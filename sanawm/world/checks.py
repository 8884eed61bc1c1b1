"""Checks on camera paths in a scene: clearance from every surface, speed and turn rate.

All take a world-frame `Trajectory` (see `geometry` for the frames) and report; none alters a path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cameras import Trajectory
from .geometry import clearance, world_to_scene
from .scene import SceneSpec


@dataclass(frozen=True)
class PathLimits:
    """Motion limits of generated paths.

    max_speed: metres per second of the camera centre. max_turn_rate: degrees per second of the camera's
    rotation (the angle between consecutive orientations, times fps). clearance: metres the camera centre
    keeps from every object, wall, floor and ceiling.
    """

    max_speed: float = 1.5
    max_turn_rate: float = 60.0
    clearance: float = 0.3

    def __post_init__(self) -> None:
        for name in ("max_speed", "max_turn_rate", "clearance"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"PathLimits.{name} must be a positive number, got {value!r}")


@dataclass(frozen=True)
class ClearanceReport:
    """Where a trajectory comes closer than `required` metres to the scene's surfaces."""

    required: float
    distances: np.ndarray  # (F,) metres from each camera centre to the nearest surface
    nearest: tuple[str, ...]  # (F,) what that surface is ("room" = floor, walls or ceiling)

    @property
    def ok(self) -> bool:
        return bool((self.distances >= self.required).all())

    @property
    def violations(self) -> np.ndarray:
        """Indices of the frames closer than `required`."""
        return np.flatnonzero(self.distances < self.required)

    @property
    def min_distance(self) -> float:
        return float(self.distances.min())

    def message(self) -> str:
        bad = self.violations
        if not len(bad):
            return f"clear: >= {self.required:g} m from every surface (min {self.min_distance:.2f} m)"
        worst = int(np.argmin(self.distances))
        inside = int((self.distances[bad] < 0).sum())
        return (
            f"{len(bad)} of {len(self.distances)} frames come closer than {self.required:g} m to the scene "
            f"({inside} inside a solid); closest: frame {worst}, {self.distances[worst]:.2f} m from "
            f"{self.nearest[worst]!r}; first frames: {bad[:8].tolist()}"
        )

    def to_json(self) -> dict:
        bad = self.violations
        return {
            "required_m": self.required,
            "min_distance_m": round(self.min_distance, 4),
            "frames_too_close": bad.tolist(),
            "nearest": sorted({self.nearest[i] for i in bad}),
        }


def check_clearance(scene: SceneSpec, trajectory: Trajectory, required: float = 0.3) -> ClearanceReport:
    """Distance from every camera centre of a world-frame trajectory to the scene (markers excluded)."""
    d, names = clearance(scene, world_to_scene(trajectory.positions))
    return ClearanceReport(float(required), d, tuple(names))


def speeds(trajectory: Trajectory) -> np.ndarray:
    """(F − 1,) metres per second between consecutive frames (needs fps or timestamps)."""
    dt = np.diff(trajectory.times)
    return np.linalg.norm(np.diff(trajectory.positions, axis=0), axis=-1) / dt


def turn_rates(trajectory: Trajectory) -> np.ndarray:
    """(F − 1,) degrees per second: the rotation angle between consecutive camera orientations over dt."""
    r = trajectory.c2w[:, :3, :3]
    rel = np.einsum("fji,fjk->fik", r[:-1], r[1:])  # R_i^T R_{i+1}
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    return np.degrees(np.arccos(cos)) / np.diff(trajectory.times)


def check_limits(trajectory: Trajectory, limits: PathLimits, slack: float = 1e-6) -> list[str]:
    """Human-readable violations of the speed and turn-rate limits (empty when within them)."""
    problems = []
    v, w = speeds(trajectory), turn_rates(trajectory)
    if len(v) and v.max() > limits.max_speed + slack:
        i = int(v.argmax())
        problems.append(f"speed {v[i]:.2f} m/s between frames {i} and {i + 1} > {limits.max_speed:g} m/s")
    if len(w) and w.max() > limits.max_turn_rate + slack:
        i = int(w.argmax())
        problems.append(
            f"turn rate {w[i]:.1f} deg/s between frames {i} and {i + 1} > {limits.max_turn_rate:g} deg/s"
        )
    return problems
