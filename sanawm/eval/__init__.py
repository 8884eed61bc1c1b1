"""Evaluation: camera accuracy of generated videos (SANA-WM-Bench RotErr / TransErr / CamMC, ATE, RPE)."""

from .align import ALIGN_MODES, Sim3, fit_alignment, umeyama
from .camera import (
    CameraMetrics,
    ErrorStats,
    ate,
    camera_metrics,
    rotation_angle_deg,
    rpe,
    rpe_pairs,
)

__all__ = [
    "ALIGN_MODES",
    "CameraMetrics",
    "ErrorStats",
    "Sim3",
    "ate",
    "camera_metrics",
    "fit_alignment",
    "rotation_angle_deg",
    "rpe",
    "rpe_pairs",
    "umeyama",
]
