"""Our trajectory format, as JSON (readable, exact float64 round-trip) or NPZ (compact).

JSON (`sanawm.trajectory`, version 1):

    {
      "format": "sanawm.trajectory", "version": 1,
      "convention": "opencv-c2w",          # x right, y down, z forward; camera-to-world; metres
      "fps": 16.0,                          # or null
      "image_size": [704, 1280],            # (H, W) the intrinsics refer to, or null
      "frames": [
        {"c2w": [[r00, r01, r02, tx], [r10, ...], [r20, ...], [0, 0, 0, 1]],
         "intrinsics": [fx, fy, cx, cy],   # pixels; present on every frame or on none
         "t": 0.0},                         # seconds; present on every frame or on none
        ...
      ]
    }

NPZ: arrays `c2w` (F,4,4), and when known `intrinsics` (F,4), `image_size` (2,), `fps` (), `timestamps` (F,).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory

FORMAT, VERSION = "sanawm.trajectory", 1


def write_json(traj: Trajectory, path: Path) -> None:
    frames = []
    for i in range(len(traj)):
        frame = {"c2w": traj.c2w[i].tolist()}
        if traj.intrinsics is not None:
            frame["intrinsics"] = traj.intrinsics[i].tolist()
        if traj.timestamps is not None:
            frame["t"] = float(traj.timestamps[i])
        frames.append(frame)
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "convention": "opencv-c2w",
        "fps": traj.fps,
        "image_size": None if traj.image_size is None else list(traj.image_size),
        "frames": frames,
    }
    path.write_text(json.dumps(doc, indent=1))


def read_json(path: Path) -> Trajectory:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file (its 'format' field should be {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ValueError(
            f"{path} has {FORMAT} version {doc.get('version')}; this sanawm reads version {VERSION}"
        )
    frames = doc.get("frames")
    if not frames:
        raise ValueError(f"{path} has no frames")
    try:
        c2w = np.array([f["c2w"] for f in frames], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: every frame needs a 4x4 'c2w' matrix") from None
    intrinsics = _all_or_none(frames, "intrinsics", path)
    times = _all_or_none(frames, "t", path)
    return Trajectory(
        c2w=c2w,
        intrinsics=None if intrinsics is None else np.array(intrinsics, dtype=np.float64),
        image_size=None if doc.get("image_size") is None else tuple(doc["image_size"]),
        fps=doc.get("fps"),
        timestamps=None if times is None else np.array(times, dtype=np.float64),
    )


def _all_or_none(frames, key, path):
    present = [key in f for f in frames]
    if all(present):
        return [f[key] for f in frames]
    if any(present):
        raise ValueError(f"{path}: '{key}' is on some frames but not all; give it on every frame or on none")
    return None


def write_npz(traj: Trajectory, path: Path) -> None:
    arrays = {"c2w": traj.c2w}
    if traj.intrinsics is not None:
        arrays["intrinsics"] = traj.intrinsics
    if traj.image_size is not None:
        arrays["image_size"] = np.array(traj.image_size, dtype=np.int64)
    if traj.fps is not None:
        arrays["fps"] = np.array(traj.fps, dtype=np.float64)
    if traj.timestamps is not None:
        arrays["timestamps"] = traj.timestamps
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def read_npz(path: Path) -> Trajectory:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path} is not a readable .npz file: {err}") from None
    if "c2w" not in data:
        raise ValueError(f"{path} has no 'c2w' array; arrays found: {sorted(data.files)}")
    return Trajectory(
        c2w=data["c2w"],
        intrinsics=data["intrinsics"] if "intrinsics" in data else None,
        image_size=tuple(int(x) for x in data["image_size"]) if "image_size" in data else None,
        fps=float(data["fps"]) if "fps" in data else None,
        timestamps=data["timestamps"] if "timestamps" in data else None,
    )
