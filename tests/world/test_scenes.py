"""Scenes from seeds: deterministic MJCF and pixels, varied content, non-overlapping objects, captions."""

import itertools
import json

import numpy as np
import pytest

from sanawm.world.camera import intrinsics_for_fov
from sanawm.world.captions import caption_for
from sanawm.world.geometry import primitive_distance
from sanawm.world.paths import path_for
from sanawm.world.render import WorldRenderer, render_trajectory
from sanawm.world.scene import SHAPES, build_scene


def _frames(seed: int, size=(48, 64)) -> np.ndarray:
    scene = build_scene(seed)
    traj = path_for(scene, seed=0, kind="walk", seconds=0.5, fps=8, size=size)
    rgb, _ = render_trajectory(scene, traj)
    return rgb


def test_same_seed_same_mjcf_and_identical_pixels():
    assert build_scene(17) == build_scene(17)
    assert build_scene(17).to_mjcf() == build_scene(17).to_mjcf()
    a, b = _frames(17), _frames(17)
    assert a.tobytes() == b.tobytes()


def test_different_seeds_differ():
    xmls = {build_scene(s).to_mjcf() for s in range(20)}
    assert len(xmls) == 20
    assert _frames(17).tobytes() != _frames(18).tobytes()


def test_scenes_are_varied():
    scenes = [build_scene(s) for s in range(40)]
    assert {s.kind for s in scenes} == {"indoor", "outdoor"}
    shapes = {p.shape for s in scenes for _, p in s.primitives()}
    assert set(SHAPES) <= shapes
    assert len({o.colour for s in scenes for o in s.objects if o.role == "object"}) >= 10
    assert len({s.floor.pattern for s in scenes}) >= 3
    assert {s.sky for s in scenes if s.kind == "outdoor"} >= {"sunny", "overcast"}
    assert any(s.fence for s in scenes) and any(o.role == "tree" for s in scenes for o in s.objects)
    assert any(s.ceiling is None for s in scenes if s.kind == "indoor")
    assert all(any(light.castshadow for light in s.lights) for s in scenes)
    assert min(sum(o.role == "object" for o in s.objects) for s in scenes) >= 4


def test_kind_can_be_forced():
    assert build_scene(3, kind="indoor").kind == "indoor"
    assert build_scene(3, kind="outdoor").kind == "outdoor"
    drawn = build_scene(3)
    assert build_scene(3, kind=drawn.kind) == drawn
    with pytest.raises(ValueError, match="indoor, outdoor"):
        build_scene(3, kind="underwater")
    with pytest.raises(ValueError, match="seed"):
        build_scene(-1)


@pytest.mark.parametrize("seed", range(0, 60, 7))
def test_objects_do_not_overlap_and_rest_on_the_floor(seed):
    scene = build_scene(seed)
    objects = [o for o in scene.objects if o.role == "object"]
    for a, b in itertools.combinations(objects, 2):
        pa, pb = a.parts[0], b.parts[0]
        gap = np.hypot(pa.pos[0] - pb.pos[0], pa.pos[1] - pb.pos[1])
        ra = np.hypot(*pa.scene_half_extents()[:2])
        rb = np.hypot(*pb.scene_half_extents()[:2])
        assert gap >= ra + rb, (a.name, b.name)
    for obj in objects:
        part = obj.parts[0]
        assert abs(part.pos[2] - part.scene_half_extents()[2]) < 1e-3  # bottom on the floor
        assert primitive_distance(part, np.array([part.pos])) < 0  # its centre is inside it
        if scene.walls:
            x0, x1, y0, y1 = scene.bounds
            hx, hy, _ = part.scene_half_extents()
            assert (
                x0 < part.pos[0] - hx
                and part.pos[0] + hx < x1
                and y0 < part.pos[1] - hy
                and part.pos[1] + hy < y1
            )


def test_object_list_is_machine_readable():
    scene = build_scene(6)
    summary = json.loads(json.dumps(scene.summary()))
    assert summary["seed"] == 6 and summary["kind"] == scene.kind
    obj = summary["objects"][0]
    assert {"name", "label", "colour", "size_class", "role", "parts"} <= set(obj)
    assert {"shape", "size", "pos"} <= set(obj["parts"][0])
    json.dumps(scene.to_dict())


def test_captions_describe_the_scene_deterministically():
    captions = [caption_for(build_scene(s)) for s in range(30)]
    assert captions == [caption_for(build_scene(s)) for s in range(30)]
    assert len(set(captions)) == 30
    for seed, caption in enumerate(captions):
        scene = build_scene(seed)
        assert ("yard" in caption) == (scene.kind == "outdoor")
        assert ("room" in caption) == (scene.kind == "indoor")
        largest = [o for o in scene.objects if o.role == "object"]
        assert any(o.colour in caption and o.label in caption for o in largest)
        if scene.kind == "indoor":
            assert f"{scene.floor.colour} " in caption and "floor" in caption
    starts = {c.split(" with ")[0].split(" on ")[0] for c in captions}
    assert len(starts) > 5  # varied phrasing


def test_given_trajectory_renders_with_its_own_intrinsics():
    """The oracle: any trajectory (here non-square pixels and an off-centre principal point) renders."""
    scene = build_scene(30)
    base = path_for(scene, seed=0, kind="pan", seconds=0.5, fps=8, size=(40, 64))
    k = base.intrinsics.copy()
    k[:, 1] *= 1.1
    k[:, 2] += 3.0
    from dataclasses import replace

    given = replace(base, intrinsics=k)
    rgb, depth = render_trajectory(scene, given, depth=True)
    assert rgb.shape == (5, 40, 64, 3) and rgb.dtype == np.uint8
    assert depth.shape == (5, 40, 64) and depth.dtype == np.float32 and np.isfinite(depth).any()
    # Rendering at another size rescales the intrinsics; the same view at twice the resolution.
    big, _ = render_trajectory(scene, given, size=(80, 128))
    small = big.reshape(5, 40, 2, 64, 2, 3).mean(axis=(2, 4))
    assert np.abs(small - rgb.astype(float)).mean() < 12
    with pytest.raises(ValueError, match="no intrinsics"):
        render_trajectory(scene, replace(given, intrinsics=None))
    wide = replace(given, intrinsics=np.tile(intrinsics_for_fov((40, 64), 100) * [0.5, 0.5, 1, 1], (5, 1)))
    with pytest.raises(ValueError, match="outside"):
        render_trajectory(scene, wide)


def test_renderer_refuses_mismatched_intrinsics():
    scene = build_scene(2)
    traj = path_for(scene, seed=0, kind="walk", seconds=0.25, fps=8, size=(32, 32))
    with WorldRenderer(scene, (48, 48)) as renderer, pytest.raises(ValueError, match="prepare_trajectory"):
        renderer.render(traj)
