"""Input validation of poses, intrinsics, frame counts and image sizes: errors that name the fix."""

import numpy as np
import pytest
import torch

from sanawm.cameras import (
    as_c2w,
    as_intrinsics_vec4,
    check_field_of_view,
    field_of_view_deg,
    latent_camera_inputs,
    raw_to_latent_frame_groups,
    relative_to_first,
)

K = np.array([[640.0, 0.0, 640.0], [0.0, 600.0, 352.0], [0.0, 0.0, 1.0]])
VEC4 = np.array([640.0, 600.0, 640.0, 352.0])


def rotation(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def trajectory(n: int = 17) -> np.ndarray:
    c2w = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        c2w[i, :3, :3], c2w[i, :3, 3] = rotation(0.05 * i), [0.1 * i, 0.0, 0.2 * i]
    return c2w


@pytest.mark.parametrize("intr", [VEC4, K, np.tile(VEC4, (3, 1)), np.tile(K, (3, 1, 1)), torch.tensor(K)])
def test_intrinsics_layouts(intr):
    out = as_intrinsics_vec4(intr, 3)
    assert out.dtype == np.float64 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, np.tile(VEC4, (3, 1)))


@pytest.mark.parametrize("shape", [(5,), (3, 3, 4), (2, 2), (3, 4, 4)])
def test_intrinsics_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"intrinsics has shape .*pass \(4,\) or \(F, 4\)"):
        as_intrinsics_vec4(np.ones(shape), 3)


def test_intrinsics_frame_count_mismatch():
    with pytest.raises(ValueError, match="intrinsics has 5 frames but the trajectory has 17 poses"):
        as_intrinsics_vec4(np.tile(VEC4, (5, 1)), 17)


@pytest.mark.parametrize(
    "bad, message",
    [
        ([0.0, 600.0, 640.0, 352.0], "non-positive focal length"),
        ([640.0, -1.0, 640.0, 352.0], "non-positive focal length"),
        ([640.0, 600.0, np.nan, 352.0], "not finite"),
        ([np.inf, 600.0, 640.0, 352.0], "not finite"),
    ],
)
def test_intrinsics_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        as_intrinsics_vec4(bad, 2)


def test_intrinsics_matrix_bottom_row():
    with pytest.raises(ValueError, match=r"expected \[0, 0, 1\]"):
        as_intrinsics_vec4(K * 2.0, 1)


def test_field_of_view():
    assert field_of_view_deg(640.0, 1280) == pytest.approx(90.0)
    np.testing.assert_allclose(check_field_of_view(np.tile(VEC4, (2, 1)), 704, 1280), [90.0, 90.0])
    with pytest.raises(ValueError, match=r"outside \[25°, 120°\].*fx must lie in \[370, 2887\] px"):
        check_field_of_view(np.array([[3500.0, 3500.0, 640.0, 352.0]]), 704, 1280)
    with pytest.raises(ValueError, match=r"horizontal field of view 1\d\d\.\d° \(frame 1"):
        check_field_of_view(np.array([VEC4, [200.0, 200.0, 640.0, 352.0]]), 704, 1280)
    with pytest.raises(ValueError, match="field of view"):
        latent_camera_inputs(trajectory(), [100.0, 100.0, 640.0, 352.0], image_size=(704, 1280))


def test_c2w_accepts_3x4_and_torch():
    c2w = trajectory(3)
    np.testing.assert_array_equal(as_c2w(c2w[:, :3]), c2w)
    out = as_c2w(torch.from_numpy(c2w).float())
    assert out.dtype == np.float64 and out.shape == (3, 4, 4)


@pytest.mark.parametrize("shape", [(4, 4), (3, 3, 3), (3, 4, 3), (0, 4, 4), (2, 2, 4, 4)])
def test_c2w_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"pass \(F, 4, 4\) or \(F, 3, 4\)"):
        as_c2w(np.zeros(shape))


def test_c2w_single_pose_hint():
    with pytest.raises(ValueError, match=r"poses\[None\]"):
        as_c2w(np.eye(4))


def test_c2w_not_orthonormal():
    c2w = trajectory(3)
    c2w[2, :3, :3] *= 1.01
    with pytest.raises(ValueError, match="pose 2: rotation is not orthonormal"):
        as_c2w(c2w)


def test_c2w_reflection():
    c2w = trajectory(3)
    c2w[1, :3, 0] *= -1.0
    with pytest.raises(ValueError, match="pose 1: rotation has determinant -1"):
        as_c2w(c2w)


def test_c2w_nan_and_bottom_row():
    c2w = trajectory(3)
    c2w[1, 0, 3] = np.nan
    with pytest.raises(ValueError, match="pose 1 is not finite"):
        as_c2w(c2w)
    c2w = trajectory(3)
    c2w[2, 3, 0] = 0.5
    with pytest.raises(ValueError, match=r"pose 2 has bottom row .* \[0, 0, 0, 1\]"):
        as_c2w(c2w)


def test_relative_to_first():
    c2w = trajectory(5)
    g = np.eye(4)
    g[:3, :3], g[:3, 3] = rotation(1.1), [3.0, -1.0, 2.0]
    rel = relative_to_first(g @ c2w)
    np.testing.assert_array_equal(rel[0], np.eye(4))
    np.testing.assert_allclose(rel, relative_to_first(c2w), atol=1e-12)
    np.testing.assert_allclose(rel, np.linalg.inv(c2w[0]) @ c2w, atol=1e-12)


@pytest.mark.parametrize("n, suggestion", [(20, "e.g. 17 or 25"), (0, "e.g. 1"), (2, "e.g. 1 or 9")])
def test_frame_count_not_8k_plus_1(n, suggestion):
    with pytest.raises(ValueError, match=f"got {n} frames; the VAE needs 8k\\+1 frames, {suggestion}"):
        raw_to_latent_frame_groups(n)


def test_latent_camera_inputs_errors():
    with pytest.raises(ValueError, match="17 or 25"):
        latent_camera_inputs(trajectory(20), VEC4, image_size=(704, 1280))
    with pytest.raises(ValueError, match="17 poses"):
        latent_camera_inputs(trajectory(17), np.tile(VEC4, (5, 1)), image_size=(704, 1280))
    with pytest.raises(ValueError, match=r"not a multiple of .* 32; resize or crop to e.g. \(704, 1280\)"):
        latent_camera_inputs(trajectory(17), VEC4, image_size=(700, 1280))
