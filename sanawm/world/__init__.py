"""Procedural posed worlds: seeded MuJoCo scenes, collision-free camera paths, exact RGB + depth renders.

    from sanawm.world import build_scene, caption_for, path_for, render_trajectory
    scene = build_scene(7)                                   # an indoor room or an outdoor yard
    traj = path_for(scene, seed=0, kind="walk", seconds=10, fps=16, size=256, fov_deg=60)
    rgb, depth = render_trajectory(scene, traj, depth=True)  # (F, H, W, 3) uint8, (F, H, W) z-depth, m
    caption = caption_for(scene)

| file         | job                                                                          |
| ------------ | ---------------------------------------------------------------------------- |
| scene.py     | seed → `SceneSpec` (rooms / yards, objects, materials, lights, sky)           |
| mjcf.py      | `SceneSpec` → MuJoCo XML                                                     |
| geometry.py  | scene ↔ world frames, distances from points to the scene's surfaces          |
| paths.py     | walk / orbit / fly / pan / revisit paths; placing a given path in a scene    |
| checks.py    | clearance, speed and turn-rate checks and limits                            |
| camera.py    | pixel intrinsics from a field of view, rescaling, preparing a trajectory     |
| render.py    | offscreen RGB, depth and geom ids through MuJoCo with exact cameras          |
| captions.py  | captions from the scene description                                          |
| clips.py     | one scene seed → one `sanawm.data` clip folder                               |
| sheet.py     | contact sheets                                                               |

Offscreen rendering uses EGL: importing this package sets MUJOCO_GL=egl when it is unset (before MuJoCo
is imported), which works on the GPU machine and, through Mesa's llvmpipe, on CPU-only machines.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from .camera import intrinsics_for_fov, prepare_trajectory  # noqa: E402
from .captions import caption_for  # noqa: E402
from .checks import ClearanceReport, PathLimits, check_clearance, check_limits  # noqa: E402
from .geometry import SCENE_TO_WORLD, clearance, scene_to_world, world_to_scene  # noqa: E402
from .paths import PATH_KINDS, CameraPath, path_for, place_trajectory, plan_path  # noqa: E402
from .render import WorldRenderer, render_trajectory  # noqa: E402
from .scene import SceneSpec, build_scene  # noqa: E402

__all__ = [
    "PATH_KINDS",
    "SCENE_TO_WORLD",
    "CameraPath",
    "ClearanceReport",
    "PathLimits",
    "SceneSpec",
    "WorldRenderer",
    "build_scene",
    "caption_for",
    "check_clearance",
    "check_limits",
    "clearance",
    "intrinsics_for_fov",
    "path_for",
    "place_trajectory",
    "plan_path",
    "prepare_trajectory",
    "render_trajectory",
    "scene_to_world",
    "world_to_scene",
]
