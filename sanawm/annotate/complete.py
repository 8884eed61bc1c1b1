"""Every frame gets a pose: frames structure from motion missed are interpolated and flagged.

Between two registered frames the rotation is interpolated spherically (slerp) and the camera centre
linearly, by frame index; before the first and after the last registered frame the nearest registered
pose is held. `confidence` is 0 for interpolated frames and, for registered ones,

    min(1, points / 100) · exp(−reprojection error / 4 px)

(100 or more observed 3D points and a sub-pixel error give about 0.8–1).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

FULL_CONFIDENCE_POINTS = 100
ERROR_SCALE_PX = 4.0


def fill_missing_poses(c2w: np.ndarray, registered: np.ndarray) -> np.ndarray:
    """(F, 4, 4) poses with every unregistered frame interpolated (see module docstring).

    Args:
        c2w: (F, 4, 4) camera-to-world; rows of unregistered frames are ignored (may be NaN).
        registered: (F,) bool, at least one True.
    """
    registered = np.asarray(registered, bool)
    known = np.flatnonzero(registered)
    if known.size == 0:
        raise ValueError("no frame was registered, so there is nothing to interpolate from")
    out = np.array(c2w, dtype=np.float64, copy=True)
    n = len(out)
    t = np.arange(n, dtype=np.float64)
    tq = np.clip(t, known[0], known[-1])
    if known.size == 1:
        out[:] = out[known[0]]
        return out
    rot = Slerp(known.astype(np.float64), Rotation.from_matrix(out[known, :3, :3]))(tq).as_matrix()
    centres = np.stack([np.interp(tq, known, out[known, :3, 3][:, k]) for k in range(3)], axis=1)
    missing = ~registered
    out[missing, :3, :3] = rot[missing]
    out[missing, :3, 3] = centres[missing]
    out[missing, 3] = [0.0, 0.0, 0.0, 1.0]
    return out


def frame_confidence(registered: np.ndarray, num_points: np.ndarray, reprojection_error: np.ndarray):
    """(F,) confidence in [0, 1] (see module docstring)."""
    registered = np.asarray(registered, bool)
    err = np.nan_to_num(np.asarray(reprojection_error, dtype=np.float64), nan=np.inf)
    conf = np.minimum(1.0, np.asarray(num_points) / FULL_CONFIDENCE_POINTS) * np.exp(-err / ERROR_SCALE_PX)
    return np.where(registered, conf, 0.0)
