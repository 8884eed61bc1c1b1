"""Camera-to-world poses: validate raw input and express a trajectory relative to its first frame."""

from __future__ import annotations

import numpy as np

from .intrinsics import _as_float64

_ATOL = 1e-3


def _check_rotations(r: np.ndarray, atol: float) -> None:
    """(F, 3, 3) rotations must be orthonormal within `atol` with determinant +1."""
    err = np.abs(np.swapaxes(r, 1, 2) @ r - np.eye(3)).max(axis=(1, 2))
    if (err > atol).any():
        f = int(np.argmax(err > atol))
        raise ValueError(
            f"pose {f}: rotation is not orthonormal (max |RᵀR − I| = {err[f]:.2e} > {atol:g}); pass "
            "camera-to-world matrices with a pure rotation block (no scale or shear; re-orthonormalise "
            "with an SVD if they were stored at low precision)."
        )
    det = np.linalg.det(r)
    if (det < 0).any():
        f = int(np.argmax(det < 0))
        raise ValueError(
            f"pose {f}: rotation has determinant {det[f]:.3f}, a reflection; use right-handed "
            "OpenCV axes (x right, y down, z forward)."
        )


def as_c2w(poses, atol: float = _ATOL) -> np.ndarray:
    """Validate camera-to-world poses (OpenCV axes) and return them as 4×4 matrices.

    Args:
        poses: (F, 4, 4) or (F, 3, 4) camera-to-world matrices, numpy / torch / nested lists.
        atol: tolerance for RᵀR = I and for the bottom row (0, 0, 0, 1).

    Returns:
        (F, 4, 4) float64 array.
    """
    arr = _as_float64(poses)
    if arr.ndim != 3 or arr.shape[1:] not in ((4, 4), (3, 4)) or arr.shape[0] == 0:
        single = arr.shape in ((4, 4), (3, 4))
        hint = " (a single pose needs a leading frame axis: poses[None])" if single else ""
        raise ValueError(
            f"poses have shape {tuple(arr.shape)}; pass (F, 4, 4) or (F, 3, 4) camera-to-world{hint}."
        )
    if not np.isfinite(arr).all():
        f = int(np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))[0])
        raise ValueError(f"pose {f} is not finite (contains NaN or inf); fix or drop that frame.")
    if arr.shape[1] == 3:
        bottom = np.broadcast_to(np.array([[0.0, 0.0, 0.0, 1.0]]), (len(arr), 1, 4))
        arr = np.concatenate([arr, bottom], axis=1)
    row_err = np.abs(arr[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    if (row_err > atol).any():
        f = int(np.argmax(row_err > atol))
        raise ValueError(
            f"pose {f} has bottom row {arr[f, 3].tolist()}; a rigid 4x4 pose ends with [0, 0, 0, 1]."
        )
    _check_rotations(arr[:, :3, :3], atol)
    return arr


def relative_to_first(c2w: np.ndarray) -> np.ndarray:
    """Express poses in the camera frame of frame 0: inv(c2w[0]) @ c2w[i].

    Args:
        c2w: (F, 4, 4) rigid camera-to-world poses.

    Returns:
        (F, 4, 4) relative poses; frame 0 is exactly the identity.
    """
    r, t = c2w[0, :3, :3], c2w[0, :3, 3]
    first_inv = np.eye(4, dtype=c2w.dtype)
    first_inv[:3, :3] = r.T
    first_inv[:3, 3] = -r.T @ t
    rel = first_inv @ c2w
    rel[0] = np.eye(4, dtype=c2w.dtype)
    return rel
