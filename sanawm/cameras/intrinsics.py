"""Pinhole intrinsics: accept the usual layouts, return one (F, 4) array of (fx, fy, cx, cy) in pixels."""

from __future__ import annotations

import math

import numpy as np
import torch

DEFAULT_FOV_LIMITS_DEG = (25.0, 120.0)


def _as_float64(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _k_to_vec4(k: np.ndarray) -> np.ndarray:
    """(F, 3, 3) pinhole matrices -> (F, 4) (fx, fy, cx, cy); the bottom row must be (0, 0, 1)."""
    bad = np.flatnonzero(np.abs(k[:, 2] - np.array([0.0, 0.0, 1.0])).max(axis=1) > 1e-6)
    if bad.size:
        raise ValueError(
            f"intrinsics matrix of frame {bad[0]} has bottom row {k[bad[0], 2].tolist()}, expected "
            "[0, 0, 1]; pass a pinhole K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] (divide K by K[2, 2])."
        )
    return np.stack([k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2]], axis=-1)


def _per_frame_vec4(arr: np.ndarray) -> np.ndarray:
    """Any accepted layout -> (F', 4), F' = 1 for a single shared set."""
    if arr.shape == (4,):
        return arr[None]
    if arr.shape == (3, 3):
        return _k_to_vec4(arr[None])
    if arr.ndim == 2 and arr.shape[1] == 4:
        return arr
    if arr.ndim == 3 and arr.shape[1:] == (3, 3):
        return _k_to_vec4(arr)
    raise ValueError(
        f"intrinsics has shape {tuple(arr.shape)}; pass (4,) or (F, 4) as (fx, fy, cx, cy) in pixels, "
        "or a (3, 3) / (F, 3, 3) pinhole matrix K."
    )


def as_intrinsics_vec4(intrinsics, num_frames: int) -> np.ndarray:
    """Normalise camera intrinsics to one (fx, fy, cx, cy) row per frame.

    Args:
        intrinsics: (4,), (F, 4), (3, 3) or (F, 3, 3), numpy / torch / nested lists, in image pixels.
            A single set, (4,) or (3, 3), is shared by all frames.
        num_frames: F, the number of poses in the trajectory.

    Returns:
        (F, 4) float64 array of (fx, fy, cx, cy).
    """
    vec4 = _per_frame_vec4(_as_float64(intrinsics))
    if vec4.shape[0] == 1:
        vec4 = np.repeat(vec4, num_frames, axis=0)
    if vec4.shape[0] != num_frames:
        raise ValueError(
            f"intrinsics has {vec4.shape[0]} frames but the trajectory has {num_frames} poses; "
            "pass one row per pose, or a single (4,) / (3, 3) set shared by all frames."
        )
    if not np.isfinite(vec4).all():
        frame = int(np.flatnonzero(~np.isfinite(vec4).all(axis=1))[0])
        raise ValueError(f"intrinsics of frame {frame} are not finite ({vec4[frame].tolist()}); fix NaN/inf.")
    if (vec4[:, :2] <= 0).any():
        frame = int(np.flatnonzero((vec4[:, :2] <= 0).any(axis=1))[0])
        raise ValueError(
            f"intrinsics of frame {frame} have a non-positive focal length (fx, fy) = "
            f"{tuple(vec4[frame, :2].tolist())}; focal lengths must be positive and in pixels."
        )
    return vec4


def field_of_view_deg(fx, size):
    """Full field of view in degrees along one image axis: 2·atan(size / (2·f)).

    Args:
        fx: focal length in pixels (scalar or array), fx for the width or fy for the height.
        size: image extent in pixels along the same axis.
    """
    return np.degrees(2.0 * np.arctan(np.asarray(size, dtype=np.float64) / (2.0 * np.asarray(fx))))


def check_field_of_view(
    vec4: np.ndarray, height: int, width: int, limits: tuple[float, float] = DEFAULT_FOV_LIMITS_DEG
) -> np.ndarray:
    """Refuse intrinsics whose horizontal field of view (fx against the image width) is outside `limits`.

    Args:
        vec4: (F, 4) (fx, fy, cx, cy) in pixels of a (height, width) image.
        limits: (min, max) horizontal field of view in degrees; the release accepts [25, 120].

    Returns:
        (F,) horizontal field of view per frame, in degrees.
    """
    fov = field_of_view_deg(np.asarray(vec4)[:, 0], width)
    lo, hi = limits
    outside = np.flatnonzero((fov < lo) | (fov > hi))
    if outside.size:
        f = int(outside[0])
        fx_lo, fx_hi = (width / (2.0 * math.tan(math.radians(a) / 2.0)) for a in (hi, lo))
        raise ValueError(
            f"horizontal field of view {fov[f]:.1f}° (frame {f}: fx = {vec4[f, 0]:.1f} px for a {width} px "
            f"wide image) is outside [{lo:g}°, {hi:g}°]; make sure the intrinsics are in pixels of the "
            f"{height}x{width} image (rescale them after resizing or cropping): fx must lie in "
            f"[{fx_lo:.0f}, {fx_hi:.0f}] px."
        )
    return fov
