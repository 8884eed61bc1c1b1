"""TUM RGB-D trajectories (`tum`): one pose a line, camera-to-world.

    # timestamp tx ty tz qx qy qz qw
    1305031102.175304 1.3405 0.6266 1.6575 0.6574 0.6126 -0.2949 -0.3248

Timestamp in seconds, the camera centre (tx, ty, tz) in the world, and the camera-to-world rotation as
a unit quaternion in SCALAR-LAST order (qx, qy, qz, qw). Lines starting with `#` and blank lines are
skipped. The file stores no intrinsics, image size or fps: writing drops them, and a trajectory without
timestamps is written with i / fps (or frame indices when there is no fps either).

Quaternions are read with scipy (normalised; q and −q are the same rotation) and written with qw >= 0.
Axes are whatever the producer used: sanawm assumes OpenCV camera axes (x right, y down, z forward), as
COLMAP / ORB-SLAM outputs have; the TUM benchmark's own ground truth uses the same optical frame.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..trajectory import Trajectory

HEADER = "# timestamp tx ty tz qx qy qz qw"
_UNIT_TOL = 1e-3


def read_tum(path) -> Trajectory:
    """Read a TUM trajectory file -> Trajectory with c2w (F, 4, 4) and timestamps (F,) in seconds."""
    path = Path(path)
    rows, line_numbers = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = stripped.split()
        if len(tokens) != 8:
            raise ValueError(
                f"{path}, line {number}: expected 8 numbers (timestamp tx ty tz qx qy qz qw), got "
                f"{len(tokens)}; fix the line or comment it out with '#'"
            )
        try:
            row = [float(t) for t in tokens]
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: {err}; every field must be a number") from None
        norm = float(np.linalg.norm(row[4:]))
        if not abs(norm - 1.0) <= _UNIT_TOL:
            raise ValueError(
                f"{path}, line {number}: the quaternion (qx qy qz qw) = {row[4:]} has norm {norm:.6g}, "
                "not 1; TUM stores a unit quaternion, scalar last, after the position"
            )
        rows.append(row)
        line_numbers.append(number)
    if not rows:
        raise ValueError(f"{path} has no poses; a TUM line is 'timestamp tx ty tz qx qy qz qw'")
    data = np.array(rows, dtype=np.float64)
    c2w = np.zeros((len(data), 4, 4))
    c2w[:, :3, :3] = Rotation.from_quat(data[:, 4:]).as_matrix()
    c2w[:, :3, 3] = data[:, 1:4]
    c2w[:, 3, 3] = 1.0
    try:
        return Trajectory(c2w=c2w, timestamps=data[:, 0])
    except ValueError as err:
        if "timestamps" in str(err):
            bad = int(np.flatnonzero(np.diff(data[:, 0]) <= 0)[0]) + 1
            raise ValueError(
                f"{path}, line {line_numbers[bad]}: timestamp {data[bad, 0]!r} does not increase on the "
                f"previous pose's ({data[bad - 1, 0]!r}); sort the file by time and drop duplicates"
            ) from None
        match = re.match(r"pose (\d+)", str(err))
        where = f", line {line_numbers[int(match.group(1))]}" if match else ""
        raise ValueError(f"{path}{where}: {err}") from None


def write_tum(traj: Trajectory, path, float_format: str | None = None) -> None:
    """Write a TUM trajectory file (intrinsics are not stored).

    Args:
        float_format: printf format for the numbers; None writes exact float64 text.
    """

    def num(x: float) -> str:
        return repr(float(x)) if float_format is None else float_format % x

    quats = Rotation.from_matrix(traj.c2w[:, :3, :3]).as_quat(canonical=True)  # (F, 4) x y z w, w >= 0
    lines = [HEADER]
    for t, pos, q in zip(traj.times, traj.positions, quats, strict=True):
        lines.append(" ".join(num(v) for v in (t, *pos, *q)))
    Path(path).write_text("\n".join(lines) + "\n")
