"""Camera conditioning: parity with diffusers' SANA-WM `prepare_camera` and geometric properties."""

from pathlib import Path

import numpy as np
import pytest
import torch

from sanawm.cameras import (
    LatentCameraInputs,
    latent_camera_inputs,
    plucker_rays,
    raw_to_latent_frame_groups,
)

cam_utils = pytest.importorskip("diffusers.pipelines.sana_wm.cam_utils")

KITTI_POSES = Path(__file__).parents[2] / ".." / "shared" / "data" / "real" / "kitti07" / "poses.txt"
SIZE = (704, 1280)
VEC4 = np.array([640.0, 640.0, 640.0, 352.0])


@pytest.fixture(scope="module")
def action_c2w() -> np.ndarray:
    c2w = cam_utils.action_string_to_c2w("w-8,dl-8,ik-8,s-8")
    assert c2w.shape == (33, 4, 4)  # N + 1 poses, already 8k + 1
    return c2w


def reference(c2w: np.ndarray, vec4: np.ndarray, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    per_frame = np.broadcast_to(vec4, (len(c2w), 4)).astype(np.float32)
    poses = c2w.astype(np.float32)
    return cam_utils.prepare_camera(poses, per_frame, target_size=size, vae_stride=(8, 32, 32))


def assert_parity(ours: LatentCameraInputs, ref: dict[str, torch.Tensor]) -> None:
    assert ours.camera.dtype == ours.plucker.dtype == torch.float32
    assert ours.camera.shape == ref["raymap"].shape
    assert ours.plucker.shape == ref["chunk_plucker"].shape
    assert (ours.camera - ref["raymap"]).abs().max() <= 1e-5
    assert (ours.plucker - ref["chunk_plucker"]).abs().max() <= 1e-5


def test_parity_action_trajectory_shared_intrinsics(action_c2w):
    ours = latent_camera_inputs(action_c2w, VEC4, image_size=SIZE)
    assert ours.camera.shape == (5, 20) and ours.plucker.shape == (48, 5, 22, 40)
    assert_parity(ours, reference(action_c2w, VEC4, SIZE))


def test_parity_action_trajectory_per_frame_intrinsics(action_c2w):
    i = np.arange(len(action_c2w))[:, None]
    vec4 = VEC4 + np.array([30.0, 25.0, 12.0, -9.0]) * np.sin(0.37 * i + np.array([0.0, 1.0, 2.0, 3.0]))
    assert_parity(latent_camera_inputs(action_c2w, vec4, image_size=SIZE), reference(action_c2w, vec4, SIZE))


def test_intrinsics_layouts_agree(action_c2w):
    k = torch.tensor([[640.0, 0.0, 640.0], [0.0, 640.0, 352.0], [0.0, 0.0, 1.0]])
    base = latent_camera_inputs(action_c2w, VEC4, image_size=SIZE)
    for intr in (k, k.expand(33, 3, 3), np.tile(VEC4, (33, 1))):
        other = latent_camera_inputs(torch.from_numpy(action_c2w), intr, image_size=SIZE)
        assert torch.equal(base.camera, other.camera) and torch.equal(base.plucker, other.plucker)


def test_parity_real_kitti_trajectory():
    if not KITTI_POSES.is_file():
        pytest.skip(f"real KITTI poses not found at {KITTI_POSES.resolve()}")
    c2w_34 = np.loadtxt(KITTI_POSES)[:33].reshape(33, 3, 4)
    c2w = np.concatenate([c2w_34, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (33, 1, 1))], axis=1)
    vec4 = np.array([707.0912, 707.0912, 601.8873, 183.1104])
    ours = latent_camera_inputs(c2w_34, vec4, image_size=(384, 1248))
    assert_parity(ours, reference(c2w, vec4, (384, 1248)))


def test_groups_for_17_frames():
    assert raw_to_latent_frame_groups(17) == [list(range(0, 8)), list(range(1, 9)), list(range(9, 17))]
    assert raw_to_latent_frame_groups(1) == [list(range(8))]


def test_plucker_properties(action_c2w):
    ours = latent_camera_inputs(action_c2w, VEC4, image_size=SIZE, dtype=torch.float64)
    rays = ours.plucker.reshape(8, 6, *ours.plucker.shape[1:])
    d, m = rays[:, :3], rays[:, 3:]
    torch.testing.assert_close(d.norm(dim=1), torch.ones_like(d[:, 0]), atol=1e-12, rtol=0)
    assert (d * m).sum(dim=1).abs().max() < 1e-12


def test_first_camera_is_identity(action_c2w):
    camera = latent_camera_inputs(action_c2w @ _some_rigid_transform(), VEC4, image_size=SIZE).camera
    assert torch.equal(camera[0, :16], torch.eye(4).flatten())
    torch.testing.assert_close(camera[0, 16:], torch.tensor([20.0, 20.0, 20.0, 11.0]))


def test_plucker_rays_pixel_convention():
    c2w = torch.from_numpy(_some_rigid_transform())[None]
    rays = plucker_rays(c2w, torch.tensor([[10.0, 12.0, 3.0, 2.0]], dtype=torch.float64), 5, 7)
    assert rays.shape == (1, 5, 7, 6)
    # integer pixel (row 2, column 3) sits on the principal point: its ray is the camera's z axis
    torch.testing.assert_close(rays[0, 2, 3, :3], c2w[0, :3, 2])
    centre = c2w[0, :3, 3].expand(5, 7, 3)
    torch.testing.assert_close(rays[0, ..., 3:], torch.cross(centre, rays[0, ..., :3], dim=-1))


def test_to_and_batched(action_c2w):
    small = VEC4 * 96 / 1280
    ours = latent_camera_inputs(action_c2w[:17], small, image_size=(64, 96)).to("cpu", torch.bfloat16)
    camera, plucker = ours.batched()
    assert camera.shape == (1, 3, 20) and plucker.shape == (1, 48, 3, 2, 3)
    assert camera.dtype == plucker.dtype == torch.bfloat16


def _some_rigid_transform() -> np.ndarray:
    a, b = 0.3, -0.7
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    g = np.eye(4)
    g[:3, :3], g[:3, 3] = rz @ rx, [1.5, -2.0, 0.25]
    return g


def _random_cameras(n=5, seed=0):
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    c2w[:, :3, 3] = rng.normal(size=(n, 3))
    k = np.stack(
        [rng.uniform(40, 80, n), rng.uniform(40, 80, n), rng.uniform(20, 40, n), rng.uniform(10, 20, n)], 1
    )
    return torch.from_numpy(c2w), torch.from_numpy(k)


def test_rays_of_pixel_centres_reproject_to_the_same_pixels():
    c2w, k = _random_cameras()
    H, W = 24, 48
    rays = plucker_rays(c2w, k, H, W)
    d, o = rays[..., :3], c2w[:, None, None, :3, 3]
    points = o + 2.5 * d  # a point along each ray
    cam = torch.einsum("fji,fhwj->fhwi", c2w[:, :3, :3], points - o)  # world -> camera (R^T (p - o))
    u = k[:, 0, None, None] * cam[..., 0] / cam[..., 2] + k[:, 2, None, None]
    v = k[:, 1, None, None] * cam[..., 1] / cam[..., 2] + k[:, 3, None, None]
    vv, uu = torch.meshgrid(torch.arange(H, dtype=u.dtype), torch.arange(W, dtype=u.dtype), indexing="ij")
    assert torch.allclose(u, uu.expand_as(u), atol=1e-9) and torch.allclose(v, vv.expand_as(v), atol=1e-9)


def test_pure_translation_keeps_directions_and_shifts_moments():
    c2w, k = _random_cameras()
    moved = c2w.clone()
    shift = torch.tensor([0.3, -1.2, 2.0], dtype=c2w.dtype)
    moved[:, :3, 3] += shift
    a, b = plucker_rays(c2w, k, 8, 12), plucker_rays(moved, k, 8, 12)
    assert torch.allclose(a[..., :3], b[..., :3], atol=1e-12)
    expected = a[..., 3:] + torch.cross(shift.expand_as(a[..., :3]), a[..., :3], dim=-1)
    assert torch.allclose(b[..., 3:], expected, atol=1e-12)


def test_plucker_channel_packing_order():
    """Channel 6*f + c of latent frame k holds component c of raw frame groups[k][f]."""
    c2w = np.tile(np.eye(4), (17, 1, 1))
    c2w[:, 0, 3] = np.arange(17) * 0.1  # each raw frame distinguishable by its moment
    cam = latent_camera_inputs(c2w, [40.0, 40.0, 31.0, 15.0], image_size=(64, 96))
    rel = torch.from_numpy(c2w)
    k_lat = torch.tensor([[40.0, 40.0, 31.0, 15.0]] * 17, dtype=torch.float64) / 32
    rays = plucker_rays(rel, k_lat, 2, 3)  # (17, 2, 3, 6)
    for k_idx, group in enumerate(raw_to_latent_frame_groups(17)):
        for f, raw in enumerate(group):
            for c in range(6):
                got = cam.plucker[6 * f + c, k_idx].double()
                assert torch.allclose(got, rays[raw, ..., c], atol=1e-6), (k_idx, f, c)
