"""Trajectory resampling: exact at original times, SLERP rotations, linear / spline translations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from sanawm.cameras import Trajectory
from sanawm.cameras.formats.kitti import read_kitti
from sanawm.cameras.resample import resample

KITTI_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "kitti07"


def make(rotations: Rotation, positions, times=None, fps=None, intrinsics=None) -> Trajectory:
    c2w = np.tile(np.eye(4), (len(positions), 1, 1))
    c2w[:, :3, :3] = rotations.as_matrix()
    c2w[:, :3, 3] = positions
    return Trajectory(c2w, intrinsics=intrinsics, image_size=(48, 64), fps=fps, timestamps=times)


def random_trajectory(seed: int, frames: int) -> Trajectory:
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.01, 1.0, frames)) + rng.uniform(-10, 10)
    k = rng.uniform(20, 100, (frames, 4))
    return make(
        Rotation.random(frames, random_state=rng), rng.normal(size=(frames, 3)), times=times, intrinsics=k
    )


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1), frames=st.integers(2, 8), factor=st.integers(1, 4), spline=st.booleans()
)
def test_exact_at_original_times_and_rigid(seed, frames, factor, spline):
    rng = np.random.default_rng(seed)
    fps = float(rng.choice([10.0, 16.0, 30.0]))
    base = make(Rotation.random(frames, random_state=rng), rng.normal(size=(frames, 3)), fps=fps)
    out = resample(base, fps=fps * factor, translation="spline" if spline else "linear")
    assert len(out) == (frames - 1) * factor + 1 and out.fps == fps * factor and out.timestamps is None
    np.testing.assert_array_equal(out.c2w[::factor], base.c2w)
    np.testing.assert_allclose(out.times[::factor], base.times, atol=1e-12)
    rot = out.c2w[:, :3, :3]
    np.testing.assert_allclose(
        np.swapaxes(rot, 1, 2) @ rot, np.broadcast_to(np.eye(3), rot.shape), atol=1e-12
    )
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(2, 6), spline=st.booleans())
def test_interpolation_meets_original_samples(seed, frames, spline):
    """Times a hair before the original ones (no exact hit): the interpolated poses meet the originals."""
    rng = np.random.default_rng(seed)
    base = make(Rotation.random(frames, random_state=rng), rng.normal(size=(frames, 3)), fps=1.0)
    out = resample(base, fps=1 / (1 - 1e-9), num_frames=frames, translation="spline" if spline else "linear")
    assert np.all(out.times[1:] < base.times[1:])
    np.testing.assert_allclose(out.c2w, base.c2w, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(
    axis=st.tuples(*[st.floats(-1, 1) for _ in range(3)]).filter(lambda a: np.linalg.norm(a) > 0.1),
    angle=st.floats(0.01, math.pi - 0.01),
    start=st.integers(0, 2**32 - 1),
)
def test_slerp_midpoint_is_half_angle(axis, angle, start):
    axis = np.array(axis) / np.linalg.norm(axis)
    r0 = Rotation.random(random_state=start)
    rotations = Rotation.concatenate([r0, Rotation.from_rotvec(angle * axis) * r0])
    out = resample(make(rotations, np.zeros((2, 3)), times=[2.0, 3.0]), num_frames=3)
    half = (Rotation.from_rotvec(0.5 * angle * axis) * r0).as_matrix()
    np.testing.assert_allclose(out.c2w[1, :3, :3], half, atol=1e-12)
    np.testing.assert_array_equal(out.timestamps, [2.0, 2.5, 3.0])
    assert out.fps == 2.0


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), frames=st.integers(2, 7), count=st.integers(2, 40))
def test_spline_and_linear_agree_on_constant_speed_line(seed, frames, count):
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.05, 1.0, frames))  # uneven spacing, constant speed
    origin, velocity = rng.normal(size=3), rng.normal(size=3)
    traj = make(Rotation.from_rotvec(np.zeros((frames, 3))), origin + times[:, None] * velocity, times=times)
    lin = resample(traj, num_frames=count, translation="linear")
    cub = resample(traj, num_frames=count, translation="spline")
    exact = origin + lin.timestamps[:, None] * velocity
    np.testing.assert_allclose(lin.positions, exact, atol=1e-9)
    np.testing.assert_allclose(cub.positions, exact, atol=1e-9)


def test_spline_is_smooth_where_linear_has_kinks():
    times = np.arange(5.0)
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [2, 1, 0], [2, 2, 0]], dtype=float)
    traj = make(Rotation.identity(5), pos, times=times)
    vel = {k: np.diff(resample(traj, fps=50, translation=k).positions, axis=0) for k in ("linear", "spline")}
    jump = {k: np.abs(np.diff(v, axis=0)).max() for k, v in vel.items()}
    assert jump["spline"] < 0.1 * jump["linear"]


def test_frame_counts_rates_and_intrinsics():
    traj = random_trajectory(3, 4)
    t0, t1 = traj.times[0], traj.times[-1]
    by_fps = resample(traj, fps=7.0)
    assert len(by_fps) == math.floor((t1 - t0) * 7.0 + 1e-9) + 1 and by_fps.fps == 7.0
    np.testing.assert_allclose(np.diff(by_fps.timestamps), 1 / 7.0, atol=1e-12)
    assert by_fps.timestamps[0] == t0 and by_fps.timestamps[-1] <= t1
    by_count = resample(traj, num_frames=11)
    assert len(by_count) == 11 and by_count.timestamps[0] == t0 and by_count.timestamps[-1] == t1
    assert by_count.fps == pytest.approx(10 / (t1 - t0))
    both = resample(traj, fps=2.0, num_frames=3)
    np.testing.assert_allclose(both.timestamps, t0 + np.array([0, 0.5, 1.0]))
    assert both.image_size == traj.image_size
    # intrinsics interpolate linearly
    mid = resample(
        make(Rotation.identity(2), np.zeros((2, 3)), times=[0, 1], intrinsics=[[10] * 4, [20] * 4]), fps=2
    )
    np.testing.assert_array_equal(mid.intrinsics, [[10] * 4, [15] * 4, [20] * 4])


def test_errors_name_the_fix():
    one = make(Rotation.identity(1), np.zeros((1, 3)), fps=10)
    with pytest.raises(ValueError, match="at least 2"):
        resample(one, fps=20)
    two = make(Rotation.identity(2), np.zeros((2, 3)), fps=10)  # 0.1 s long
    with pytest.raises(ValueError, match="no extrapolation.*at most 3 frames"):
        resample(two, fps=20, num_frames=4)
    with pytest.raises(ValueError, match="pass fps=, num_frames="):
        resample(two)
    with pytest.raises(ValueError, match="choose one of"):
        resample(two, fps=20, translation="cubic")
    with pytest.raises(ValueError, match="positive"):
        resample(two, fps=-1)


@pytest.mark.skipif(not (KITTI_DIR / "poses.txt").is_file(), reason=f"KITTI test files absent ({KITTI_DIR})")
def test_real_kitti_to_16_fps():
    traj = read_kitti(KITTI_DIR)  # ~9.6 fps, uneven timestamps
    out = resample(traj, fps=16.0, translation="spline")
    assert out.fps == 16.0 and out.timestamps[-1] <= traj.timestamps[-1]
    assert len(out) == math.floor(traj.timestamps[-1] * 16.0) + 1
    np.testing.assert_array_equal(out.c2w[0], traj.c2w[0])
    step = np.linalg.norm(np.diff(out.positions, axis=0), axis=1)
    orig = np.linalg.norm(np.diff(traj.positions, axis=0), axis=1) / np.diff(traj.timestamps)
    assert step.max() <= orig.max() / 16.0 * 1.05  # no overshoot beyond the driving speed
    np.testing.assert_array_equal(out.intrinsics, np.repeat(traj.intrinsics[:1], len(out), axis=0))
