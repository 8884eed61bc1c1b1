"""Scale modes: what the lengths of an annotated camera path mean.

Structure from motion recovers a path up to a similarity (rotation, translation, scale). Four modes fix it:

| mode       | input                         | result                                                   |
| ---------- | ----------------------------- | -------------------------------------------------------- |
| relative   | nothing                       | frame 0 is the identity; unit = median scene depth       |
| gt_poses   | ground-truth poses            | Umeyama Sim(3) onto them (their frame and units)         |
| gt_depth   | ground-truth depth maps       | metric: per-frame scale from the depths, smoothed        |
| estimator  | a metric depth model          | the same, with the model's depth maps                    |

Per-frame scale (both depth modes, SPEC §7): for frame t, with SfM depths z_i of the 3D points it sees
and depth-map values d_i at their pixels, the inverse-depth-weighted least-squares scale is

    s_t = argmin_s Σ w_i (s z_i − d_i)²  with w_i = 1 / d_i   ⇒   s_t = Σ z_i / Σ (z_i² / d_i)

started from the median ratio d / z and refitted twice without the points whose ratio is off by more
than 30 % (sky, moving objects). It is smoothed over time with an exponential moving average of
momentum 0.99 that starts at the median s_t, and applied to the path's steps:
c'_t = c'_{t−1} + s̄_t (c_t − c_{t−1}). The coefficient of variation std(s_t) / mean(s_t) is the
scale-consistency filter's value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cameras.poses import relative_to_first
from ..eval.align import Sim3, umeyama

SCALE_MODES = ("relative", "gt_poses", "gt_depth", "estimator")
_OUTLIER_LOG_RATIO = np.log(1.3)


@dataclass(frozen=True)
class ScaleResult:
    """c2w: (F, 4, 4) scaled poses; per_frame: (F,) raw per-frame scales (NaN where none; depth modes);
    smoothed: (F,) the scales applied; cv: coefficient of variation of per_frame (None: not a depth
    mode); units: one line saying what a length means; alignment: the Sim(3) of gt_poses mode."""

    c2w: np.ndarray
    units: str
    per_frame: np.ndarray | None = None
    smoothed: np.ndarray | None = None
    cv: float | None = None
    alignment: Sim3 | None = None


def relative_scale(c2w: np.ndarray, observations: list[np.ndarray], registered: np.ndarray) -> ScaleResult:
    """Frame 0 becomes the identity and the median depth of all observed points becomes 1."""
    depths = [o[:, 2] for o, r in zip(observations, registered, strict=True) if r and len(o)]
    median = float(np.median(np.concatenate(depths))) if depths else 1.0
    rel = relative_to_first(c2w)
    rel[:, :3, 3] /= median
    return ScaleResult(
        rel, "relative: frame 0 is the identity; 1 unit = the median depth of the scene points"
    )


def align_to_poses(c2w: np.ndarray, gt_c2w: np.ndarray, registered: np.ndarray) -> ScaleResult:
    """Sim(3) (Umeyama on the registered frames' camera centres) onto ground-truth poses.

    Camera centres on one line (a straight dolly) leave the rotation about that line free; then the
    rotation comes from the cameras' orientations (the mean of R_gt R_estᵀ) and scale and translation
    from the centres by least squares.
    """
    r = np.asarray(registered, bool)
    src, dst = c2w[r, :3, 3], gt_c2w[r, :3, 3]
    try:
        sim = umeyama(src, dst)
    except ValueError:
        m = np.einsum("fij,fkj->ik", gt_c2w[r, :3, :3], c2w[r, :3, :3])  # Σ R_gt R_estᵀ
        u, _, vt = np.linalg.svd(m)
        rot = u @ np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))]) @ vt
        xs, ys = src @ rot.T, dst
        xc, yc = xs - xs.mean(0), ys - ys.mean(0)
        s = float((xc * yc).sum() / max((xc**2).sum(), 1e-300))
        if not s > 0:
            s = 1.0
        sim = Sim3(rot, ys.mean(0) - s * xs.mean(0), s)
    return ScaleResult(
        sim.apply_c2w(c2w), "ground-truth poses: Sim(3)-aligned to the given poses (their frame and units)",
        alignment=sim,
    )  # fmt: skip


def per_frame_scale(observations: list[np.ndarray], depth: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """(F,) inverse-depth-weighted least-squares scales s_t with s·z ≈ d (NaN where no valid point).

    Args:
        observations: per frame (N, 3) rows (u, v, z): pixel (sanawm coordinates) and SfM depth.
        depth: (F, H, W) depth maps in metres (inf / 0 / NaN: no depth).
        registered: (F,) bool.
    """
    depth = np.asarray(depth)
    f, h, w = depth.shape
    scales = np.full(f, np.nan)
    for t in range(f):
        obs = observations[t]
        if not registered[t] or len(obs) == 0:
            continue
        u = np.clip(np.round(obs[:, 0]).astype(np.int64), 0, w - 1)
        v = np.clip(np.round(obs[:, 1]).astype(np.int64), 0, h - 1)
        d = depth[t, v, u].astype(np.float64)
        z = obs[:, 2]
        ok = np.isfinite(d) & (d > 0) & (z > 0)
        if ok.sum() < 3:
            continue
        s = float(np.median(d[ok] / z[ok]))  # robust start, then least squares on the inliers, twice
        for _ in range(2):
            ok &= np.abs(np.log(np.where(ok, s * z / np.where(ok, d, 1.0), 1.0))) <= _OUTLIER_LOG_RATIO
            if ok.sum() < 3:
                break
            s = float(z[ok].sum() / (z[ok] ** 2 / d[ok]).sum())
        if ok.sum() >= 3:
            scales[t] = s
    return scales


def smooth_scales(scales: np.ndarray, momentum: float = 0.99) -> np.ndarray:
    """Exponential moving average over time, starting at the median; frames without a scale keep the
    running value."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    valid = np.isfinite(scales)
    if not valid.any():
        raise ValueError(
            "no frame has a depth-based scale: the depth maps have no valid values where the "
            "reconstruction's points are; check that they match the frames (size, order)"
        )
    running = float(np.median(scales[valid]))
    out = np.empty(len(scales))
    for t, s in enumerate(scales):
        if np.isfinite(s):
            running = momentum * running + (1.0 - momentum) * float(s)
        out[t] = running
    return out


def depth_scale(
    c2w: np.ndarray,
    observations: list[np.ndarray],
    depth: np.ndarray,
    registered: np.ndarray,
    momentum: float = 0.99,
    source: str = "gt_depth",
) -> ScaleResult:
    """Metric poses from depth maps (see module docstring); frame 0 becomes the identity."""
    depth = np.asarray(depth)
    if depth.ndim != 3 or len(depth) != len(c2w):
        raise ValueError(f"depth must be (F, H, W) with F = {len(c2w)} frames, got shape {depth.shape}")
    raw = per_frame_scale(observations, depth, registered)
    smooth = smooth_scales(raw, momentum)
    rel = relative_to_first(c2w)
    steps = np.diff(rel[:, :3, 3], axis=0) * smooth[1:, None]
    rel[1:, :3, 3] = np.cumsum(steps, axis=0)
    valid = raw[np.isfinite(raw)]
    cv = float(valid.std() / valid.mean()) if len(valid) > 1 else 0.0
    what = "ground-truth depth maps" if source == "gt_depth" else "a metric depth model"
    return ScaleResult(rel, f"metric (metres), from {what}; frame 0 is the identity", raw, smooth, cv)
