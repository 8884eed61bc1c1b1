"""Clip filters: each gives a `Check` (name, passed, value, limit, reason) that goes into the report.

Before structure from motion (cheap; a failing clip is not reconstructed):
- scene_cuts: PySceneDetect's content detector on the sampled frames finds no cut.
- motion: the median optical-flow magnitude between consecutive sampled frames (OpenCV DIS flow on
  frames scaled to 160 px wide), as a fraction of the image width, lies in [min_motion, max_motion]:
  too little is a static shot (no parallax, no poses), too much is a blur or a swish pan.

After it:
- registered: the fraction of frames structure from motion registered is at least min_registered.
- field_of_view: every frame's horizontal field of view lies in [25°, 120°] (SPEC §7).
- aspect: |fx − fy| / mean(fx, fy) ≤ 0.2 for every frame.
- scale_cv: in the depth scale modes, std / mean of the per-frame scales ≤ 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..cameras.intrinsics import DEFAULT_FOV_LIMITS_DEG, field_of_view_deg

_FLOW_WIDTH = 160


@dataclass(frozen=True)
class FilterLimits:
    """The thresholds of every filter (defaults: SPEC §7 where it names one)."""

    fov_deg: tuple[float, float] = DEFAULT_FOV_LIMITS_DEG
    max_aspect_gap: float = 0.2
    max_scale_cv: float = 2.0
    min_registered: float = 0.9
    min_motion: float = 0.002
    max_motion: float = 0.15
    cut_threshold: float = 27.0

    def __post_init__(self) -> None:
        lo, hi = self.fov_deg
        if not 0 < lo < hi < 180:
            raise ValueError(
                f"fov_deg must be (low, high) degrees with 0 < low < high < 180, got {self.fov_deg}"
            )
        if not 0 <= self.min_motion < self.max_motion:
            raise ValueError(f"need 0 <= min_motion < max_motion, got {self.min_motion}, {self.max_motion}")
        if not 0 <= self.min_registered <= 1:
            raise ValueError(f"min_registered is a fraction in [0, 1], got {self.min_registered}")


@dataclass(frozen=True)
class Check:
    """One filter's outcome. value and limit are JSON-friendly (numbers, lists or None)."""

    name: str
    passed: bool
    value: object
    limit: object
    reason: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _check(name: str, passed: bool, value, limit, reason: str) -> Check:
    return Check(name, bool(passed), value, limit, "" if passed else reason)


def scene_cuts(frames: np.ndarray, fps: float, threshold: float = 27.0) -> list[int]:
    """Indices (into `frames`) of the frames that start a new shot, by PySceneDetect's ContentDetector."""
    try:
        from scenedetect import ContentDetector, FrameTimecode
    except ImportError:
        raise ImportError(
            "scene-cut detection needs PySceneDetect; install it with `pip install 'sanawm[annotate]'`"
        ) from None
    detector = ContentDetector(threshold=threshold, min_scene_len=1)
    cuts = []
    for i, frame in enumerate(frames):
        bgr = np.ascontiguousarray(frame[..., ::-1])
        cuts += [int(c.frame_num) for c in detector.process_frame(FrameTimecode(i, fps), bgr)]
    return sorted({c for c in cuts if 0 < c < len(frames)})


def motion_magnitudes(frames: np.ndarray) -> np.ndarray:
    """(F − 1,) mean optical-flow magnitude between consecutive frames, as a fraction of the width."""
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "the motion filter needs OpenCV; install it with `pip install 'sanawm[annotate]'`"
        ) from None
    h, w = frames.shape[1:3]
    size = (_FLOW_WIDTH, max(8, round(h * _FLOW_WIDTH / w)))
    grey = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames
    ]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    out = np.empty(len(frames) - 1)
    for i in range(len(frames) - 1):
        flow = dis.calc(grey[i], grey[i + 1], None)
        out[i] = float(np.linalg.norm(flow, axis=-1).mean()) / _FLOW_WIDTH
    return out


def video_checks(frames: np.ndarray, fps: float, limits: FilterLimits) -> list[Check]:
    """Scene cuts and motion (run before structure from motion)."""
    cuts = scene_cuts(frames, fps, limits.cut_threshold)
    checks = [
        _check(
            "scene_cuts", not cuts, cuts, [],
            f"scene cut(s) at sampled frame(s) {cuts}: one clip must be one shot; split the video there",
        )
    ]  # fmt: skip
    motion = float(np.median(motion_magnitudes(frames))) if len(frames) > 1 else 0.0
    lo, hi = limits.min_motion, limits.max_motion
    if motion < lo:
        reason = (
            f"too little motion: median optical flow {motion:.4f} of the image width per frame < {lo:g} "
            "(a static shot has no parallax to recover poses from; sample sparser frames with --stride)"
        )
    else:
        reason = (
            f"too much motion: median optical flow {motion:.4f} of the image width per frame > {hi:g} "
            "(blur or a swish pan; sample denser frames with a smaller --stride)"
        )
    checks.append(_check("motion", lo <= motion <= hi, motion, [lo, hi], reason))
    return checks


def camera_checks(
    intrinsics: np.ndarray,
    image_size: tuple[int, int],
    registered_ratio: float,
    scale_cv: float | None,
    limits: FilterLimits,
) -> list[Check]:
    """Registered ratio, field of view, aspect and (depth modes) scale consistency."""
    h, w = image_size
    k = np.asarray(intrinsics, dtype=np.float64)
    checks = [
        _check(
            "registered", registered_ratio >= limits.min_registered, registered_ratio, limits.min_registered,
            f"only {registered_ratio:.0%} of the frames were registered (< {limits.min_registered:.0%}); "
            "the rest are interpolated",
        )
    ]  # fmt: skip
    fov = field_of_view_deg(k[:, 0], w)
    lo, hi = limits.fov_deg
    bad = np.flatnonzero((fov < lo) | (fov > hi))
    first = int(bad[0]) if bad.size else 0
    checks.append(
        _check(
            "field_of_view", bad.size == 0, [float(fov.min()), float(fov.max())], [lo, hi],
            f"horizontal field of view {fov[first]:.1f}° (frame {first}) is outside [{lo:g}°, {hi:g}°]",
        )
    )  # fmt: skip
    gap = np.abs(k[:, 0] - k[:, 1]) / ((k[:, 0] + k[:, 1]) / 2.0)
    checks.append(
        _check(
            "aspect", float(gap.max()) <= limits.max_aspect_gap, float(gap.max()), limits.max_aspect_gap,
            f"|fx − fy| / mean = {gap.max():.3f} > {limits.max_aspect_gap:g}: non-square pixels or a bad "
            "calibration",
        )
    )  # fmt: skip
    if scale_cv is not None:
        checks.append(
            _check(
                "scale_cv", scale_cv <= limits.max_scale_cv, scale_cv, limits.max_scale_cv,
                f"per-frame metric scales vary too much (coefficient of variation {scale_cv:.2f} > "
                f"{limits.max_scale_cv:g}): the depth maps disagree with the reconstruction",
            )
        )  # fmt: skip
    return checks
