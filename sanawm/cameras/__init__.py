"""Camera inputs: validate raw-frame poses and intrinsics, build the network's latent-rate conditions."""

from .conditioning import (
    LatentCameraInputs,
    latent_camera_inputs,
    latent_grid_size,
    plucker_rays,
    raw_to_latent_frame_groups,
)
from .intrinsics import DEFAULT_FOV_LIMITS_DEG, as_intrinsics_vec4, check_field_of_view, field_of_view_deg
from .poses import as_c2w, relative_to_first
from .trajectory import Trajectory

__all__ = [
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
