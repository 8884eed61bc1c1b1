"""Similarity alignment of camera paths: `Sim3`, Umeyama's least-squares fit and the alignment modes.

Conventions: points are rows, (N, 3); poses are (F, 4, 4) camera-to-world (see `sanawm.cameras.trajectory`).
A `Sim3` maps a world point x to s R x + t and a camera pose (R_c, c) to (R R_c, s R c + t), which is
what `evo`'s `PosePath3D.align(..., correct_scale=True)` does to a trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

AlignMode = Literal["sim3", "se3", "scale", "none"]
ALIGN_MODES: tuple[str, ...] = ("sim3", "se3", "scale", "none")

# A centred point set whose second singular value is below this fraction of its first lies on a line.
_COLLINEAR_RTOL = 1e-7
# ... and one whose first singular value is below this fraction of its coordinates' size is a single point.
_COINCIDENT_RTOL = 1e-12


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Sim3:
    """A similarity transform x ↦ s R x + t (rotation R (3, 3), translation t (3,), scale s > 0)."""

    R: np.ndarray
    t: np.ndarray
    s: float = 1.0

    def __post_init__(self) -> None:
        r, t, s = _readonly(self.R), _readonly(self.t).reshape(-1), float(self.s)
        if r.shape != (3, 3) or t.shape != (3,):
            raise ValueError(f"Sim3 needs R (3, 3) and t (3,), got R {r.shape} and t {t.shape}")
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"Sim3 scale must be a positive finite number, got {s}")
        if np.abs(r.T @ r - np.eye(3)).max() > 1e-6 or np.linalg.det(r) < 0:
            raise ValueError("Sim3.R must be a rotation (orthonormal, determinant +1)")
        object.__setattr__(self, "R", r)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "s", s)

    @classmethod
    def identity(cls) -> Sim3:
        return cls(np.eye(3), np.zeros(3), 1.0)

    @property
    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous matrix [[s R, t], [0, 1]]."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.s * self.R, self.t
        return m

    def inverse(self) -> Sim3:
        """x ↦ (1/s) Rᵀ (x − t)."""
        return Sim3(self.R.T, -(self.R.T @ self.t) / self.s, 1.0 / self.s)

    def apply(self, points) -> np.ndarray:
        """Transform (N, 3) or (3,) points: s R x + t."""
        x = np.asarray(points, dtype=np.float64)
        if x.shape[-1] != 3:
            raise ValueError(f"points must have shape (N, 3) or (3,), got {x.shape}")
        return self.s * x @ self.R.T + self.t

    def apply_c2w(self, c2w) -> np.ndarray:
        """Transform (F, 4, 4) camera-to-world poses: rotation R_c ← R R_c, centre c ← s R c + t.

        The result is again a rigid pose (the scale moves camera centres; it does not enter the rotation).
        """
        p = np.asarray(c2w, dtype=np.float64)
        if p.ndim != 3 or p.shape[1:] != (4, 4):
            raise ValueError(f"c2w must have shape (F, 4, 4), got {p.shape}")
        out = p.copy()
        out[:, :3, :3] = self.R @ p[:, :3, :3]
        out[:, :3, 3] = self.apply(p[:, :3, 3])
        return out


def _check_spread(x: np.ndarray, name: str) -> None:
    """Raise a ValueError when the points of `x` (N, 3) coincide or lie on one line."""
    sv = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    size = np.sqrt(len(x)) * max(np.abs(x).max(), np.finfo(np.float64).tiny)
    if sv[0] <= _COINCIDENT_RTOL * size:
        raise ValueError(
            f"umeyama: all {name} points coincide, so no rotation or scale fits them (a camera that only "
            "rotates has one centre); align with align='none' instead."
        )
    if sv[1] <= _COLLINEAR_RTOL * sv[0]:
        raise ValueError(
            f"umeyama: the {name} points lie on one line, so the rotation about that line is undetermined "
            "(a straight dolly path does this); align with align='none' instead, or use a path that turns."
        )


def umeyama(src, dst, with_scale: bool = True) -> Sim3:
    """Least-squares similarity dst ≈ s R src + t (Umeyama 1991), never a reflection.

    Args:
        src: (N, 3) points, e.g. estimated camera centres.
        dst: (N, 3) corresponding points, e.g. ground-truth camera centres.
        with_scale: fit s; if False, s = 1 (a rigid SE(3) fit).

    Returns:
        `Sim3` minimising Σ‖dst_i − (s R src_i + t)‖² over rotations R (det +1), s > 0 and t.

    Raises:
        ValueError: shapes differ, N < 3, a point set coincides or is collinear, or the sets do not
        correspond (rank of their cross-covariance < 2); in all of these the rotation is not unique.
    """
    x, y = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 3 or x.shape != y.shape:
        raise ValueError(f"umeyama needs src and dst of the same shape (N, 3), got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("umeyama: src and dst must be finite (no NaN or inf)")
    n = len(x)
    if n < 3:
        raise ValueError(f"umeyama needs at least 3 non-collinear point pairs to fix a rotation, got {n}")
    _check_spread(x, "source")
    _check_spread(y, "destination")

    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    var_x = np.sum(xc**2) / n
    cov = yc.T @ xc / n  # (3, 3), Umeyama eq. 38
    u, d, vt = np.linalg.svd(cov)
    if d[1] <= _COLLINEAR_RTOL**2 * d[0]:
        raise ValueError(
            "umeyama: the cross-covariance of src and dst has rank < 2, so the points do not correspond "
            "closely enough to fix a rotation; check that src[i] and dst[i] are the same frame."
        )
    sign = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[2] = -1.0  # the best proper rotation, not the best orthogonal matrix (eq. 43)
    r = (u * sign) @ vt
    s = float(np.sum(d * sign) / var_x) if with_scale else 1.0
    if s <= 0:
        raise ValueError(
            "umeyama: the fitted scale is not positive; the point sets are anti-correlated or degenerate."
        )
    t = mean_y - s * r @ mean_x
    return Sim3(r, t, s)


def fit_alignment(src, dst, mode: str = "sim3") -> Sim3:
    """The `Sim3` that aligns points `src` (N, 3) to `dst` (N, 3) under an alignment mode.

    - "sim3": rotation, translation and scale (Umeyama); evo `align(correct_scale=True)`.
    - "se3": rotation and translation, s = 1; evo `align(correct_scale=False)`.
    - "scale": scale only, about the world origin: s is Umeyama's Sim(3) scale, R = I, t = 0;
      evo `align(correct_only_scale=True)`.
    - "none": the identity.
    """
    if mode not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}, got {mode!r}")
    if mode == "none":
        return Sim3.identity()
    fit = umeyama(src, dst, with_scale=mode != "se3")
    if mode == "scale":
        return Sim3(np.eye(3), np.zeros(3), fit.s)
    return fit
