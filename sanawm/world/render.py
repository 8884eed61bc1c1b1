"""Offscreen RGB and depth rendering of a `SceneSpec` along a `Trajectory`, with exact cameras.

How a pose and pixel intrinsics become MuJoCo's OpenGL camera (checked by tests/world/test_geometry.py):
- The pose: MuJoCo's camera looks along its `forward` vector with `up` up; OpenCV's looks along +z with
  y down. So forward = R[:, 2] and up = −R[:, 1] (the y and z axes flipped), position = t, all in scene
  coordinates (the trajectory's world poses are mapped by `geometry.c2w_world_to_scene`).
- The intrinsics: we write the frustum at the near plane n directly, so any (fx, fy, cx, cy) renders
  exactly, off-centre principal points and fx ≠ fy included (mjvGLCamera.frustum_width is documented
  as "not used for rendering", but the classic renderer uses it when non-zero). OpenGL samples pixel i
  at window coordinate i + 0.5 and maps the frustum's left edge to window coordinate 0; with sanawm's
  convention (integer pixel coordinates address pixel centres, u = window x − 0.5):
      left = −(cx + 0.5)·n/fx,  right = (W − cx − 0.5)·n/fx,
      top = (cy + 0.5)·n/fy,    bottom = −(H − cy − 0.5)·n/fy.
  MuJoCo's own camera (fovy, square pixels, centred) is the special case fx = fy = H / (2 tan(fovy/2)),
  cx = (W − 1)/2, cy = (H − 1)/2 — not W/2, H/2 (that would be half a pixel off).
- Depth: MuJoCo's renderer reads the (reversed-Z) depth buffer and converts it with the model's near
  and far planes to metres along the optical axis: z-depth (the camera-frame z of the surface point),
  not the distance along the ray. Pixels that see only sky hold ~the far plane distance; we return
  inf there.
"""

from __future__ import annotations

import os

import mujoco  # the package __init__ has set MUJOCO_GL=egl when it was unset
import numpy as np

from ..cameras import Trajectory
from .camera import parse_size, prepare_trajectory
from .geometry import c2w_world_to_scene
from .mjcf import NEAR, far_plane
from .scene import SceneSpec


def _set_camera(scene: mujoco.MjvScene, c2w: np.ndarray, k: np.ndarray, size: tuple[int, int]) -> None:
    """Point both of the scene's OpenGL cameras (mono rendering averages them) at one OpenCV pose."""
    h, w = size
    fx, fy, cx, cy = (float(v) for v in k)
    for cam in scene.camera:
        n = cam.frustum_near
        left, right = -(cx + 0.5) * n / fx, (w - cx - 0.5) * n / fx
        cam.pos[:] = c2w[:3, 3]
        cam.forward[:] = c2w[:3, 2]
        cam.up[:] = -c2w[:3, 1]
        cam.frustum_center = 0.5 * (left + right)
        cam.frustum_width = 0.5 * (right - left)
        cam.frustum_top = (cy + 0.5) * n / fy
        cam.frustum_bottom = -(h - cy - 0.5) * n / fy
        cam.orthographic = 0


class WorldRenderer:
    """One scene loaded into MuJoCo with an offscreen renderer of one size; render many trajectories.

    with WorldRenderer(build_scene(3), (256, 256)) as r:
        rgb, depth = r.render(trajectory, depth=True)
    """

    def __init__(self, scene: SceneSpec, size):
        self.scene = scene
        self.size = parse_size(size)
        self.model = mujoco.MjModel.from_xml_string(scene.to_mjcf(max_size=self.size))
        self.data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self.data)
        h, w = self.size
        try:
            self._renderer = mujoco.Renderer(self.model, height=h, width=w)
        except mujoco.FatalError as err:
            raise RuntimeError(
                f"MuJoCo could not create an OpenGL context (MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}): "
                f"{err}. Without a display, set MUJOCO_GL=egl before anything imports mujoco (importing "
                "sanawm.world first does this)."
            ) from err
        self._renderer.update_scene(self.data)
        near = self._renderer.scene.camera[0].frustum_near
        if abs(near - NEAR) > 1e-4:  # the MJCF sets the planes through the extent; keep them in metres
            raise RuntimeError(f"near plane is {near} m, expected {NEAR} m; the MJCF extent is inconsistent")
        self.far = far_plane(scene)

    def render_frame(self, c2w_scene: np.ndarray, k: np.ndarray, depth: bool = False):
        """One frame from a camera-to-scene pose (OpenCV axes): (H, W, 3) uint8 and (H, W) float32 | None."""
        r = self._renderer
        _set_camera(r.scene, c2w_scene, k, self.size)
        r.disable_depth_rendering()
        rgb = r.render()
        if not depth:
            return rgb, None
        r.enable_depth_rendering()
        z = r.render()
        r.disable_depth_rendering()
        z[z >= 0.999 * self.far] = np.inf  # sky: no surface
        return rgb, z

    def render_ids(self, c2w_scene: np.ndarray, k: np.ndarray) -> np.ndarray:
        """(H, W) int32 geom id seen at each pixel (-1: none), from a camera-to-scene pose."""
        r = self._renderer
        _set_camera(r.scene, c2w_scene, k, self.size)
        r.enable_segmentation_rendering()
        seg = r.render()
        r.disable_segmentation_rendering()
        return np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1).astype(np.int32)

    def geom_id(self, name: str) -> int:
        """The id of a geom by name: "floor", "wall_north", ... or "<object name>_<part index>"."""
        gid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM, name)
        if gid < 0:
            raise KeyError(f"scene {self.scene.seed} has no geom named {name!r}")
        return gid

    def render(self, trajectory: Trajectory, depth: bool = False, progress=None):
        """Render every pose of a world-frame trajectory whose intrinsics are for this renderer's size.

        Returns:
            rgb (F, H, W, 3) uint8, and depth (F, H, W) float32 metres along the optical axis (inf = sky)
            or None.
        """
        if trajectory.intrinsics is None or trajectory.image_size != self.size:
            raise ValueError(
                f"trajectory intrinsics are for image_size {trajectory.image_size}, the renderer draws "
                f"{self.size}; call prepare_trajectory(trajectory, size={self.size}) first"
            )
        c2w = c2w_world_to_scene(trajectory.c2w)
        h, w = self.size
        rgb = np.empty((len(trajectory), h, w, 3), dtype=np.uint8)
        z = np.empty((len(trajectory), h, w), dtype=np.float32) if depth else None
        for i in range(len(trajectory)):
            frame, d = self.render_frame(c2w[i], trajectory.intrinsics[i], depth)
            rgb[i] = frame
            if depth:
                z[i] = d
            if progress is not None:
                progress(1)
        return rgb, z

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> WorldRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_trajectory(
    scene: SceneSpec, trajectory: Trajectory, size=None, depth: bool = False, fov_deg: float | None = None
):
    """Render `trajectory` (world frame) in `scene`: (rgb (F, H, W, 3) uint8, depth (F, H, W) float32 | None).

    `size` (H, W) defaults to the trajectory's image_size; its intrinsics are rescaled to `size`, or
    built from `fov_deg` when it has none (see `prepare_trajectory`). Depth is z-depth in metres.
    """
    traj = prepare_trajectory(trajectory, size, fov_deg)
    with WorldRenderer(scene, traj.image_size) as r:
        return r.render(traj, depth=depth)
