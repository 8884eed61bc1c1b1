"""Procedural clips on disk: scene seed → scene, path, render, caption → a `sanawm.data` clip folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.clip import write_clip
from .captions import caption_for
from .checks import PathLimits
from .paths import PATH_KINDS, plan_path
from .render import WorldRenderer
from .scene import build_scene

SOURCE = "sanawm procedural world"
LICENCE = "CC0-1.0"
WORLD_FRAME = "world: metres, y down (ground = x-z plane); scene (MuJoCo) = z up, world = (x, -z, y) of scene"
DEPTH_NOTE = "z-depth: metres along the camera's optical axis (camera-frame z), inf where only sky is seen"


def clip_name(scene_seed: int) -> str:
    return f"world_{scene_seed:06d}"


def choose_kind(scene_seed: int, kinds) -> str:
    """The path kind of a scene's clip: drawn from `kinds` with the scene seed."""
    kinds = list(kinds)
    return kinds[int(np.random.default_rng([scene_seed, 2]).integers(len(kinds)))]


def render_world_clip(
    folder,
    scene_seed: int,
    *,
    seconds: float = 10.0,
    fps: float = 16.0,
    size=(256, 256),
    fov_deg: float = 60.0,
    kinds=PATH_KINDS,
    depth: bool = False,
    depth_dtype: str = "float32",
    limits: PathLimits | None = None,
    path_seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Render the clip of `scene_seed` into `folder` and return a summary (kind, frames, timings).

    The path kind is drawn from `kinds` with the seed; if no collision-free path of that kind exists,
    the other kinds are tried in the order given (the clip's metadata records the kind used). Depth is
    stored as `depth_dtype` ("float32", or "float16": half the disk, ~5e-4 relative precision).
    """
    if depth_dtype not in ("float32", "float16"):
        raise ValueError(f"depth_dtype must be 'float32' or 'float16', got {depth_dtype!r}")
    t0 = time.perf_counter()
    scene = build_scene(scene_seed)
    first = choose_kind(scene_seed, kinds)
    errors = []
    for kind in [first] + [k for k in kinds if k != first]:
        try:
            path = plan_path(scene, path_seed, kind, seconds, fps, size=size, fov_deg=fov_deg, limits=limits)
            break
        except RuntimeError as err:
            errors.append(str(err))
    else:
        raise RuntimeError(f"scene {scene_seed}: no path of any kind in {list(kinds)}: {errors[-1]}")
    t1 = time.perf_counter()
    with WorldRenderer(scene, path.trajectory.image_size) as renderer:
        rgb, z = renderer.render(path.trajectory, depth=depth)
    t2 = time.perf_counter()
    extra = {
        "generator": "sanawm.world",
        "scene_kind": scene.kind,
        "path": {**path.to_json(), "requested_kind": first},
        "fov_deg": float(fov_deg),
        "frames": WORLD_FRAME,
        "scene": scene.summary(),
    }
    if depth:
        extra["depth"] = DEPTH_NOTE
    write_clip(
        Path(folder), rgb, path.trajectory, caption=caption_for(scene), source=SOURCE, licence=LICENCE,
        scene_seed=scene_seed, depth=None if z is None else z.astype(depth_dtype), extra=extra,
        overwrite=overwrite,
    )  # fmt: skip
    t3 = time.perf_counter()
    return {
        "scene_seed": scene_seed,
        "kind": path.kind,
        "frames": len(rgb),
        "plan_s": t1 - t0,
        "render_s": t2 - t1,
        "write_s": t3 - t2,
    }
