"""KITTI odometry trajectories (`kitti`): `poses.txt`, optionally with `calib.txt` and `times.txt`.

- poses.txt: one line a frame, 12 numbers: the row-major 3x4 CAMERA-TO-WORLD matrix of camera 0
  (OpenCV axes, metres; the world is camera 0 at frame 0).
- calib.txt: lines `P0: p00 p01 ... p23`, the 3x4 projection matrices; `P0` = K [I | 0] of camera 0
  gives (fx, fy, cx, cy). Other lines (P1..P3, Tr) are not read.
- times.txt: one timestamp in seconds a line.

A folder is read as a sequence: its poses.txt, plus calib.txt and times.txt when present. A single
poses file reads alone unless `calib` / `times` name the other files. KITTI stores no image size; pass
`image_size` (sequence 07 is 370 x 1226) to attach one.

Writing to a folder (a path without suffix) writes poses.txt, calib.txt (only `P0`; needs one set of
intrinsics for all frames) when the trajectory has intrinsics, and times.txt when it has timestamps or
an fps. Writing to a `.txt` path writes the poses alone. `float_format=None` writes exact float64 text;
`KITTI_FLOAT_FORMAT` ("%e") reproduces the published poses.txt and times.txt byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory

POSES, CALIB, TIMES = "poses.txt", "calib.txt", "times.txt"
KITTI_FLOAT_FORMAT = "%e"


def read_kitti(
    path,
    *,
    calib=None,
    times=None,
    image_size: tuple[int, int] | None = None,
) -> Trajectory:
    """Read KITTI odometry poses (and intrinsics / timestamps).

    Args:
        path: a poses file, or a folder holding poses.txt (and calib.txt / times.txt, used when present).
        calib: a calib.txt whose P0 gives the intrinsics (overrides the folder's).
        times: a times.txt with one timestamp in seconds per pose (overrides the folder's).
        image_size: (H, W) of the images, attached to the trajectory (KITTI files do not store it).

    Returns:
        Trajectory with c2w (F, 4, 4), intrinsics (F, 4) when calib is known, timestamps when times is.
    """
    path = Path(path)
    if path.is_dir():
        folder, path = path, path / POSES
        if not path.is_file():
            raise ValueError(
                f"{folder} has no {POSES}; pass the poses file itself or a KITTI sequence folder"
            )
        if calib is None and (folder / CALIB).is_file():
            calib = folder / CALIB
        if times is None and (folder / TIMES).is_file():
            times = folder / TIMES
    rows, line_numbers = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            rows.append(_numbers(line, 12, path, number, "a row-major 3x4 camera-to-world matrix"))
            line_numbers.append(number)
    if not rows:
        raise ValueError(f"{path} has no poses; KITTI poses files hold 12 numbers a line")
    c2w = np.array(rows, dtype=np.float64).reshape(-1, 3, 4)
    intrinsics = None if calib is None else _read_p0(Path(calib))
    stamps = None if times is None else _read_times(Path(times), len(c2w))
    try:
        return Trajectory(c2w=c2w, intrinsics=intrinsics, image_size=image_size, timestamps=stamps)
    except ValueError as err:
        match = re.match(r"pose (\d+)", str(err))
        where = f", line {line_numbers[int(match.group(1))]}" if match else ""
        raise ValueError(f"{path}{where}: {err}") from None


def write_kitti(traj: Trajectory, path, float_format: str | None = None) -> None:
    """Write KITTI files: a folder gets poses.txt (+ calib.txt, times.txt); a `.txt` path the poses only.

    Args:
        float_format: printf format for the numbers; None writes exact float64 text,
            KITTI_FLOAT_FORMAT ("%e") the published precision.
    """
    path = Path(path)

    def num(x: float) -> str:
        return repr(float(x)) if float_format is None else float_format % x

    folder = path.suffix == "" or path.is_dir()
    if folder and traj.intrinsics is not None and np.any(traj.intrinsics != traj.intrinsics[0]):
        raise ValueError(
            f"cannot write {path / CALIB}: KITTI's P0 holds one set of intrinsics but they change across "
            "frames; write a format with per-frame intrinsics (json, re10k, colmap) or make them constant"
        )
    poses_path = path / POSES if folder else path
    if folder:
        path.mkdir(parents=True, exist_ok=True)
    poses_path.write_text("".join(" ".join(num(v) for v in m[:3].reshape(-1)) + "\n" for m in traj.c2w))
    if not folder:
        return
    if traj.intrinsics is not None:
        fx, fy, cx, cy = traj.intrinsics[0]
        p0 = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        (path / CALIB).write_text("P0: " + " ".join(num(v) for v in p0) + "\n")
    if traj.timestamps is not None or traj.fps is not None:
        (path / TIMES).write_text("".join(num(t) + "\n" for t in traj.times))


def _numbers(line: str, count: int, path: Path, number: int, what: str) -> list[float]:
    tokens = line.split()
    if len(tokens) != count:
        raise ValueError(
            f"{path}, line {number}: expected {count} numbers ({what}), got {len(tokens)}; "
            "fix or remove the line"
        )
    try:
        return [float(t) for t in tokens]
    except ValueError as err:
        raise ValueError(f"{path}, line {number}: {err}; every field must be a number") from None


def _read_p0(path: Path) -> np.ndarray:
    """calib.txt -> (4,) (fx, fy, cx, cy) from `P0: ...` = K [I | 0]."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        key, _, rest = line.partition(":")
        if key.strip() != "P0":
            continue
        p = np.array(_numbers(rest, 12, path, number, "P0: a row-major 3x4 projection matrix")).reshape(3, 4)
        pinhole = np.array([[p[0, 0], 0.0, p[0, 2], 0.0], [0.0, p[1, 1], p[1, 2], 0.0], [0.0, 0.0, 1.0, 0.0]])
        if not np.allclose(p, pinhole, rtol=0.0, atol=1e-9):
            raise ValueError(
                f"{path}, line {number}: P0 = {p.tolist()} is not K [I | 0] (zero skew, last row 0 0 1 0, "
                "no translation); the poses are camera 0's, so P0 must be camera 0's own projection"
            )
        return np.array([p[0, 0], p[1, 1], p[0, 2], p[1, 2]])
    raise ValueError(
        f"{path} has no 'P0:' line; KITTI calib.txt gives camera 0's projection as 'P0: <12 numbers>'"
    )


def _read_times(path: Path, num_poses: int) -> np.ndarray:
    stamps, line_numbers = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            stamps.append(_numbers(line, 1, path, number, "a timestamp in seconds")[0])
            line_numbers.append(number)
    if len(stamps) != num_poses:
        raise ValueError(
            f"{path} has {len(stamps)} timestamps but the poses file has {num_poses} poses; give one "
            "timestamp per pose (or leave times out)"
        )
    stamps = np.array(stamps, dtype=np.float64)
    bad = np.flatnonzero(np.diff(stamps) <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{path}, line {line_numbers[i]}: timestamp {stamps[i]!r} does not increase on the previous one "
            f"({stamps[i - 1]!r}); timestamps must be strictly increasing"
        )
    return stamps
