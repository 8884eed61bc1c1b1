"""Named camera paths: rigid poses, lengths, determinism, revisits, look-at and limits."""

import numpy as np
import pytest

from sanawm.cameras.presets import (
    PRESETS,
    dolly,
    figure_eight,
    make_preset,
    orbit,
    out_and_back,
    pan,
    preset_parameters,
    random_smooth,
)
from sanawm.cameras.trajectory import Trajectory


def rotation_angles_deg(c2w: np.ndarray) -> np.ndarray:
    """(F − 1,) angle of the rotation between consecutive frames."""
    r = c2w[:, :3, :3]
    rel = np.swapaxes(r[:-1], 1, 2) @ r[1:]
    return np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))


def test_registry_names():
    assert set(PRESETS) == {"orbit", "dolly", "pan", "figure_eight", "out_and_back", "random_smooth"}


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("num_frames", [3, 17, 161])
def test_rigid_poses_and_lengths(name, num_frames):
    traj = make_preset(name, num_frames, fps=24)
    assert isinstance(traj, Trajectory) and len(traj) == num_frames and traj.fps == 24
    r = traj.c2w[:, :3, :3]
    assert np.abs(np.swapaxes(r, 1, 2) @ r - np.eye(3)).max() < 1e-12
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    np.testing.assert_array_equal(traj.c2w[:, 3], np.broadcast_to([0, 0, 0, 1.0], (num_frames, 4)))


@pytest.mark.parametrize("name", ["dolly", "pan", "out_and_back", "random_smooth"])
def test_starts_at_identity(name):
    np.testing.assert_allclose(make_preset(name, 40).c2w[0], np.eye(4), atol=1e-15)


@pytest.mark.parametrize(
    "target, radius, height", [(None, 2.0, 0.0), ((1.0, -0.5, 4.0), 3.0, 1.2), ((0.0, 0.0, 0.0), 1.0, -0.4)]
)
def test_orbit_keeps_target_on_optical_axis(target, radius, height):
    traj = orbit(97, radius=radius, height=height, degrees=300.0, target=target)
    tgt = np.array(target if target is not None else (0.0, 0.0, radius))
    r, t = traj.c2w[:, :3, :3], traj.positions
    in_camera = np.einsum("fji,fj->fi", r, tgt - t)  # Rᵀ (target − centre)
    np.testing.assert_allclose(in_camera[:, :2], 0.0, atol=1e-12)  # projects to the principal point
    np.testing.assert_allclose(in_camera[:, 2], np.hypot(radius, height), rtol=1e-12)  # in front, at range
    np.testing.assert_allclose(np.hypot(t[:, 0] - tgt[0], t[:, 2] - tgt[2]), radius, rtol=1e-12)
    np.testing.assert_allclose(tgt[1] - t[:, 1], height, atol=1e-12)  # "up" is −y
    np.testing.assert_allclose(traj.c2w[:, 1, 0], 0.0, atol=1e-12)  # no roll: camera x stays level


def test_full_orbit_ends_where_it_started_and_turns_right():
    traj = orbit(65)
    np.testing.assert_allclose(traj.c2w[-1], traj.c2w[0], atol=1e-12)
    assert traj.positions[1, 0] > 0  # positive degrees: the camera sets off to its right


def test_dolly_and_pan():
    d = dolly(33, distance=-3.0, ease=True)
    np.testing.assert_allclose(d.positions[-1], [0.0, 0.0, -3.0], atol=1e-12)
    np.testing.assert_allclose(d.c2w[:, :3, :3], np.broadcast_to(np.eye(3), (33, 3, 3)))
    p = pan(31, degrees=90.0)
    np.testing.assert_allclose(p.c2w[-1, :3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # turned right to face +x
    np.testing.assert_allclose(p.positions, 0.0, atol=0)


def test_figure_eight_constant_speed_looking_ahead_and_closed():
    traj = figure_eight(401, fps=16, length=6.0, width=3.0)
    steps = np.diff(traj.positions, axis=0)
    speed = np.linalg.norm(steps, axis=1)
    np.testing.assert_allclose(speed, speed.mean(), rtol=1e-3)
    heading = traj.c2w[:-1, :3, 2]
    cos = np.einsum("fi,fi->f", heading, steps / speed[:, None])
    assert cos.min() > 0.99  # looks along the direction of travel
    np.testing.assert_allclose(traj.positions[-1], traj.positions[0], atol=1e-9)
    np.testing.assert_allclose(np.ptp(traj.positions[:, 2]), 6.0, rtol=1e-3)
    np.testing.assert_allclose(traj.positions[:, 1], 0.0, atol=0)


@pytest.mark.parametrize("num_frames", [3, 4, 81, 160])
def test_out_and_back_revisits_exactly(num_frames):
    traj = out_and_back(num_frames, distance=2.5, degrees=45.0)
    np.testing.assert_array_equal(traj.c2w, traj.c2w[::-1])  # pose[F − 1 − i] == pose[i]
    np.testing.assert_array_equal(traj.c2w[-1], traj.c2w[0])


def test_out_and_back_walks_the_arc():
    traj = out_and_back(81, distance=2.0, degrees=0.0)
    np.testing.assert_allclose(traj.positions[40], [0.0, 0.0, 2.0], atol=1e-12)
    arc = out_and_back(81, distance=2.0, degrees=90.0, ease=False)
    path = np.linalg.norm(np.diff(arc.positions[:41], axis=0), axis=1).sum()
    assert path == pytest.approx(2.0, rel=1e-3)
    np.testing.assert_allclose(arc.c2w[40, :3, 2], [1.0, 0.0, 0.0], atol=1e-12)


def test_random_smooth_is_deterministic_per_seed():
    a, b = random_smooth(200, seed=7), random_smooth(200, seed=7)
    np.testing.assert_array_equal(a.c2w, b.c2w)
    assert not np.allclose(a.c2w, random_smooth(200, seed=8).c2w)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "limits",
    [
        {},
        {"max_speed": 1.5, "max_turn_rate_deg": 90.0, "max_pitch_deg": 30.0, "max_roll_deg": 10.0},
        {"max_speed": 0.2, "max_turn_rate_deg": 10.0, "max_pitch_deg": 5.0, "smoothness_s": 0.3},
    ],
)
def test_random_smooth_respects_limits(seed, limits):
    fps = 16.0
    traj = random_smooth(320, fps=fps, seed=seed, **limits)
    full = {**preset_parameters("random_smooth"), **limits}
    speed = np.linalg.norm(np.diff(traj.positions, axis=0), axis=1) * fps
    assert speed.max() <= full["max_speed"] * (1 + 1e-9)
    assert speed.max() > 0.3 * full["max_speed"]  # and it does move
    assert rotation_angles_deg(traj.c2w).max() * fps <= full["max_turn_rate_deg"] * (1 + 1e-6)
    r = traj.c2w[:, :3, :3]
    pitch = np.degrees(np.arcsin(-r[:, 1, 2]))
    roll = np.degrees(np.arctan2(r[:, 1, 0], r[:, 1, 1]))
    assert np.abs(pitch).max() <= full["max_pitch_deg"] + 1e-9
    assert np.abs(roll).max() <= full["max_roll_deg"] + 1e-9


def test_random_smooth_is_smooth():
    traj = random_smooth(400, seed=1)
    accel = np.diff(traj.positions, n=2, axis=0) * 16.0**2
    assert np.abs(accel).max() < 2.0  # m/s², no jumps


def test_make_preset_errors_name_the_fix():
    with pytest.raises(ValueError, match="choose one of orbit, dolly"):
        make_preset("circle", 10)
    with pytest.raises(ValueError, match=r"no parameter radus; its parameters are: radius=2\.0"):
        make_preset("orbit", 10, radus=3)
    with pytest.raises(ValueError, match="radius must be a positive number"):
        make_preset("orbit", 10, radius=-1)
    with pytest.raises(ValueError, match="num_frames must be a whole number >= 2"):
        make_preset("dolly", 1)
    with pytest.raises(ValueError, match="ease must be True or False"):
        make_preset("pan", 10, ease="yes")
    with pytest.raises(ValueError, match="target must be three numbers"):
        make_preset("orbit", 10, target=(1.0, 2.0))


def test_make_preset_passes_params():
    np.testing.assert_array_equal(
        make_preset("orbit", 20, fps=8, radius=3.0).c2w, orbit(20, 8, radius=3.0).c2w
    )
