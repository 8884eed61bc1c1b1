"""Annotate one video or frame folder on disk and write the result as a sanawm clip plus a report.

    OUT/
      video.mp4, cameras.npz, meta.json   the clip (sanawm.data format: camera-to-world, intrinsics)
      annotation.npz                      per frame: registered, confidence, reprojection_error,
                                          num_points, source_index (frame in the input); depth modes
                                          also scale_per_frame, scale_smoothed
      trajectory.png                      top-down and side views (with the ground truth when given)
      report.json                         verdict, reasons, every check, registered ratio, reprojection
                                          error, intrinsics, units, timings (written last)

A clip rejected before structure from motion (scene cut, no motion) gets report.json only; a clip that
cannot be read or reconstructed gets report.json with verdict "failed" and the error.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

import numpy as np

from ..cameras import Trajectory, load_trajectory
from ..cameras.plot import plot_trajectory
from ..data.clip import write_clip
from .depth import DepthEstimator
from .frames import load_frames
from .pipeline import AnnotateOptions, Annotation, annotate_frames

REPORT = "report.json"
ARRAYS = "annotation.npz"
PLOT = "trajectory.png"


def load_depth(path, indices: np.ndarray) -> np.ndarray:
    """Depth maps (F, H, W) metres of the sampled frames from an .npz ('depth'), an .npy, or a clip folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "depth.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"depth file {path} does not exist; pass an .npz with a 'depth' array, an .npy, or a clip "
            "folder holding depth.npz"
        )
    if path.suffix == ".npy":
        depth = np.load(path, allow_pickle=False)
    else:
        with np.load(path, allow_pickle=False) as data:
            if "depth" not in data.files:
                raise ValueError(f"{path} has no 'depth' array (found {data.files})")
            depth = data["depth"]
    if depth.ndim != 3 or depth.shape[0] <= int(indices.max()):
        raise ValueError(
            f"{path}: depth has shape {depth.shape}; expected (F, H, W) with one map per frame of the input "
            f"({int(indices.max()) + 1} or more)"
        )
    return depth[indices].astype(np.float32)


def load_gt_poses(path, indices: np.ndarray, trajectory_format: str | None = None) -> np.ndarray:
    """Ground-truth camera-to-world poses of the sampled frames from any trajectory file sanawm reads."""
    traj = load_trajectory(path, trajectory_format)
    if len(traj) <= int(indices.max()):
        raise ValueError(
            f"{path} has {len(traj)} poses but the input has at least {int(indices.max()) + 1} frames; "
            "give one pose per input frame"
        )
    return traj.c2w[indices]


def _even(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, : h - h % 2, : w - w % 2]


def write_annotation(
    ann: Annotation,
    frames: np.ndarray,
    out: Path,
    *,
    source: str,
    source_indices,
    gt_c2w=None,
    extra_report: dict | None = None,
    overwrite: bool = False,
) -> dict:
    """Write the clip, arrays, plot and report of an annotation into `out`; returns the report."""
    out = Path(out)
    report = {"source": source, **ann.report(), **(extra_report or {})}
    report["source_frame_indices"] = np.asarray(source_indices).tolist()
    if ann.trajectory is not None:
        even = _even(frames)
        h, w = even.shape[1:3]
        traj = ann.trajectory.with_intrinsics(ann.trajectory.intrinsics, (h, w))
        summary = {
            "verdict": ann.verdict,
            "scale_mode": ann.scale_mode,
            "units": ann.scale.units,
            "registered_ratio": float(ann.registered.mean()),
            "report": REPORT,
        }
        write_clip(out, even, traj, source=source, overwrite=overwrite, extra={"annotation": summary})
        arrays = {
            "registered": ann.registered,
            "confidence": ann.confidence,
            "reprojection_error": ann.reprojection_error,
            "num_points": ann.num_points,
            "source_index": np.asarray(source_indices),
        }
        if ann.scale.per_frame is not None:
            arrays.update(scale_per_frame=ann.scale.per_frame, scale_smoothed=ann.scale.smoothed)
        np.savez(out / ARRAYS, **arrays)
        trajs, labels = [traj], ["annotated"]
        if gt_c2w is not None:
            trajs, labels = [traj, Trajectory(gt_c2w, fps=traj.fps)], ["annotated", "ground truth"]
        plot_trajectory(trajs, out / PLOT, labels=labels)
        report["outputs"] = {"clip": ".", "arrays": ARRAYS, "plot": PLOT}
    else:
        out.mkdir(parents=True, exist_ok=True)
    (out / REPORT).write_text(json.dumps(report, indent=1, allow_nan=False, default=_json_default))
    return report


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def failure_report(out: Path, source: str, error: str, detail: str = "") -> dict:
    """Write report.json with verdict "failed" (the clip could not be read or reconstructed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"source": source, "verdict": "failed", "reasons": [error], "error": error, "detail": detail}
    (out / REPORT).write_text(json.dumps(report, indent=1))
    return report


def annotate_source(
    source,
    out,
    *,
    stride: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    folder_fps: float = 10.0,
    intrinsics=None,
    focal: float | None = None,
    gt_poses=None,
    gt_poses_format: str | None = None,
    gt_depth=None,
    depth_estimator: DepthEstimator | None = None,
    options: AnnotateOptions | None = None,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict:
    """Annotate a video file or frame folder into `out` (layout in the module docstring).

    Never raises for a bad clip: unreadable input or a failed reconstruction gives a report with verdict
    "failed" (bad arguments, e.g. a missing ground-truth file, still raise).

    Returns:
        The report (also written to out/report.json).
    """
    source, out = Path(source), Path(out)
    t0 = time.perf_counter()
    try:
        clip = load_frames(source, stride=stride, fps=fps, max_frames=max_frames, folder_fps=folder_fps)
    except (ValueError, OSError) as err:
        return failure_report(out, str(source), f"cannot read {source}: {err}")
    if focal is not None:
        if intrinsics is not None:
            raise ValueError("give focal or intrinsics, not both")
        h, w = clip.frames.shape[1:3]
        intrinsics = [focal, focal, (w - 1) / 2.0, (h - 1) / 2.0]  # centred principal point
    gt_c2w = load_gt_poses(gt_poses, clip.indices, gt_poses_format) if gt_poses is not None else None
    depth = load_depth(gt_depth, clip.indices) if gt_depth is not None else None
    if depth is not None and depth.shape[1:] != clip.frames.shape[1:3]:
        raise ValueError(
            f"depth maps are {depth.shape[1:]} but the frames are {clip.frames.shape[1:3]} (H, W)"
        )
    try:
        ann = annotate_frames(
            clip.frames, clip.fps, intrinsics=intrinsics, gt_poses=gt_c2w, gt_depth=depth,
            depth_estimator=depth_estimator, options=options, verbose=verbose,
        )  # fmt: skip
    except (RuntimeError, ValueError) as err:
        return failure_report(out, str(source), f"annotation failed: {err}", traceback.format_exc())
    total = time.perf_counter() - t0
    extra = {"total_s": round(total, 3), "frames_per_second": round(len(clip) / total, 3),
             "sampled_fps": clip.fps, "source_fps": clip.source_fps}  # fmt: skip
    return write_annotation(ann, clip.frames, out, source=str(source), source_indices=clip.indices,
                            gt_c2w=gt_c2w, extra_report=extra, overwrite=overwrite)  # fmt: skip
