"""RealEstate10K camera files (`re10k`): one text file per clip.

    https://www.youtube.com/watch?v=QShWPZxTDoE                              line 1: source video URL
    158692025 0.4748 0.8441 0.5 0.5 0 0 r00 r01 r02 t0 r10 r11 r12 t1 r20 r21 r22 t2     one line a frame

A frame line is: timestamp in integer microseconds; intrinsics normalised by the image size
(fx/W, fy/H, cx/W, cy/H); two unused zeros; the row-major 3x4 WORLD-TO-CAMERA matrix [R | t]
(OpenCV axes; the scale is SLAM's, not metres).

Reading inverts each pose to camera-to-world (rotation Rᵀ, camera centre −Rᵀt) and turns µs into
seconds. Intrinsics:

- `image_size=None` (default): they stay normalised and the trajectory's `image_size` is (1, 1), i.e.
  "pixels of a 1x1 image". `resize_intrinsics(K, (1, 1), (H, W))` turns them into pixels of the H x W
  video they were annotated on (any size with that video's aspect ratio).
- `image_size=(H, W)`: pixels of an H x W image: (fx·W, fy·H, cx·W, cy·H).

Writing normalises the intrinsics by the trajectory's `image_size`, rounds timestamps to whole µs
(a trajectory without timestamps gets i / fps) and inverts the poses back, so that
read -> write -> read is exact to float64 rounding. `float_format=None` writes every number with the
shortest text that reads back to the same float64; `float_format=RE10K_FLOAT_FORMAT` ("%.9f") writes
what RealEstate10K publishes, so a published file is reproduced byte for byte.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..trajectory import Trajectory

RE10K_FLOAT_FORMAT = "%.9f"
_NUMBERS_PER_LINE = 19


@dataclass(frozen=True)
class Re10kFile:
    """A RealEstate10K camera file: its trajectory and the source video URL of line 1."""

    trajectory: Trajectory
    url: str


def read_re10k(path, image_size: tuple[int, int] | None = None) -> Re10kFile:
    """Read a RealEstate10K camera file.

    Args:
        path: the clip's `.txt` file.
        image_size: (H, W) to express the intrinsics in pixels of that image; None keeps them
            normalised with image_size (1, 1).

    Returns:
        Re10kFile(trajectory, url): c2w (F, 4, 4), intrinsics (F, 4), timestamps (F,) in seconds, fps None.
    """
    path = Path(path)
    lines = path.read_text().splitlines()
    if not lines:
        raise ValueError(f"{path} is empty; a RealEstate10K camera file starts with the source URL line")
    url = lines[0].strip()
    if len(url.split()) == _NUMBERS_PER_LINE:
        raise ValueError(
            f"{path}, line 1: expected the source video URL but found a frame line; RealEstate10K files "
            "start with the URL (add it, or an empty line, as line 1)"
        )
    stamps, rows, line_numbers = [], [], []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        stamps.append(_timestamp_us(line, path, number))
        rows.append(_frame_numbers(line, path, number))
        line_numbers.append(number)
    if not rows:
        raise ValueError(f"{path} has a URL line but no frame lines")
    data = np.array(rows, dtype=np.float64)  # (F, 18)
    w2c = data[:, 6:].reshape(-1, 3, 4)
    rot = np.swapaxes(w2c[:, :, :3], 1, 2)  # Rᵀ: exact, and undone exactly by the writer
    c2w = np.zeros((len(data), 4, 4))
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = -np.einsum("fij,fj->fi", rot, w2c[:, :, 3])
    c2w[:, 3, 3] = 1.0
    intrinsics = data[:, :4]
    if image_size is not None:
        h, w = image_size
        intrinsics = intrinsics * np.array([w, h, w, h], dtype=np.float64)
    traj = _located(
        path,
        line_numbers,
        lambda: Trajectory(
            c2w=c2w,
            intrinsics=intrinsics,
            image_size=(1, 1) if image_size is None else image_size,
            timestamps=np.array(stamps, dtype=np.float64) / 1e6,
        ),
    )
    return Re10kFile(trajectory=traj, url=url)


def write_re10k(traj: Trajectory, path, url: str = "", float_format: str | None = None) -> None:
    """Write a RealEstate10K camera file.

    Args:
        traj: needs intrinsics and image_size (the intrinsics are stored normalised by it).
        url: the source video URL written as line 1 (may be empty).
        float_format: printf format for the numbers; None writes exact float64 text,
            RE10K_FLOAT_FORMAT ("%.9f") the published precision.
    """
    path = Path(path)
    if "\n" in url or "\r" in url:
        raise ValueError(f"cannot write {path}: the URL must be one line, got {url!r}")
    if traj.intrinsics is None or traj.image_size is None:
        raise ValueError(
            f"cannot write {path} as RealEstate10K: the format stores intrinsics normalised by the image "
            "size, and this trajectory has no "
            + ("intrinsics" if traj.intrinsics is None else "image_size")
            + "; set them with traj.with_intrinsics(intrinsics, image_size=(H, W))"
        )
    h, w = traj.image_size
    norm = traj.intrinsics / np.array([w, h, w, h], dtype=np.float64)
    stamps = np.round(traj.times * 1e6)
    if np.any(np.diff(stamps) <= 0):
        raise ValueError(
            f"cannot write {path}: RealEstate10K stores whole microseconds and two timestamps round to the "
            "same µs; resample the trajectory to a lower frame rate"
        )
    # Exact inverse of the reader: rotation Rcᵀ, translation solving Rc t' = tc (so t = −Rcᵀ⁻¹ c).
    rc, tc = traj.c2w[:, :3, :3], traj.c2w[:, :3, 3]
    w2c = np.zeros((len(traj), 3, 4))
    w2c[:, :, :3] = np.swapaxes(rc, 1, 2)
    w2c[:, :, 3] = -np.linalg.solve(rc, tc[:, :, None])[:, :, 0]

    def num(x: float) -> str:
        return repr(float(x)) if float_format is None else float_format % x

    out = [url]
    for i in range(len(traj)):
        values = [*norm[i], 0.0, 0.0, *w2c[i].reshape(-1)]
        out.append(" ".join([str(int(stamps[i]))] + [num(v) for v in values]))
    path.write_text("\n".join(out) + "\n")


def _timestamp_us(line: str, path: Path, number: int) -> int:
    token = line.split()[0]
    try:
        return int(token)
    except ValueError:
        raise ValueError(
            f"{path}, line {number}: the timestamp {token!r} is not an integer number of microseconds; "
            "a RealEstate10K frame line starts with an integer µs timestamp"
        ) from None


def _frame_numbers(line: str, path: Path, number: int) -> list[float]:
    tokens = line.split()
    if len(tokens) != _NUMBERS_PER_LINE:
        raise ValueError(
            f"{path}, line {number}: expected {_NUMBERS_PER_LINE} numbers (timestamp, fx/W fy/H cx/W cy/H, "
            f"0 0, a row-major 3x4 world-to-camera matrix), got {len(tokens)}; fix or remove the line"
        )
    try:
        values = [float(t) for t in tokens[1:]]
    except ValueError as err:
        raise ValueError(f"{path}, line {number}: {err}; every field must be a number") from None
    if values[4] != 0.0 or values[5] != 0.0:
        raise ValueError(
            f"{path}, line {number}: fields 6-7 are {values[4]:g} {values[5]:g} but RealEstate10K writes "
            "0 0 there (sanawm would drop them); is this a RealEstate10K camera file?"
        )
    return values


def _located(path: Path, line_numbers: list[int], build):
    """Build the Trajectory; a validation error about frame i is re-raised naming the file and line."""
    try:
        return build()
    except ValueError as err:
        match = re.match(r"(?:pose|intrinsics of frame) (\d+)", str(err))
        where = f", line {line_numbers[int(match.group(1))]}" if match else ""
        raise ValueError(f"{path}{where}: {err}") from None
