"""Rendered pixels and depth agree with the stored pose and intrinsics (pinhole, pixel-centre convention)."""

import numpy as np
import pytest

from sanawm.world.camera import intrinsics_for_fov
from sanawm.world.geometry import (
    c2w_scene_to_world,
    c2w_world_to_scene,
    clearance,
    scene_to_world,
    segment_clearance,
    world_to_scene,
)
from sanawm.world.render import WorldRenderer
from sanawm.world.scene import build_scene

H, W = 96, 128
RADIUS = 0.025


def look_at_world(eye, target, roll=0.0):
    """(4, 4) OpenCV camera-to-world pose in sanawm's y-down world, looking from eye at target."""
    f = target - eye
    f = f / np.linalg.norm(f)
    right = np.cross(f, [0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    c, s = np.cos(roll), np.sin(roll)
    right, down = c * right + s * down, c * down - s * right
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, f], axis=-1)
    pose[:3, 3] = eye
    return pose


def project(pose_world, k, point_world):
    """Pinhole projection with sanawm's convention: (u, v) pixel-centre coordinates and camera z."""
    x = np.linalg.inv(pose_world) @ np.append(point_world, 1.0)
    return k[0] * x[0] / x[2] + k[2], k[1] * x[1] / x[2] + k[3], x[2]


@pytest.fixture(scope="module")
def marker_scene():
    """An indoor scene with a magenta marker sphere at a free scene point, and cameras that see it."""
    base = build_scene(11, kind="indoor")
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = base.bounds
    while True:
        p = np.array(
            [rng.uniform(x0 + 1.5, x1 - 1.5), rng.uniform(y0 + 1.5, y1 - 1.5), rng.uniform(0.8, 1.6)]
        )
        if clearance(base, p[None])[0][0] > 1.0:
            break
    scene = base.with_marker(tuple(p), radius=RADIUS)
    poses, intrinsics = [], []
    while len(poses) < 12:
        direction = rng.normal(size=3)
        direction[2] *= 0.4
        eye = p + rng.uniform(0.5, 1.2) * direction / np.linalg.norm(direction)
        if clearance(base, eye[None])[0][0] < 0.1 or segment_clearance(base, eye, p) < 0.02:
            continue  # inside something, or the marker is hidden
        aim = p + rng.normal(scale=0.12, size=3)  # the marker lands off-centre
        pose = look_at_world(scene_to_world(eye), scene_to_world(aim), roll=rng.normal(scale=0.3))
        fx = rng.uniform(70.0, 140.0)
        k = np.array(
            [
                fx,
                fx * rng.uniform(0.9, 1.1),
                (W - 1) / 2 + rng.normal(scale=4),
                (H - 1) / 2 + rng.normal(scale=4),
            ]
        )
        u, v, _ = project(pose, k, scene_to_world(p))
        if 8 < u < W - 9 and 8 < v < H - 9:
            poses.append(pose)
            intrinsics.append(k)
    with WorldRenderer(scene, (H, W)) as renderer:
        yield scene, p, np.array(poses), np.array(intrinsics), renderer


def test_scene_world_frames_round_trip():
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(5, 3))
    assert np.allclose(world_to_scene(scene_to_world(pts)), pts)
    assert np.allclose(scene_to_world([0.0, 0.0, 1.6]), [0.0, -1.6, 0.0])  # eye height: world y = -1.6
    poses = np.stack([look_at_world(rng.normal(size=3), rng.normal(size=3) + 5) for _ in range(3)])
    assert np.allclose(c2w_scene_to_world(c2w_world_to_scene(poses)), poses)


def test_marker_lands_on_its_pinhole_projection(marker_scene):
    scene, p, poses, intrinsics, renderer = marker_scene
    marker = renderer.geom_id("marker_0")
    errors = []
    for pose, k in zip(poses, intrinsics, strict=True):
        ids = renderer.render_ids(c2w_world_to_scene(pose[None])[0], k)
        vs, us = np.nonzero(ids == marker)
        assert len(us) >= 5, "the marker should cover a few pixels"
        u, v, _ = project(pose, k, scene_to_world(p))
        errors.append((us.mean() - u, vs.mean() - v))
    errors = np.array(errors)
    dist = np.linalg.norm(errors, axis=-1)
    assert dist.max() <= 1.0, errors
    # A half-pixel convention error (cx = W/2 instead of (W-1)/2) would shift every frame by 0.5 px.
    assert np.abs(errors.mean(axis=0)).max() < 0.15, errors.mean(axis=0)


def test_rgb_marker_is_magenta_where_segmentation_says(marker_scene):
    scene, p, poses, intrinsics, renderer = marker_scene
    c2w = c2w_world_to_scene(poses[:1])[0]
    rgb, _ = renderer.render_frame(c2w, intrinsics[0])
    ids = renderer.render_ids(c2w, intrinsics[0])
    inner = ids == renderer.geom_id("marker_0")
    inner[1:-1, 1:-1] &= inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:]
    colour = rgb[inner].astype(int)
    assert (
        len(colour)
        and (colour[:, 0] > 200).all()
        and (colour[:, 2] > 200).all()
        and (colour[:, 1] < 90).all()
    )


def _ray_depths(pose, k, us, vs, hit):
    """z-depth of the rays through pixel centres (us, vs) to a surface given by hit(origin, dirs) -> t."""
    d_cam = np.stack([(us - k[2]) / k[0], (vs - k[3]) / k[1], np.ones_like(us, dtype=float)], axis=-1)
    d_world = d_cam @ pose[:3, :3].T
    return hit(pose[:3, 3], d_world)  # t along d with d_cam.z == 1, so t is the z-depth


def test_depth_is_z_depth_in_metres(marker_scene):
    scene, p, poses, intrinsics, renderer = marker_scene
    centre_w = scene_to_world(p)
    floor_checked = 0
    for pose, k in zip(poses, intrinsics, strict=True):
        c2w = c2w_world_to_scene(pose[None])[0]
        _, depth = renderer.render_frame(c2w, k, depth=True)
        ids = renderer.render_ids(c2w, k)

        # Marker: the pixel nearest its projected centre; ray-sphere intersection in the world frame.
        u, v, z_centre = project(pose, k, centre_w)
        ui, vi = int(round(u)), int(round(v))

        def sphere(o, d):
            oc = o - centre_w
            b, c, a = (d * oc).sum(-1), (oc * oc).sum() - RADIUS**2, (d * d).sum(-1)
            return (-b - np.sqrt(b * b - a * c)) / a

        expected = _ray_depths(pose, k, np.array([ui]), np.array([vi]), sphere)[0]
        assert abs(depth[vi, ui] - expected) < 2e-3, (depth[vi, ui], expected)
        assert abs(depth[vi, ui] - (z_centre - RADIUS)) < 0.01

        # Floor (world y = 0, y down): interior floor pixels anywhere in the image, off-centre included.
        floor = ids == renderer.geom_id("floor")
        floor[1:-1, 1:-1] &= floor[:-2, 1:-1] & floor[2:, 1:-1] & floor[1:-1, :-2] & floor[1:-1, 2:]
        floor[[0, -1], :] = False
        floor[:, [0, -1]] = False
        vs, us = np.nonzero(floor)
        if len(us) == 0:
            continue
        plane = _ray_depths(pose, k, us, vs, lambda o, d: -o[1] / d[:, 1])
        rel = np.abs(depth[vs, us] - plane) / plane
        assert np.median(rel) < 1e-3 and rel.max() < 1e-2, rel.max()
        floor_checked += len(us)
    assert floor_checked > 100


def test_fov_outside_limits_is_a_clear_error():
    with pytest.raises(ValueError, match=r"outside \[25°, 120°\]"):
        intrinsics_for_fov(256, 130)
    with pytest.raises(ValueError, match=r"outside \[25°, 120°\]"):
        intrinsics_for_fov(256, 20)
    k = intrinsics_for_fov((144, 256), 90)
    assert np.allclose(k, [128.0, 128.0, 127.5, 71.5])


def test_mujoco_native_camera_has_its_principal_point_at_pixel_centre_coordinates():
    """MuJoCo's own camera (fovy): fx = fy = H / (2 tan(fovy / 2)), (cx, cy) = ((W - 1) / 2, (H - 1) / 2)."""
    import mujoco

    xml = """<mujoco><visual><map znear="0.01"/></visual><worldbody>
      <camera name="c" pos="0 -2 1" xyaxes="1 0 0 0 0 1" fovy="50"/>
      <geom name="m" type="sphere" size="0.05" pos="0 0 1" rgba="1 0 1 1"/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    f = H / (2 * np.tan(np.radians(50) / 2))
    k = np.array([f, f, (W - 1) / 2, (H - 1) / 2])
    pose = np.eye(4)
    pose[:3, :3] = np.stack([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=-1)  # right, down, forward (scene)
    pose[:3, 3] = [0, -2, 1]
    rng = np.random.default_rng(2)
    with mujoco.Renderer(model, H, W) as renderer:
        renderer.enable_segmentation_rendering()
        for _ in range(6):
            point = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), 1 + rng.uniform(-0.3, 0.3)])
            model.geom_pos[0] = point
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera="c")
            vs, us = np.nonzero(renderer.render()[..., 0] == 0)
            u, v, _ = project(pose, k, point)
            assert abs(us.mean() - u) < 0.3 and abs(vs.mean() - v) < 0.3, (us.mean(), u, vs.mean(), v)
