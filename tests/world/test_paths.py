"""Camera paths: collision-free (geometry and rendered depth), within limits, smooth, reproducible."""

import numpy as np
import pytest

from sanawm.cameras import Trajectory
from sanawm.world.checks import PathLimits, check_clearance, check_limits, speeds, turn_rates
from sanawm.world.geometry import clearance, world_to_scene
from sanawm.world.paths import PATH_KINDS, num_frames, path_for, place_trajectory, plan_path
from sanawm.world.render import WorldRenderer
from sanawm.world.scene import build_scene

LIMITS = PathLimits()


def _dense_positions(traj: Trajectory, per_interval: int = 4) -> np.ndarray:
    """Scene points at and between frames (linear), to check the whole swept path."""
    p = traj.positions
    t = np.linspace(0.0, 1.0, per_interval, endpoint=False)[None, :, None]
    between = (p[:-1, None] + t * (p[1:, None] - p[:-1, None])).reshape(-1, 3)
    return world_to_scene(np.concatenate([between, p[-1:]]))


def test_hundred_random_paths_never_come_close_to_any_surface():
    rng = np.random.default_rng(0)
    checked = 0
    for i in range(100):
        scene = build_scene(int(rng.integers(0, 10_000)))
        kind = PATH_KINDS[i % len(PATH_KINDS)]
        traj = path_for(
            scene, seed=int(rng.integers(0, 1000)), kind=kind, seconds=float(rng.uniform(2, 6)), fps=16
        )
        d, names = clearance(scene, _dense_positions(traj))
        assert d.min() >= LIMITS.clearance * 0.98, (scene.seed, kind, d.min(), names[int(d.argmin())])
        assert not check_limits(traj, LIMITS), (scene.seed, kind, check_limits(traj, LIMITS))
        if scene.walls:  # inside the room
            x0, x1, y0, y1 = scene.bounds
            s = world_to_scene(traj.positions)
            assert (
                (s[:, 0] > x0).all()
                and (s[:, 0] < x1).all()
                and (s[:, 1] > y0).all()
                and (s[:, 1] < y1).all()
            )
        checked += 1
    assert checked == 100


@pytest.mark.parametrize("seed", [3, 8])
def test_rendered_depth_at_the_image_centre_keeps_the_clearance(seed):
    scene = build_scene(seed)
    for kind in ("walk", "fly", "orbit"):
        traj = path_for(scene, seed=1, kind=kind, seconds=3, fps=8, size=(32, 32), fov_deg=60)
        with WorldRenderer(scene, (32, 32)) as renderer:
            _, depth = renderer.render(traj, depth=True)
        centre = depth[:, 15:17, 15:17].min(axis=(1, 2))  # the four pixels around (15.5, 15.5)
        assert centre.min() >= LIMITS.clearance, (kind, centre.min())


def test_path_lengths_limits_and_smoothness():
    scene = build_scene(5)
    for kind in PATH_KINDS:
        traj = path_for(scene, seed=0, kind=kind, seconds=10, fps=16)
        assert len(traj) == num_frames(10, 16) == 161
        assert traj.fps == 16 and traj.image_size == (256, 256) and traj.intrinsics.shape == (161, 4)
        v, w = speeds(traj), turn_rates(traj)
        assert v.max() <= LIMITS.max_speed and w.max() <= LIMITS.max_turn_rate
        assert np.abs(np.diff(v)).max() * 16 < 3.0, kind  # no jumps in speed (m/s²)
        if kind != "pan":
            assert v.mean() > 0.2, kind  # it goes somewhere


def test_stricter_limits_are_respected():
    limits = PathLimits(max_speed=0.5, max_turn_rate=20.0, clearance=0.5)
    scene = build_scene(21)
    for kind in PATH_KINDS:
        traj = path_for(scene, seed=2, kind=kind, seconds=5, fps=16, limits=limits)
        assert not check_limits(traj, limits)
        assert check_clearance(scene, traj, 0.5).ok


def test_paths_are_reproducible_and_differ_by_seed():
    scene = build_scene(4)
    a = path_for(scene, seed=7, kind="walk", seconds=4, fps=16)
    b = path_for(scene, seed=7, kind="walk", seconds=4, fps=16)
    c = path_for(scene, seed=8, kind="walk", seconds=4, fps=16)
    assert np.array_equal(a.c2w, b.c2w)
    assert not np.allclose(a.c2w, c.c2w)


def test_revisit_returns_along_the_same_poses():
    scene = build_scene(9)
    for seconds in (4, 4.0625):  # odd and even frame counts
        traj = path_for(scene, seed=0, kind="revisit", seconds=seconds, fps=16)
        assert np.array_equal(traj.c2w, traj.c2w[::-1])
        assert np.linalg.norm(traj.positions[len(traj) // 2] - traj.positions[0]) > 0.5  # it went somewhere


def test_level_cameras_look_horizontally_in_the_y_down_world():
    traj = path_for(build_scene(2), seed=0, kind="walk", seconds=2, fps=16)
    down = traj.c2w[:, :3, 1]
    assert (down[:, 1] > 0.9).all()  # the camera's y (down) axis points along world +y (down)
    assert (traj.positions[:, 1] < -1.0).all()  # eye height above the floor (world y = -height)


def test_bad_requests_are_clear_errors():
    scene = build_scene(1)
    with pytest.raises(ValueError, match="unknown path kind"):
        path_for(scene, 0, "teleport", 2)
    with pytest.raises(ValueError, match="seconds"):
        path_for(scene, 0, "walk", 61)
    with pytest.raises(ValueError, match="field of view"):
        path_for(scene, 0, "walk", 2, fov_deg=150)
    with pytest.raises(RuntimeError, match="no collision-free"):
        plan_path(scene, 0, "walk", 2, limits=PathLimits(clearance=50.0), attempts=2)


def test_placing_a_given_trajectory_keeps_its_shape():
    from sanawm.cameras.actions import yaw_pitch_roll_rotation

    n = 33
    c2w = np.tile(np.eye(4), (n, 1, 1))  # straight ahead 2 m, turning 30° and looking down 5°
    c2w[:, :3, :3] = yaw_pitch_roll_rotation(np.radians(np.linspace(0, 30, n)), np.radians(-5.0))
    c2w[:, 2, 3] = np.linspace(0, 2, n)
    given = Trajectory(c2w, fps=16)
    scene = build_scene(12)
    placed, g = place_trajectory(scene, given, seed=0)
    rel = lambda t: np.linalg.inv(t.c2w[0]) @ t.c2w  # noqa: E731
    assert np.allclose(rel(placed), rel(given), atol=1e-9)
    assert np.isclose(placed.positions[0, 1], -1.6)
    assert np.allclose(placed.c2w[:, :3, 1] @ [0, 1, 0], given.c2w[:, :3, 1] @ [0, 1, 0])  # pitch kept
    assert np.allclose(g[:3, :3] @ [0, 1, 0], [0, 1, 0])  # only a yaw about the vertical
    assert check_clearance(scene, placed, 0.3).min_distance > 0.0
