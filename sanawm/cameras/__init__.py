"""Cameras: conventions, validation, key actions and presets, file formats, the network's camera inputs."""

from .actions import ActionSpeeds, actions_to_trajectory
from .conditioning import (
    LatentCameraInputs,
    latent_camera_inputs,
    latent_grid_size,
    plucker_rays,
    raw_to_latent_frame_groups,
)
from .formats import load_trajectory, save_trajectory
from .intrinsics import DEFAULT_FOV_LIMITS_DEG, as_intrinsics_vec4, check_field_of_view, field_of_view_deg
from .poses import as_c2w, relative_to_first
from .presets import make_preset
from .trajectory import Trajectory

__all__ = [
    "ActionSpeeds",
    "actions_to_trajectory",
    "load_trajectory",
    "make_preset",
    "save_trajectory",
    "DEFAULT_FOV_LIMITS_DEG",
    "LatentCameraInputs",
    "Trajectory",
    "as_c2w",
    "as_intrinsics_vec4",
    "check_field_of_view",
    "field_of_view_deg",
    "latent_camera_inputs",
    "latent_grid_size",
    "plucker_rays",
    "raw_to_latent_frame_groups",
    "relative_to_first",
]
