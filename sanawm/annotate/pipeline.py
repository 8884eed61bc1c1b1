"""Annotate frames: structure from motion, every frame posed, a scale mode, filters, a verdict.

    ann = annotate_frames(frames, fps=16)              # (F, H, W, 3) uint8 -> Annotation
    ann.trajectory.c2w, ann.trajectory.intrinsics       # (F, 4, 4) camera-to-world, (F, 4) pixels
    ann.confidence, ann.registered, ann.verdict         # (F,), (F,), "accepted" / "rejected"

`annotate_frames` is also how evaluation re-estimates the poses of generated videos: pass the frames
and compare `ann.trajectory` with the conditioning path using `sanawm.eval.camera_metrics`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..cameras import Trajectory
from ..eval.camera import ate, camera_metrics
from .complete import fill_missing_poses, frame_confidence
from .depth import DepthEstimator
from .filters import Check, FilterLimits, camera_checks, video_checks
from .scale import ScaleResult, align_to_poses, depth_scale, relative_scale
from .sfm import SfmOptions, SfmResult, check_frames, run_sfm


@dataclass(frozen=True)
class AnnotateOptions:
    """Everything that shapes an annotation besides its inputs.

    sfm: structure-from-motion options. limits: filter thresholds. scale_momentum: smoothing of the
    per-frame metric scale (depth modes). early_reject: skip structure from motion for clips that fail
    the scene-cut or motion filter (their verdict says why).
    """

    sfm: SfmOptions = field(default_factory=SfmOptions)
    limits: FilterLimits = field(default_factory=FilterLimits)
    scale_momentum: float = 0.99
    early_reject: bool = True


@dataclass(frozen=True)
class Annotation:
    """The result for one clip. Arrays have one row per (sampled) frame.

    trajectory: poses (camera-to-world, OpenCV axes) with intrinsics (pixels), image size and fps; None
    when the clip was rejected before structure from motion. registered: (F,) bool, False for
    interpolated frames. confidence: (F,) in [0, 1] (see `complete.py`). verdict: "accepted" or
    "rejected"; reasons: why not. checks: every filter's outcome. scale: the scale mode's result.
    """

    trajectory: Trajectory | None
    registered: np.ndarray | None
    confidence: np.ndarray | None
    reprojection_error: np.ndarray | None
    num_points: np.ndarray | None
    scale_mode: str
    scale: ScaleResult | None
    sfm: SfmResult | None
    checks: tuple[Check, ...]
    timings: dict[str, float]
    metrics: dict | None = None

    @property
    def verdict(self) -> str:
        return (
            "accepted" if all(c.passed for c in self.checks) and self.trajectory is not None else "rejected"
        )

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.checks if not c.passed]

    def report(self) -> dict:
        """A JSON-friendly summary (what report.json holds)."""
        out: dict = {
            "verdict": self.verdict,
            "reasons": self.reasons,
            "checks": [c.to_json() for c in self.checks],
            "scale_mode": self.scale_mode,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if self.trajectory is None:
            return out
        k = self.trajectory.intrinsics
        h, w = self.trajectory.image_size
        sfm = self.sfm
        out.update(
            num_frames=len(self.trajectory),
            image_size=[h, w],
            fps=self.trajectory.fps,
            registered=int(self.registered.sum()),
            registered_ratio=float(self.registered.mean()),
            interpolated_frames=np.flatnonzero(~self.registered).tolist(),
            mean_reprojection_error_px=sfm.mean_reprojection_error,
            mean_confidence=float(self.confidence.mean()),
            intrinsics={
                "fx": float(k[:, 0].mean()),
                "fy": float(k[:, 1].mean()),
                "cx": float(k[:, 2].mean()),
                "cy": float(k[:, 3].mean()),
                "shared": bool(np.allclose(k, k[0])),
                "horizontal_fov_deg": float(np.degrees(2 * np.arctan(w / (2 * k[:, 0].mean())))),
            },  # fmt: skip
            camera_model=sfm.camera,
            focal_prior=None if sfm.focal_prior is None else vars(sfm.focal_prior),
            units=self.scale.units,
            scale_cv=self.scale.cv,
            sfm={
                "models": sfm.num_models,
                "points3d": sfm.num_points3d,
                "loop_pairs": sfm.loop_pairs,
                "work_size": list(sfm.work_size),
                "cpu_s": {k: round(v, 3) for k, v in sfm.cpu_timings.items()},
                "notes": list(sfm.notes),
            },  # fmt: skip
        )
        if self.metrics is not None:
            out["vs_ground_truth"] = self.metrics
        return out


def _scale_mode(gt_poses, gt_depth, depth_estimator) -> str:
    inputs = (("gt_poses", gt_poses), ("gt_depth", gt_depth), ("estimator", depth_estimator))
    given = [name for name, x in inputs if x is not None]
    if len(given) > 1:
        raise ValueError(
            f"give at most one of gt_poses, gt_depth, depth_estimator (scale modes), got {given}"
        )
    return given[0] if given else "relative"


def trajectory_metrics(c2w: np.ndarray, gt_c2w: np.ndarray) -> dict:
    """ATE (Sim(3), also as % of the ground-truth path length) and SPEC §8 RotErr / TransErr / CamMC."""
    path = float(np.linalg.norm(np.diff(gt_c2w[:, :3, 3], axis=0), axis=1).sum())
    a = ate(c2w, gt_c2w)
    m = camera_metrics(c2w, gt_c2w, every=1)
    return {
        "ate_rmse": a.rmse,
        "path_length": path,
        "ate_percent_of_path": 100.0 * a.rmse / path if path > 0 else None,
        **m.as_dict(),
        "convention": m.convention,
    }


def annotate_frames(
    frames: np.ndarray,
    fps: float,
    *,
    intrinsics=None,
    gt_poses=None,
    gt_depth: np.ndarray | None = None,
    depth_estimator: DepthEstimator | None = None,
    options: AnnotateOptions | None = None,
    verbose: bool = False,
) -> Annotation:
    """Camera poses and intrinsics for every frame of a clip.

    Args:
        frames: (F, H, W, 3) uint8 RGB in time order.
        fps: their frame rate.
        intrinsics: known (4,) / (F, 4) (fx, fy, cx, cy) pixels, held fixed; None: estimated.
        gt_poses: (F, 4, 4) camera-to-world or a `Trajectory`: scale mode gt_poses.
        gt_depth: (F, H, W) metres: scale mode gt_depth.
        depth_estimator: a `DepthEstimator`: scale mode estimator.
        options: `AnnotateOptions`.

    Returns:
        `Annotation` (rejected clips have verdict "rejected" and the reasons; with early_reject, clips
        failing the cut or motion filter have no trajectory).
    """
    opts = options or AnnotateOptions()
    mode = _scale_mode(gt_poses, gt_depth, depth_estimator)
    frames = np.asarray(frames)
    check_frames(frames, "annotate_frames")
    n, h, w, _ = frames.shape
    gt_c2w = None
    if gt_poses is not None:
        gt_c2w = gt_poses.c2w if isinstance(gt_poses, Trajectory) else Trajectory(gt_poses).c2w
        if len(gt_c2w) != n:
            raise ValueError(
                f"gt_poses has {len(gt_c2w)} poses for {n} frames; pass one pose per sampled frame"
            )
    timings: dict[str, float] = {}

    t = time.perf_counter()
    checks = video_checks(frames, fps, opts.limits)
    timings["video_filters"] = time.perf_counter() - t
    if opts.early_reject and not all(c.passed for c in checks):
        return Annotation(None, None, None, None, None, mode, None, None, tuple(checks), timings)

    t = time.perf_counter()
    sfm = run_sfm(frames, opts.sfm, intrinsics=intrinsics, verbose=verbose)
    timings["sfm"] = time.perf_counter() - t

    t = time.perf_counter()
    c2w = fill_missing_poses(sfm.c2w, sfm.registered)
    if mode == "gt_poses":
        scale = align_to_poses(c2w, gt_c2w, sfm.registered)
    elif mode == "relative":
        scale = relative_scale(c2w, sfm.observations, sfm.registered)
    else:
        if depth_estimator is not None:
            gt_depth = depth_estimator.predict(frames)
        if np.asarray(gt_depth).shape != (n, h, w):
            raise ValueError(f"depth maps must be (F, H, W) = {(n, h, w)}, got {np.asarray(gt_depth).shape}")
        scale = depth_scale(c2w, sfm.observations, gt_depth, sfm.registered, opts.scale_momentum, mode)
    timings["scale"] = time.perf_counter() - t

    trajectory = Trajectory(c2w=scale.c2w, intrinsics=sfm.intrinsics, image_size=(h, w), fps=fps)
    checks += camera_checks(sfm.intrinsics, (h, w), sfm.registered_ratio, scale.cv, opts.limits)
    metrics = trajectory_metrics(scale.c2w, gt_c2w) if gt_c2w is not None else None
    return Annotation(
        trajectory=trajectory,
        registered=sfm.registered,
        confidence=frame_confidence(sfm.registered, sfm.num_points, sfm.reprojection_error),
        reprojection_error=sfm.reprojection_error,
        num_points=sfm.num_points,
        scale_mode=mode,
        scale=scale,
        sfm=sfm,
        checks=tuple(checks),
        timings=timings,
        metrics=metrics,
    )
