"""ClipDataset: deterministic windows, the right frames and cameras, intrinsics that follow the pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from torch.utils.data import DataLoader

from sanawm.cameras import Trajectory
from sanawm.data import ClipDataset, read_clip, write_clip, write_manifest
from tests.data import FPS, H, W, moving_trajectory


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Three lossless clips of 12, 20 and 30 frames of 64x96."""
    root = tmp_path_factory.mktemp("dataset")
    for i, n in enumerate((12, 20, 30)):
        frames = np.random.default_rng(i).integers(0, 256, (n, H, W, 3), dtype=np.uint8)
        write_clip(root / f"clip{i}", frames, moving_trajectory(n), caption=f"clip {i}", lossless=True)
    write_manifest(root)
    return root


def _project(points_cam: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points, (4,) intrinsics -> (N, 2) pixel (u, v)."""
    fx, fy, cx, cy = k
    return np.stack(
        [fx * points_cam[:, 0] / points_cam[:, 2] + cx, fy * points_cam[:, 1] / points_cam[:, 2] + cy], -1
    )


def test_native_size_items_are_the_stored_frames_and_cameras(root):
    ds = ClipDataset(root, num_frames=5, frame_stride=3)
    assert len(ds) == 2  # span 13: the 12-frame clip is too short
    for i in range(len(ds)):
        item = ds[i]
        clip = read_clip(root / item["clip"])
        idx = item["frame_indices"].numpy()
        assert item["frame_indices"].dtype == torch.int64
        assert np.all(np.diff(idx) == 3) and idx[0] >= 0 and idx[-1] < len(clip)
        expected = torch.from_numpy(clip.frames(idx)).permute(0, 3, 1, 2).float() / 127.5 - 1
        assert item["video"].dtype == torch.float32 and item["video"].shape == (5, 3, H, W)
        torch.testing.assert_close(item["video"], expected, rtol=0, atol=1e-6)
        assert item["c2w"].dtype == torch.float32 and item["intrinsics"].dtype == torch.float32
        torch.testing.assert_close(item["c2w"], torch.from_numpy(clip.trajectory.c2w[idx]).float())
        torch.testing.assert_close(
            item["intrinsics"], torch.from_numpy(clip.trajectory.intrinsics[idx]).float()
        )
        assert item["caption"] == clip.meta.caption


def test_windows_are_deterministic_per_seed(root):
    a, b = ClipDataset(root, 4, seed=5), ClipDataset(root, 4, seed=5)
    for i in range(len(a)):
        ia, ib = a[i], b[i]
        assert torch.equal(ia["frame_indices"], ib["frame_indices"]) and torch.equal(ia["video"], ib["video"])
    starts = {int(ClipDataset(root, 4, seed=s)[2]["frame_indices"][0]) for s in range(8)}
    assert len(starts) > 1, "different seeds should give different windows"
    assert ClipDataset(root, 4, seed=5)[2]["clip"] == "clip2" and ClipDataset(root, 4)[-1]["clip"] == "clip2"


@pytest.mark.parametrize("size", [(32, 32), (48, 96), (128, 128), (40, 60)])
@pytest.mark.parametrize("random_crop", [False, True])
def test_resize_crop_moves_intrinsics_with_the_pixels(root, size, random_crop):
    ds = ClipDataset(root, num_frames=3, size=size, random_crop=random_crop, seed=1)
    th, tw = size
    # The resize written out independently: cover-scale, round, crop.
    scale = max(th / H, tw / W)
    rh, rw = max(th, round(H * scale)), max(tw, round(W * scale))
    sx, sy = rw / W, rh / H
    points = np.random.default_rng(0).uniform([-3, -2, 2], [3, 2, 9], (50, 3))
    for i in range(len(ds)):
        item = ds[i]
        video = item["video"]
        assert video.shape == (3, 3, th, tw) and video.dtype == torch.float32
        assert video.min() >= -1.0 and video.max() <= 1.0
        clip = read_clip(root / item["clip"])
        k_old = clip.trajectory.intrinsics[item["frame_indices"].numpy()]
        k_new = item["intrinsics"].double().numpy()
        left, top = k_old[0, 2] * sx - k_new[0, 2], k_old[0, 3] * sy - k_new[0, 3]
        assert np.isclose(left, round(left), atol=1e-4) and np.isclose(top, round(top), atol=1e-4)
        left, top = round(left), round(top)
        if not random_crop:
            assert (top, left) == ((rh - th) // 2, (rw - tw) // 2)
        assert 0 <= top <= rh - th and 0 <= left <= rw - tw
        for f in range(3):
            uv = _project(points, k_old[f])
            uv_moved = np.stack([uv[:, 0] * sx - left, uv[:, 1] * sy - top], -1)
            k_f32 = k_new[f]
            uv_new = _project(points, k_f32)
            assert np.abs(uv_new - uv_moved).max() <= 1e-6 * max(1.0, np.abs(uv_moved).max())
        # The pixels went through the same resize and crop.
        src = torch.from_numpy(clip.frames(item["frame_indices"].numpy())).permute(0, 3, 1, 2).float()
        resized = tF.interpolate(src, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        expected = (resized[:, :, top : top + th, left : left + tw] / 127.5 - 1).clamp(-1, 1)
        torch.testing.assert_close(video, expected, rtol=0, atol=1e-5)


def test_a_projected_dot_lands_where_the_new_intrinsics_say(tmp_path):
    """End to end on pixels: a dot drawn where a 3D point projects ends up at its projection under the
    updated intrinsics, plus the release convention's half-pixel gap 0.5·(s − 1) (see image_ops)."""
    h, w, n = 60, 120, 3
    k = np.array([90.0, 90.0, 61.3, 27.8])
    point = np.array([0.5, -0.2, 3.0])
    u, v = _project(point[None], k)[0]
    yy, xx = np.mgrid[0:h, 0:w]
    dot = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 3.0**2))
    frames = np.repeat((255 * dot).round().astype(np.uint8)[None, :, :, None], 3, -1).repeat(n, 0)
    traj = Trajectory(np.tile(np.eye(4), (n, 1, 1)), k, (h, w), FPS)
    write_clip(tmp_path / "dot", frames, traj, lossless=True)
    write_manifest(tmp_path)
    for size in ((30, 30), (90, 90), (40, 120)):
        item = ClipDataset(tmp_path, n, size=size)[0]
        img = (item["video"][0, 0].double().numpy() + 1) / 2
        vy, vx = np.mgrid[0 : size[0], 0 : size[1]]
        centroid = np.array([(img * vx).sum(), (img * vy).sum()]) / img.sum()
        k_new = item["intrinsics"][0].double().numpy()
        s = k_new[:2] / k[:2]  # (sx, sy)
        expected = _project(point[None], k_new)[0] + 0.5 * (s - 1)
        np.testing.assert_allclose(centroid, expected, atol=0.05)


def test_batches_collate(root):
    batch = next(iter(DataLoader(ClipDataset(root, 4, size=(32, 48)), batch_size=2)))
    assert batch["video"].shape == (2, 4, 3, 32, 48) and batch["c2w"].shape == (2, 4, 4, 4)
    assert batch["intrinsics"].shape == (2, 4, 4) and batch["frame_indices"].shape == (2, 4)
    assert batch["clip"] == ["clip0", "clip1"]


def test_clip_filters_and_clear_errors(root, tmp_path):
    assert [e.path for e in ClipDataset(root, 4, min_clip_frames=20).entries] == ["clip1", "clip2"]
    assert len(ClipDataset(root, 30)) == 1
    with pytest.raises(
        ValueError, match=r"no clip has ≥ 81 frames \(81 frames at stride 1\); the longest .* has 30"
    ):
        ClipDataset(root, 81)
    with pytest.raises(ValueError, match=r"no clip has ≥ 31 frames \(16 frames at stride 2\)"):
        ClipDataset(root, 16, frame_stride=2)
    with pytest.raises(ValueError, match="min_clip_frames = 50"):
        ClipDataset(root, 4, min_clip_frames=50)
    with pytest.raises(FileNotFoundError, match="write_manifest"):
        ClipDataset(tmp_path, 4)
    write_manifest(tmp_path)
    with pytest.raises(ValueError, match="lists no clips"):
        ClipDataset(tmp_path, 4)
    with pytest.raises(IndexError):
        ClipDataset(root, 4)[3]
