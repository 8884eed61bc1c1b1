"""Distillation: a few-step autoregressive student from a multi-step teacher (SPEC 5-6).

Stage 1, ODE regression (`sanawm distill ode`): the teacher's chunk-by-chunk sampling trajectories are
stored at the student's noise levels and regressed onto. Stage 2, self-forcing with DMD (`sanawm distill
dmd`): the student rolls out on its own outputs with the inference streaming state, and distribution
matching against the teacher (real score) and a trained fake score shapes its samples. `sanawm distill
export` writes a pipeline folder whose `student/` `sanawm generate` uses by default.
"""

from .config import DistillConfig, load_distill_config
from .diagnostics import CameraProbe, camera_gap
from .dmd import critic_loss, distribution_matching, dmd_gradient, dmd_loss, predict_x0
from .export import export_student
from .ode import TrajectoryDataset, build_trajectories, ode_regression_loss, teacher_trajectory
from .rollout import self_forcing_rollout
from .trainer import DmdDistiller, OdeDistiller, load_network

__all__ = [
    "CameraProbe",
    "DistillConfig",
    "DmdDistiller",
    "OdeDistiller",
    "TrajectoryDataset",
    "build_trajectories",
    "camera_gap",
    "critic_loss",
    "distribution_matching",
    "dmd_gradient",
    "dmd_loss",
    "export_student",
    "load_distill_config",
    "load_network",
    "ode_regression_loss",
    "predict_x0",
    "self_forcing_rollout",
    "teacher_trajectory",
]
