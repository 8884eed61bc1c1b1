"""Camera-accuracy metrics: SANA-WM-Bench RotErr / TransErr / CamMC, and evo-compatible ATE and RPE.

Every function takes an estimate (poses recovered from a generated video, e.g. by Pi3) and a ground
truth (the poses the video was conditioned on) as `Trajectory` objects or (F, 4, 4) / (F, 3, 4)
camera-to-world arrays in OpenCV axes, with frame i of one matching frame i of the other.
The estimate is aligned to the ground truth with a `Sim3` fitted on camera centres (see `align.py`), so
all lengths are in ground-truth units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial.transform import Rotation

from ..cameras.poses import as_c2w, relative_to_first
from ..cameras.trajectory import Trajectory
from .align import ALIGN_MODES, Sim3, fit_alignment

Reduce = Literal["mean", "sum"]
RPE_UNITS: tuple[str, ...] = ("frames", "meters", "degrees", "radians")
RPE_RELATIONS: tuple[str, ...] = ("translation", "rotation_deg")


# --------------------------------------------------------------------------------------------------- inputs
def _c2w(poses, name: str) -> np.ndarray:
    """(F, 4, 4) float64 camera-to-world of a `Trajectory` or an array, with errors naming the argument."""
    if isinstance(poses, Trajectory):
        return poses.c2w
    try:
        return as_c2w(poses)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from e


def _pair(estimate, ground_truth) -> tuple[np.ndarray, np.ndarray]:
    est, gt = _c2w(estimate, "estimate"), _c2w(ground_truth, "ground_truth")
    if len(est) != len(gt):
        raise ValueError(
            f"estimate has {len(est)} poses but ground_truth has {len(gt)}; pass one pose per frame for the "
            "same frames in both (trim the longer one; if you estimated only every k-th frame, pass "
            "ground_truth[::k], and every=1 to camera_metrics)."
        )
    return est, gt


def _aligned(est: np.ndarray, gt: np.ndarray, align: str) -> tuple[np.ndarray, Sim3]:
    """The estimate mapped onto the ground truth by `fit_alignment` on camera centres (all frames)."""
    if align not in ALIGN_MODES:
        raise ValueError(f"align must be one of {ALIGN_MODES}, got {align!r}")
    try:
        sim3 = fit_alignment(est[:, :3, 3], gt[:, :3, 3], align)
    except ValueError as e:
        raise ValueError(f"cannot align the estimate to the ground truth with align={align!r}: {e}") from e
    return sim3.apply_c2w(est), sim3


def rotation_angle_deg(r: np.ndarray) -> np.ndarray:
    """Rotation angle in degrees, in [0, 180], of (..., 3, 3) rotation matrices.

    Computed as |log(R)| through scipy (quaternion based, accurate near 0 and 180 degrees), exactly as
    evo's `lie.so3_log_angle`, so that near-orthonormal inputs (e.g. KITTI's 7-digit files) agree with evo.
    """
    r = np.asarray(r, dtype=np.float64)
    flat = r.reshape(-1, 3, 3)
    angles = np.linalg.norm(Rotation.from_matrix(flat).as_rotvec(), axis=-1)
    return np.rad2deg(angles).reshape(r.shape[:-2])


def _inv_se3(p: np.ndarray) -> np.ndarray:
    """Inverse of (..., 4, 4) rigid transforms."""
    out = np.zeros_like(p)
    rt = np.swapaxes(p[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ p[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


# ----------------------------------------------------------------------------------- SANA-WM-Bench metrics
@dataclass(frozen=True, eq=False)
class CameraMetrics:
    """Camera accuracy of an estimated trajectory against its ground truth, SANA-WM-Bench style.

    Procedure (SPEC §8): keep frames 0, every, 2·every, … of both trajectories; express each relative to
    its own first kept frame (inv(P_0) P_i); fit `alignment` on the camera centres of all kept frames
    and apply it to the estimate (rotation R_i ← A R_i, centre c_i ← s A c_i + b); then per kept frame i:

    - rot_err_per_frame[i]   = angle(R_gt,iᵀ R_est,i) in degrees, the geodesic distance on SO(3), in [0, 180];
    - trans_err_per_frame[i] = ‖c_est,i − c_gt,i‖₂, camera centres, in ground-truth units;
    - cammc_per_frame[i]     = ‖[R_est,i | c_est,i] − [R_gt,i | c_gt,i]‖_F, the 3×4 camera-to-world blocks.

    The first kept frame is included (its error is 0 with align="none", and small but not 0 once the
    estimate is aligned). CamMC adds unitless rotation entries to translations, so it depends on the
    ground truth's length unit; `alignment` is the `Sim3` that was applied to the relative estimate.

    rot_err, trans_err and cammc reduce the per-frame values over the kept frames with `reduce`:
    "mean" is the SANA-WM-Bench convention (the numbers of SPEC §8 are means); "sum" is the CameraCtrl /
    CamI2V convention (which also estimate poses with COLMAP/GLOMAP and may use other units, so sums
    are comparable only to sums from the same pose estimator and frame count). `convention` spells
    this out; quote it next to any number you report.
    """

    rot_err: float
    trans_err: float
    cammc: float
    rot_err_per_frame: np.ndarray
    trans_err_per_frame: np.ndarray
    cammc_per_frame: np.ndarray
    frame_indices: np.ndarray
    every: int
    align: str
    reduce: str
    alignment: Sim3

    @property
    def convention(self) -> str:
        """One line naming how the numbers were computed, e.g. for a results table caption."""
        return (
            f"{self.reduce} over {len(self.frame_indices)} frames (indices 0::{self.every}), both paths "
            f"relative to their first frame, estimate aligned with {self.align}; RotErr in degrees, "
            "TransErr and CamMC in ground-truth units"
        )

    def as_dict(self) -> dict[str, float]:
        return {"RotErr": self.rot_err, "TransErr": self.trans_err, "CamMC": self.cammc}


def camera_metrics(
    estimate: Trajectory | np.ndarray,
    ground_truth: Trajectory | np.ndarray,
    every: int = 4,
    align: str = "sim3",
    reduce: str = "mean",
) -> CameraMetrics:
    """RotErr / TransErr / CamMC of `estimate` against `ground_truth` (see `CameraMetrics`).

    Args:
        estimate: (F, 4, 4) / (F, 3, 4) camera-to-world poses or a `Trajectory`, one per generated frame.
        ground_truth: the same for the conditioning path; F must match.
        every: keep every `every`-th frame, starting at frame 0 (SANA-WM-Bench: 4).
        align: "sim3" (default, SANA-WM-Bench), "se3", "scale" or "none"; see `fit_alignment`.
        reduce: "mean" (SANA-WM-Bench) or "sum" (CameraCtrl / CamI2V).

    Returns:
        `CameraMetrics` with the reduced numbers and the per-frame arrays.
    """
    est, gt = _pair(estimate, ground_truth)
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be a positive integer (SANA-WM-Bench uses 4), got {every!r}")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' (SANA-WM-Bench) or 'sum' (CameraCtrl), got {reduce!r}")
    frames = np.arange(0, len(gt), int(every))
    est, gt = relative_to_first(est[frames]), relative_to_first(gt[frames])
    est, sim3 = _aligned(est, gt, align)

    rot = rotation_angle_deg(np.swapaxes(gt[:, :3, :3], 1, 2) @ est[:, :3, :3])
    trans = np.linalg.norm(est[:, :3, 3] - gt[:, :3, 3], axis=1)
    cammc = np.linalg.norm((est[:, :3, :] - gt[:, :3, :]).reshape(len(frames), -1), axis=1)
    red = np.mean if reduce == "mean" else np.sum
    return CameraMetrics(
        rot_err=float(red(rot)),
        trans_err=float(red(trans)),
        cammc=float(red(cammc)),
        rot_err_per_frame=rot,
        trans_err_per_frame=trans,
        cammc_per_frame=cammc,
        frame_indices=frames,
        every=int(every),
        align=align,
        reduce=reduce,
        alignment=sim3,
    )


# -------------------------------------------------------------------------------------- evo-style ATE / RPE
@dataclass(frozen=True, eq=False)
class ErrorStats:
    """Statistics of a per-frame (ATE) or per-pair (RPE) error array, as evo's `get_all_statistics`.

    rmse = sqrt(mean(e²)), mean, median, std (population, ddof = 0), min, max, sse = Σ e².
    """

    errors: np.ndarray
    rmse: float
    mean: float
    median: float
    std: float
    min: float
    max: float
    sse: float
    unit: str

    @classmethod
    def from_errors(cls, errors: np.ndarray, unit: str) -> ErrorStats:
        e = np.asarray(errors, dtype=np.float64)
        return cls(
            errors=e,
            rmse=float(np.sqrt(np.mean(e**2))),
            mean=float(np.mean(e)),
            median=float(np.median(e)),
            std=float(np.std(e)),
            min=float(np.min(e)),
            max=float(np.max(e)),
            sse=float(np.sum(e**2)),
            unit=unit,
        )

    def as_dict(self) -> dict[str, float]:
        """{"rmse", "mean", "median", "std", "min", "max", "sse"}: the keys evo uses."""
        keys = ("rmse", "mean", "median", "std", "min", "max", "sse")
        return {k: getattr(self, k) for k in keys}


def ate(
    estimate: Trajectory | np.ndarray, ground_truth: Trajectory | np.ndarray, align: str = "sim3"
) -> ErrorStats:
    """Absolute trajectory error: e_i = ‖c_est,i − c_gt,i‖ after aligning the estimate on all frames.

    Equal to evo's APE with `PoseRelation.translation_part` after `est.align(ref, correct_scale=...)`
    (align="sim3": correct_scale=True; "se3": False; "scale": correct_only_scale=True; "none": no call).
    No subsampling and no relative-to-first step: alignment absorbs the choice of world frame.
    """
    est, gt = _pair(estimate, ground_truth)
    est, _ = _aligned(est, gt, align)
    return ErrorStats.from_errors(np.linalg.norm(est[:, :3, 3] - gt[:, :3, 3], axis=1), "length")


def rpe_pairs(
    c2w: np.ndarray, delta: float, unit: str = "frames", all_pairs: bool = True, rel_tol: float = 0.1
) -> np.ndarray:
    """(K, 2) frame-index pairs (i, j), i < j, that are `delta` apart; evo's `id_pairs_from_delta`.

    - "frames": j = i + delta; all_pairs: every i; else i = 0, delta, 2·delta, … (non-overlapping).
    - "meters" (path length along `c2w`'s centres) and "degrees" / "radians": all_pairs: for each i
      the j > i whose distance (path length; for angles the direct angle between the two rotations)
      is within delta·rel_tol of delta (for path length: the closest such j); else greedy consecutive
      segments whose accumulated length / angle reaches delta.
    """
    n = len(c2w)
    if unit not in RPE_UNITS:
        raise ValueError(f"unit must be one of {RPE_UNITS}, got {unit!r}")
    if unit == "frames":
        if not float(delta).is_integer() or delta < 1:
            raise ValueError(f"delta must be a positive whole number of frames, got {delta!r}")
        d = int(delta)
        starts = np.arange(n - d) if all_pairs else np.arange(0, n, d)[:-1]
        pairs = np.stack([starts, starts + d], axis=1) if len(starts) and d < n else np.zeros((0, 2), int)
    elif not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive number of {unit}, got {delta!r}")
    elif unit == "meters":
        steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
        pairs = _pairs_by_accumulation(
            steps, np.concatenate([[0.0], np.cumsum(steps)]), delta, rel_tol, all_pairs
        )
    else:
        if unit == "degrees" and delta > 180 or unit == "radians" and delta > np.pi:
            raise ValueError(f"delta must be at most 180 degrees (pi radians), got {delta!r} {unit}")
        delta_rad = np.deg2rad(delta) if unit == "degrees" else float(delta)
        tol = delta_rad * rel_tol
        r = c2w[:, :3, :3]
        if all_pairs:
            found = []
            for i in range(n - 1):
                ang = np.deg2rad(rotation_angle_deg(r[i].T @ r[i + 1 :]))
                js = np.flatnonzero((delta_rad - tol <= ang) & (ang <= delta_rad + tol)) + i + 1
                found.extend((i, int(j)) for j in js)
            pairs = np.array(found, dtype=int).reshape(-1, 2)
        else:
            steps = np.deg2rad(rotation_angle_deg(np.swapaxes(r[:-1], 1, 2) @ r[1:]))
            pairs = _pairs_by_accumulation(steps, None, delta_rad, rel_tol, all_pairs=False)
    if len(pairs) == 0:
        raise ValueError(
            f"delta = {delta} {unit} leaves no pose pairs in a {n}-pose trajectory; use a smaller delta."
        )
    return pairs.astype(int)


def _pairs_by_accumulation(
    steps: np.ndarray, cumulative: np.ndarray | None, delta: float, rel_tol: float, all_pairs: bool
) -> np.ndarray:
    """Pairs from per-step lengths (evo's filter_pairs_by_path / the consecutive branch by angle)."""
    found: list[tuple[int, int]] = []
    if all_pairs:
        for i in range(len(cumulative) - 1):
            ahead = cumulative[i + 1 :] - cumulative[i]
            k = int(np.argmin(np.abs(ahead - delta)))
            if abs(ahead[k] - delta) <= delta * rel_tol:
                found.append((i, k + i + 1))
    else:
        start, acc = 0, 0.0
        for i, step in enumerate(steps):
            acc += float(step)
            if acc >= delta:
                found.append((start, i + 1))
                start, acc = i + 1, 0.0
    return np.array(found, dtype=int).reshape(-1, 2)


def rpe(
    estimate: Trajectory | np.ndarray,
    ground_truth: Trajectory | np.ndarray,
    delta: float = 1,
    unit: str = "frames",
    relation: str = "translation",
    align: str = "sim3",
    all_pairs: bool = True,
    pairs_from_reference: bool = False,
    rel_tol: float = 0.1,
) -> ErrorStats:
    """Relative pose error over pose pairs (i, j) `delta` apart, evo's RPE (TUM RGB-D definition).

    With ground truth Q and the aligned estimate P, for each pair E = (Q_i⁻¹ Q_j)⁻¹ (P_i⁻¹ P_j), and
    e = ‖translation(E)‖ (relation="translation", ground-truth units) or e = angle(rotation(E)) in
    degrees (relation="rotation_deg"). Pairs come from `rpe_pairs` on the aligned estimate (or on the
    ground truth with pairs_from_reference=True), as in evo.

    Args:
        delta, unit: pair spacing; unit in "frames", "meters", "degrees", "radians".
        relation: "translation" (evo PoseRelation.translation_part) or "rotation_deg" (rotation_angle_deg).
        align: as in `ate`; the rigid part cancels in E, the scale does not.
        all_pairs: True (default here): every i; False: evo's default, non-overlapping pairs.
        pairs_from_reference, rel_tol: as evo's RPE arguments of the same names.
    """
    if relation not in RPE_RELATIONS:
        raise ValueError(f"relation must be one of {RPE_RELATIONS}, got {relation!r}")
    est, gt = _pair(estimate, ground_truth)
    est, _ = _aligned(est, gt, align)
    pairs = rpe_pairs(gt if pairs_from_reference else est, delta, unit, all_pairs, rel_tol)
    i, j = pairs[:, 0], pairs[:, 1]
    q_rel = _inv_se3(gt[i]) @ gt[j]
    p_rel = _inv_se3(est[i]) @ est[j]
    e = _inv_se3(q_rel) @ p_rel
    if relation == "translation":
        return ErrorStats.from_errors(np.linalg.norm(e[:, :3, 3], axis=1), "length")
    return ErrorStats.from_errors(rotation_angle_deg(e[:, :3, :3]), "deg")
