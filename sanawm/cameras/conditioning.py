"""Raw-frame camera poses -> the network's latent-rate camera inputs.

The VAE folds 8 raw frames into one latent frame (the first latent frame holds raw frame 0 alone) and
32×32 pixels into one latent pixel. Per latent frame the network gets two camera inputs:

- ``camera`` (T_lat, 20): the pose of raw frame 8k relative to raw frame 0, flattened row-major, then
  (fx, fy, cx, cy) in latent-grid pixels. Feeds the UCPE branch.
- ``plucker`` (48, T_lat, H_lat, W_lat): per-pixel Plücker rays (d, o × d) of the 8 raw frames
  max(0, 8k − 7) .. max(0, 8k − 7) + 7 on the latent grid, channel 6·f + c. Feeds the Plücker branch.

Both match ``prepare_camera`` in diffusers' ``pipelines/sana_wm/cam_utils.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .intrinsics import DEFAULT_FOV_LIMITS_DEG, as_intrinsics_vec4, check_field_of_view
from .poses import as_c2w, relative_to_first


def plucker_rays(c2w: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel Plücker coordinates (d, o × d) of pinhole cameras.

    Pixel (row v, column u) uses integer coordinates u in 0..W−1, v in 0..H−1 (no half-pixel offset,
    as in the reference). d = normalise(R · [(u − cx)/fx, (v − cy)/fy, 1]), o = camera centre.

    Args:
        c2w: (F, 4, 4) camera-to-world poses.
        intrinsics: (F, 4) (fx, fy, cx, cy) in pixels of the (height, width) grid.

    Returns:
        (F, H, W, 6) tensor in c2w's dtype: direction (3) then moment (3).
    """
    kw = {"device": c2w.device, "dtype": c2w.dtype}
    v, u = torch.meshgrid(torch.arange(height, **kw), torch.arange(width, **kw), indexing="ij")
    fx, fy, cx, cy = (intrinsics.to(**kw)[:, i, None, None] for i in range(4))
    x, y = (u - cx) / fx, (v - cy) / fy  # (F, H, W) each
    d_cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    d = torch.einsum("fij,fhwj->fhwi", c2w[:, :3, :3], d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[:, None, None, :3, 3].expand_as(d)
    return torch.cat([d, torch.cross(o, d, dim=-1)], dim=-1)


def raw_to_latent_frame_groups(num_raw_frames: int, temporal_stride: int = 8) -> list[list[int]]:
    """Raw frames folded into each latent frame: k uses max(0, 8k − 7) .. max(0, 8k − 7) + 7.

    For 17 raw frames: [[0..7], [1..8], [9..16]]. The camera of latent frame k is raw frame 8k.

    Args:
        num_raw_frames: must be temporal_stride·m + 1.

    Returns:
        T_lat = m + 1 lists of temporal_stride raw frame indices.
    """
    s = temporal_stride
    if num_raw_frames < 1 or (num_raw_frames - 1) % s:
        below = num_raw_frames - (num_raw_frames - 1) % s
        valid = [n for n in (below, below + s) if n >= 1]
        raise ValueError(
            f"got {num_raw_frames} frames; the VAE needs {s}k+1 frames, e.g. "
            f"{' or '.join(map(str, valid))}; trim or extend the trajectory."
        )
    starts = [max(0, s * k - s + 1) for k in range((num_raw_frames - 1) // s + 1)]
    return [list(range(start, start + s)) for start in starts]


@dataclass(frozen=True)
class LatentCameraInputs:
    """Camera inputs of the network for one video (no batch axis).

    camera: (T_lat, 20) relative c2w of raw frame 8k (16, row-major) + latent-grid (fx, fy, cx, cy).
    plucker: (48, T_lat, H_lat, W_lat) Plücker rays of the 8 raw frames per latent frame, channel 6·f + c.
    """

    camera: torch.Tensor
    plucker: torch.Tensor

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> LatentCameraInputs:
        """Copy to `device` and / or `dtype` (None keeps the current one)."""
        move = {"device": device, "dtype": dtype}
        return LatentCameraInputs(self.camera.to(**move), self.plucker.to(**move))

    def batched(self) -> tuple[torch.Tensor, torch.Tensor]:
        """((1, T_lat, 20), (1, 48, T_lat, H_lat, W_lat)), the layout the network takes."""
        return self.camera[None], self.plucker[None]


def latent_grid_size(image_size: tuple[int, int], spatial_stride: int = 32) -> tuple[int, int]:
    """(H, W) in pixels -> (H_lat, W_lat); both sides must be multiples of spatial_stride."""
    h, w = image_size
    if h <= 0 or w <= 0 or h % spatial_stride or w % spatial_stride:
        near = tuple(max(spatial_stride, round(x / spatial_stride) * spatial_stride) for x in (h, w))
        raise ValueError(
            f"image size {(h, w)} is not a multiple of the VAE's spatial stride {spatial_stride}; resize or "
            f"crop to e.g. {near} and rescale the intrinsics to match."
        )
    return h // spatial_stride, w // spatial_stride


def latent_camera_inputs(
    c2w,
    intrinsics,
    image_size: tuple[int, int],
    temporal_stride: int = 8,
    spatial_stride: int = 32,
    *,
    fov_limits: tuple[float, float] | None = DEFAULT_FOV_LIMITS_DEG,
    dtype: torch.dtype = torch.float32,
) -> LatentCameraInputs:
    """Validate a raw-frame trajectory and build the network's camera inputs (computed in float64).

    Args:
        c2w: (F, 4, 4) or (F, 3, 4) camera-to-world poses (OpenCV axes), F = temporal_stride·m + 1.
        intrinsics: (4,), (F, 4), (3, 3) or (F, 3, 3) in pixels of the (H, W) image.
        image_size: (H, W) in pixels, multiples of spatial_stride.
        fov_limits: allowed horizontal field of view in degrees; None skips the check.

    Returns:
        LatentCameraInputs with camera (T_lat, 20) and plucker (48, T_lat, H_lat, W_lat) in `dtype`.
    """
    poses = as_c2w(c2w)
    groups = raw_to_latent_frame_groups(len(poses), temporal_stride)
    vec4 = as_intrinsics_vec4(intrinsics, len(poses))
    if fov_limits is not None:
        check_field_of_view(vec4, *image_size, limits=fov_limits)
    h_lat, w_lat = latent_grid_size(image_size, spatial_stride)
    scale = np.array([w_lat / image_size[1], h_lat / image_size[0]] * 2)
    rel = torch.from_numpy(relative_to_first(poses))
    k_lat = torch.from_numpy(vec4 * scale)
    cams = list(range(0, len(poses), temporal_stride))
    camera = torch.cat([rel[cams].reshape(len(cams), 16), k_lat[cams]], dim=-1)
    rays = plucker_rays(rel, k_lat, h_lat, w_lat)[torch.tensor(groups)]  # (T_lat, 8, H_lat, W_lat, 6)
    plucker = rays.permute(1, 4, 0, 2, 3).reshape(6 * temporal_stride, len(cams), h_lat, w_lat)
    return LatentCameraInputs(camera.to(dtype), plucker.to(dtype).contiguous())
