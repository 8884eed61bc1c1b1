"""The key DSL: "w-100,dw-60" → a camera path (the diffusers / later NVlabs convention, SPEC §4).

An action string is comma-separated segments "<keys>-<frames>": hold `keys` for `frames` frames.

| key    | motion per frame                                                        |
| ------ | ----------------------------------------------------------------------- |
| w / s  | forward / back: the camera's z axis projected onto the ground (x–z)     |
| d / a  | right / left: the camera's x axis projected onto the ground             |
| l / j  | yaw right / left about the world vertical (y)                           |
| i / k  | pitch up / down about the camera's x axis, kept inside ±pitch_limit     |
| none   | stand still (an empty key part, "-10", means the same, as in diffusers) |

Keys in one segment combine ("dw-60" moves forward while strafing right); opposing keys cancel. Case
and whitespace are ignored and the full-width comma "，" separates segments like ",".

Metric meaning: translation is in the world's units per frame (metres when the scene is metric, as
SANA-WM's training poses are), so speed in units per second = `translation × fps`; likewise the turn
rate in degrees per second = `rotation_deg × fps`. At 16 fps the diffusers speeds (0.05, 1.2°) are
0.8 units/s and 19.2°/s; the NVlabs streaming speeds (0.025, 0.6°) are 0.4 units/s and 9.6°/s.

The rollout starts at the identity (OpenCV axes: x right, y down, z forward) and returns N + 1 poses
for N frames of actions. Each frame first rotates, then moves along the rotated camera's ground-
projected axes. A pitch step that would leave ±pitch_limit is dropped whole (not clipped), as in
diffusers: at 1.2°/frame and 85° the pitch stops at 84.0°. With the default speeds the poses equal
`diffusers.pipelines.sana_wm.cam_utils.action_string_to_c2w` (which returns float32; ours are float64).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .trajectory import Trajectory

# key -> what it does; the order is the one error messages list them in.
KEY_MEANINGS: dict[str, str] = {
    "w": "forward",
    "s": "back",
    "a": "left",
    "d": "right",
    "i": "pitch up",
    "k": "pitch down",
    "j": "yaw left",
    "l": "yaw right",
}
ALLOWED_KEYS = frozenset(KEY_MEANINGS)
_KEY_HELP = ", ".join(f"{k} ({v})" for k, v in KEY_MEANINGS.items()) + ", or 'none' to stand still"
_EXAMPLE = "e.g. 'w-100,dw-60'"


@dataclass(frozen=True)
class ActionSpeeds:
    """How far one frame of a held key moves the camera.

    translation: world units per frame for w/a/s/d (metres when the scene is metric).
    rotation_deg: degrees per frame for i/j/k/l.
    pitch_limit_deg: |pitch| never exceeds this (0 to 90 degrees).
    """

    translation: float = 0.05
    rotation_deg: float = 1.2
    pitch_limit_deg: float = 85.0

    def __post_init__(self) -> None:
        for name in ("translation", "rotation_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"ActionSpeeds.{name} must be a finite number >= 0, got {value}")
        if not (0 <= self.pitch_limit_deg <= 90):
            raise ValueError(
                f"ActionSpeeds.pitch_limit_deg must be between 0 and 90 degrees, got {self.pitch_limit_deg} "
                "(past 90 the camera would flip over and 'w' would walk backwards)"
            )

    def per_second(self, fps: float) -> dict[str, float]:
        """The same speeds per second at `fps`: units/s for translation, degrees/s for rotation."""
        return {"translation_per_s": self.translation * fps, "rotation_deg_per_s": self.rotation_deg * fps}

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


SPEED_PRESETS: dict[str, ActionSpeeds] = {
    "diffusers": ActionSpeeds(translation=0.05, rotation_deg=1.2, pitch_limit_deg=85.0),
    "streaming": ActionSpeeds(translation=0.025, rotation_deg=0.6, pitch_limit_deg=85.0),
}


def get_speeds(speeds: ActionSpeeds | str | None = None) -> ActionSpeeds:
    """An `ActionSpeeds`, by value or by preset name ("diffusers" — the default — or "streaming")."""
    if speeds is None:
        return SPEED_PRESETS["diffusers"]
    if isinstance(speeds, ActionSpeeds):
        return speeds
    try:
        return SPEED_PRESETS[speeds]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown action speed preset {speeds!r}; choose one of {sorted(SPEED_PRESETS)} "
            "or pass an ActionSpeeds(translation=..., rotation_deg=..., pitch_limit_deg=...)"
        ) from None


@dataclass(frozen=True)
class ActionSegment:
    """`keys` (sorted, deduplicated; "" means stand still) held for `frames` frames."""

    keys: str
    frames: int


def parse_actions(action: str) -> list[ActionSegment]:
    """Parse an action string into segments; errors say what to write instead."""
    if not isinstance(action, str):
        raise ValueError(f"the action string must be a str, {_EXAMPLE}; got {type(action).__name__}")
    cleaned = "".join(action.replace("，", ",").split())  # drop all whitespace, full-width comma -> ","
    if not cleaned:
        raise ValueError(
            f"the action string is empty; write comma-separated '<keys>-<frames>' segments, {_EXAMPLE}"
        )
    pieces = cleaned.split(",")
    segments = []
    for index, piece in enumerate(pieces, start=1):
        where = f"segment {index} of {len(pieces)}"
        if not piece:
            raise ValueError(f"the action string {action!r} has an empty {where}; remove the extra comma")
        if "-" not in piece:
            raise ValueError(
                f"action {where} {piece!r} has no frame count; write '<keys>-<frames>', e.g. '{piece}-10'"
            )
        keys_part, frames_part = piece.rsplit("-", 1)
        if not frames_part.isdecimal() or int(frames_part) <= 0 or "-" in keys_part:
            raise ValueError(
                f"action {where} {piece!r} needs a positive whole number of frames after the '-', "
                f"e.g. '{keys_part.replace('-', '') or 'w'}-10'"
            )
        keys_part = keys_part.lower()
        if keys_part == "none":
            keys_part = ""
        unknown = sorted(set(keys_part) - ALLOWED_KEYS)
        if unknown:
            raise ValueError(
                f"action {where} {piece!r} has unknown key{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(map(repr, unknown))}; allowed keys: {_KEY_HELP}"
            )
        segments.append(ActionSegment(keys="".join(sorted(set(keys_part))), frames=int(frames_part)))
    return segments


def yaw_pitch_roll_rotation(yaw, pitch, roll=0.0) -> np.ndarray:
    """Camera-to-world rotation(s) Ry(yaw) @ Rx(pitch) @ Rz(roll), angles in radians (OpenCV axes).

    Positive yaw turns right about the world vertical, positive pitch looks up (about the camera's
    x axis), positive roll dips the camera's right side. Broadcasts: angles of shape S give (*S, 3, 3).
    """
    yaw, pitch, roll = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (yaw, pitch, roll)))
    zero, one = np.zeros_like(yaw), np.ones_like(yaw)

    def stack(rows):
        return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)

    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    r_yaw = stack([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    r_pitch = stack([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    r_roll = stack([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return r_yaw @ r_pitch @ r_roll


def _on_ground(v: np.ndarray) -> np.ndarray:
    """(F, 3) directions with their vertical (y) part removed, scaled to unit length (zero stays zero)."""
    flat = v * np.array([1.0, 0.0, 1.0])
    norm = np.linalg.norm(flat, axis=-1, keepdims=True)
    return np.divide(flat, norm, out=np.zeros_like(flat), where=norm > 0)


def actions_to_c2w(action: str, speeds: ActionSpeeds | str | None = None) -> np.ndarray:
    """Roll out an action string into (N + 1, 4, 4) float64 camera-to-world poses; pose 0 is the identity.

    Args:
        action: e.g. "w-100,dw-60" (see the module docstring for the keys).
        speeds: an `ActionSpeeds` or a preset name ("diffusers", the default, or "streaming").
    """
    speeds = get_speeds(speeds)
    held = [set(seg.keys) for seg in parse_actions(action) for _ in range(seg.frames)]  # one set per frame

    def axis(positive: str, negative: str) -> np.ndarray:
        """(N,) +1 / 0 / -1 per frame: which way a pair of opposing keys pushes."""
        return np.array([(positive in keys) - (negative in keys) for keys in held], dtype=np.float64)

    # Rotate first. Yaw about the world vertical and pitch about the camera's x axis compose to
    # Ry(yaw) @ Rx(pitch), so the orientation after each frame is two running angles. A pitch step that
    # would leave ±limit is dropped whole, and the sums are added step by step, both as diffusers does.
    step, limit = math.radians(speeds.rotation_deg), math.radians(speeds.pitch_limit_deg)
    yaw = np.cumsum(axis("l", "j") * step)
    pitch, pitches = 0.0, []
    for direction in axis("i", "k"):
        if -limit <= pitch + direction * step <= limit:
            pitch += direction * step
        pitches.append(pitch)
    rotation = yaw_pitch_roll_rotation(yaw, np.array(pitches))  # (N, 3, 3)

    # Then move along the rotated camera's forward (z) and right (x) axes, flattened onto the ground.
    forward, right = _on_ground(rotation[:, :, 2]), _on_ground(rotation[:, :, 0])
    move = speeds.translation * (axis("w", "s")[:, None] * forward + axis("d", "a")[:, None] * right)

    c2w = np.tile(np.eye(4), (len(held) + 1, 1, 1))
    c2w[1:, :3, :3] = rotation
    c2w[1:, :3, 3] = np.cumsum(move, axis=0)
    return c2w


def actions_to_trajectory(
    action: str, speeds: ActionSpeeds | str | None = None, fps: float | None = None
) -> Trajectory:
    """`actions_to_c2w` as a `Trajectory` (N + 1 poses, `fps` attached when given)."""
    return Trajectory(c2w=actions_to_c2w(action, speeds), fps=fps)


__all__ = [
    "ALLOWED_KEYS",
    "KEY_MEANINGS",
    "SPEED_PRESETS",
    "ActionSegment",
    "ActionSpeeds",
    "actions_to_c2w",
    "actions_to_trajectory",
    "get_speeds",
    "parse_actions",
    "yaw_pitch_roll_rotation",
]
