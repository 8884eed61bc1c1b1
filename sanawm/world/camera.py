"""Pixel intrinsics for rendered cameras: sizes, field of view, rescaling, and preparing a trajectory.

Convention (sanawm's, see `sanawm.cameras.trajectory`): integer pixel coordinates address pixel centres,
so a centred principal point is ((W − 1)/2, (H − 1)/2) and resizing maps u → (u + 0.5)·s − 0.5.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..cameras import Trajectory, check_field_of_view
from ..cameras.intrinsics import DEFAULT_FOV_LIMITS_DEG


def parse_size(size) -> tuple[int, int]:
    """256 → (256, 256); (H, W) → (H, W); "144x256" → (144, 256). Sizes must be positive."""
    if isinstance(size, str):
        parts = size.lower().split("x")
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"size {size!r} is not N or HxW in pixels, e.g. 256 or 144x256") from None
        size = vals[0] if len(vals) == 1 else tuple(vals)
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive (H, W), got {size}")
    return h, w


def intrinsics_for_fov(size, fov_deg: float) -> np.ndarray:
    """(4,) pixel intrinsics (fx, fy, cx, cy) for a horizontal field of view `fov_deg` at `size` (H, W).

    Square pixels and a centred principal point at ((W − 1)/2, (H − 1)/2) (pixel-centre coordinates).
    Refuses a field of view outside [25°, 120°] (the range SANA-WM accepts).
    """
    h, w = parse_size(size)
    lo, hi = DEFAULT_FOV_LIMITS_DEG
    if not (lo <= float(fov_deg) <= hi):
        raise ValueError(
            f"field of view {fov_deg}° is outside [{lo:g}°, {hi:g}°] (the range SANA-WM accepts); "
            f"choose a horizontal field of view in that range, e.g. 60"
        )
    f = w / (2.0 * np.tan(np.radians(float(fov_deg)) / 2.0))
    return np.array([f, f, (w - 1) / 2.0, (h - 1) / 2.0])


def rescale_intrinsics(intrinsics: np.ndarray, src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """(F, 4) intrinsics of a `src` (H, W) image → the same camera imaged at `dst` (H, W) (pixel centres)."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    k = np.array(intrinsics, dtype=np.float64, copy=True)
    k[:, 0] *= sx
    k[:, 1] *= sy
    k[:, 2] = (k[:, 2] + 0.5) * sx - 0.5
    k[:, 3] = (k[:, 3] + 0.5) * sy - 0.5
    return k


def prepare_trajectory(trajectory: Trajectory, size=None, fov_deg: float | None = None) -> Trajectory:
    """The trajectory with intrinsics for the output `size`, checked against the field-of-view limits.

    Intrinsics come from the trajectory (rescaled when its image_size differs from `size`), or from
    `fov_deg` when it has none. `size` defaults to the trajectory's image_size.
    """
    if not isinstance(trajectory, Trajectory):
        raise TypeError(f"expected a sanawm.cameras.Trajectory, got {type(trajectory).__name__}")
    if size is None and trajectory.image_size is None:
        raise ValueError("the trajectory has no image_size; pass size=(H, W) (or --size) to render it")
    out_size = parse_size(size) if size is not None else trajectory.image_size
    if trajectory.intrinsics is None:
        if fov_deg is None:
            raise ValueError(
                "the trajectory has no intrinsics; pass fov_deg (--fov) to render it with a pinhole camera"
            )
        k = np.tile(intrinsics_for_fov(out_size, fov_deg), (len(trajectory), 1))
    elif trajectory.image_size is None:
        raise ValueError(
            "the trajectory has intrinsics but no image_size, so their pixels are ambiguous; set "
            "image_size=(H, W) of the image the intrinsics refer to"
        )
    else:
        k = rescale_intrinsics(trajectory.intrinsics, trajectory.image_size, out_size)
    check_field_of_view(k, *out_size)
    return replace(trajectory, intrinsics=k, image_size=out_size)
