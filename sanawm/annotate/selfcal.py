"""Focal length from fundamental matrices (Mendonça & Cipolla 1999), before any reconstruction exists.

For the right intrinsics K, every fundamental matrix F between two views of one camera becomes an
essential matrix E = Kᵀ F K, whose two non-zero singular values are equal. With square pixels and the
principal point at the image centre only the focal length f is unknown, so we scan f and keep the one
that makes the verified image pairs most essential:

    cost(f) = Σ_pairs w · (σ₁ − σ₂) / (σ₁ + σ₂)  /  Σ w,   σ of Kᵀ F K,  w = inlier matches.

Pure translation (a car driving straight) leaves F skew-symmetric for every f, so such pairs flatten the
curve but do not bias it; any rotation makes it peaked. `FocalEstimate.identified` says whether the
minimum is clear; incremental mapping starts from a wrong focal length badly (it tries initial pairs
that cannot grow), which is why this runs first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Focal lengths scanned: horizontal fields of view from 170° down to 8°.
_FOV_RANGE_DEG = (170.0, 8.0)
_GRID = 240
# A minimum counts as identified when the cost half an octave away (f·√2 and f/√2) is this much higher.
_MIN_PEAK_RATIO = 1.15


@dataclass(frozen=True)
class FocalEstimate:
    """focal: pixels; identified: the cost curve has a clear interior minimum; pairs: pairs used."""

    focal: float
    identified: bool
    pairs: int
    peak_ratio: float


def essential_cost(fundamentals: np.ndarray, weights: np.ndarray, focal, cx: float, cy: float) -> np.ndarray:
    """Weighted mean of (σ₁ − σ₂)/(σ₁ + σ₂) of Kᵀ F K for each focal length.

    Args:
        fundamentals: (P, 3, 3) fundamental matrices in the pixel coordinates that (cx, cy) use.
        weights: (P,) non-negative pair weights.
        focal: scalar or (G,) focal lengths in pixels.
        cx, cy: principal point.

    Returns:
        (G,) costs in [0, 1] (0: every pair is exactly essential).
    """
    f = np.atleast_1d(np.asarray(focal, dtype=np.float64))
    k = np.zeros((len(f), 3, 3))
    k[:, 0, 0], k[:, 1, 1], k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = f, f, cx, cy, 1.0
    e = np.einsum("gji,pjk,gkl->gpil", k, fundamentals, k)  # Kᵀ F K for every (focal, pair)
    s = np.linalg.svd(e, compute_uv=False)  # (G, P, 3), descending
    ratio = (s[..., 0] - s[..., 1]) / np.maximum(s[..., 0] + s[..., 1], 1e-300)
    return ratio @ weights / weights.sum()


def focal_from_fundamentals(
    fundamentals, weights, width: int, height: int, cx: float | None = None, cy: float | None = None
) -> FocalEstimate:
    """The focal length (pixels) that makes `fundamentals` most nearly essential (see module docstring).

    Args:
        fundamentals: (P, 3, 3) fundamental matrices between frames of one camera, pixel coordinates.
        weights: (P,) weights, e.g. inlier match counts.
        width, height: image size in pixels; the scan covers horizontal fields of view 8°–170°.
        cx, cy: principal point (default: the image centre, width / 2, height / 2).

    Raises:
        ValueError: no pairs, or shapes that do not match.
    """
    fm = np.asarray(fundamentals, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if fm.ndim != 3 or fm.shape[1:] != (3, 3) or len(fm) != len(w):
        raise ValueError(f"need (P, 3, 3) fundamentals and (P,) weights, got {fm.shape} and {w.shape}")
    if len(fm) == 0 or not (w > 0).any():
        raise ValueError("no verified image pairs with a fundamental matrix to read the focal length from")
    cx = width / 2.0 if cx is None else cx
    cy = height / 2.0 if cy is None else cy
    fm = fm / np.linalg.norm(fm, axis=(1, 2), keepdims=True)
    lo, hi = (width / 2.0 / np.tan(np.radians(a) / 2.0) for a in _FOV_RANGE_DEG)
    grid = np.geomspace(lo, hi, _GRID)
    cost = essential_cost(fm, w, grid, cx, cy)
    i = int(np.argmin(cost))
    # golden-section refinement of log f between the neighbours of the grid minimum
    a, b = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, _GRID - 1)])
    g = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        c, d = b - g * (b - a), a + g * (b - a)
        if essential_cost(fm, w, np.exp(c), cx, cy)[0] < essential_cost(fm, w, np.exp(d), cx, cy)[0]:
            b = d
        else:
            a = c
    focal = float(np.exp((a + b) / 2.0))
    best = float(essential_cost(fm, w, focal, cx, cy)[0])
    around = essential_cost(fm, w, [focal / np.sqrt(2.0), focal * np.sqrt(2.0)], cx, cy)
    peak = float(around.min() / max(best, 1e-300))
    interior = 0 < i < _GRID - 1
    return FocalEstimate(focal, bool(interior and peak >= _MIN_PEAK_RATIO), int((w > 0).sum()), peak)
