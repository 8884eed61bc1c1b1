"""KITTI odometry -> clip: poses, intrinsics and timestamps exactly as in the sequence's text files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sanawm.data import ClipDataset, convert_kitti_sequence, read_clip, write_manifest
from tests.data import psnr

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
KITTI07 = SHARED_DATA / "real" / "kitti07"
N = 24


@pytest.fixture(scope="module")
def kitti_root(tmp_path_factory):
    if not KITTI07.is_dir():
        pytest.skip(f"KITTI test sequence {KITTI07} is absent")
    root = tmp_path_factory.mktemp("kitti")
    convert_kitti_sequence(KITTI07, root / "kitti07", max_frames=N)
    write_manifest(root)
    return root


def test_converted_clip_matches_the_sequence_files(kitti_root):
    clip = read_clip(kitti_root / "kitti07")
    meta = clip.meta
    assert (meta.num_frames, meta.size, meta.fps) == (N, (370, 1226), 10.0)
    assert meta.caption == "a drive through a suburban street, KITTI odometry sequence 07"
    assert (meta.source, meta.licence, meta.scene_seed) == ("KITTI odometry 07", "CC BY-NC-SA 3.0", None)
    poses = np.loadtxt(KITTI07 / "poses.txt")[:N].reshape(N, 3, 4)
    np.testing.assert_array_equal(clip.trajectory.c2w[:, :3], poses)
    np.testing.assert_array_equal(clip.trajectory.c2w[:, 3], np.tile([0.0, 0.0, 0.0, 1.0], (N, 1)))
    np.testing.assert_array_equal(
        clip.trajectory.intrinsics, np.tile([707.0912, 707.0912, 601.8873, 183.1104], (N, 1))
    )
    np.testing.assert_array_equal(clip.trajectory.timestamps, np.loadtxt(KITTI07 / "times.txt")[:N])
    frames = clip.frames([0, N - 1])
    grey = np.stack([np.asarray(Image.open(KITTI07 / "image_0" / f"{i:06d}.jpg")) for i in (0, N - 1)])
    assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 0], frames[..., 2])
    assert psnr(frames[..., 0], grey) > 35.0


def test_kitti_through_clip_dataset(kitti_root):
    ds = ClipDataset(kitti_root, num_frames=9, size=(128, 256), frame_stride=2, seed=3)
    assert len(ds) == 1
    item = ds[0]
    idx = item["frame_indices"].numpy()
    poses = np.loadtxt(KITTI07 / "poses.txt").reshape(-1, 3, 4)
    assert item["video"].shape == (9, 3, 128, 256) and item["clip"] == "kitti07"
    torch.testing.assert_close(item["c2w"][:, :3], torch.from_numpy(poses[idx]).float())
    # 370x1226 -> cover-scale max(128/370, 256/1226) = 0.3459..., resized to 128x424, centre crop left = 84.
    sx, sy = 424 / 1226, 128 / 370
    expected = torch.tensor(
        [707.0912 * sx, 707.0912 * sy, 601.8873 * sx - 84, 183.1104 * sy], dtype=torch.float64
    )
    torch.testing.assert_close(item["intrinsics"], expected.float().expand(9, 4))


def _fake_sequence(folder: Path, n: int, h: int, w: int) -> Path:
    (folder / "image_0").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((h, w), 20 * i, np.uint8)).save(folder / "image_0" / f"{i:06d}.png")
    c2w = np.tile(np.eye(4)[:3], (n, 1, 1))
    c2w[:, 2, 3] = np.arange(n) * 0.8
    np.savetxt(folder / "poses.txt", c2w.reshape(n, 12))
    (folder / "calib.txt").write_text(
        "P0: 40 0 25.5 0 0 41 16.25 0 0 0 1 0\nP1: 40 0 25.5 -20 0 41 16.25 0 0 0 1 0\n"
    )
    np.savetxt(folder / "times.txt", np.arange(n) * 0.1)
    return folder


def test_odd_sizes_lose_the_last_row_and_column(tmp_path):
    seq = _fake_sequence(tmp_path / "seq05", n=4, h=33, w=51)
    clip = read_clip(convert_kitti_sequence(seq, tmp_path / "out"))
    assert clip.meta.size == (32, 50) and clip.trajectory.image_size == (32, 50)
    np.testing.assert_array_equal(clip.trajectory.intrinsics[0], [40.0, 41.0, 25.5, 16.25])
    assert clip.meta.source == "KITTI odometry 05" and clip.meta.extra["original_size"] == [33, 51]
    np.testing.assert_array_equal(clip.trajectory.timestamps, np.arange(4) * 0.1)
    np.testing.assert_allclose(clip.frames()[:, 0, 0, :], np.arange(4)[:, None].repeat(3, 1) * 20, atol=2)


def test_bad_sequences_give_clear_errors(tmp_path):
    seq = _fake_sequence(tmp_path / "seq", n=3, h=16, w=16)
    (seq / "times.txt").unlink()  # optional: the clip then has no timestamps
    assert read_clip(convert_kitti_sequence(seq, tmp_path / "ok", max_frames=2)).trajectory.timestamps is None
    (seq / "image_0" / "000002.png").unlink()
    with pytest.raises(ValueError, match="2 images in image_0/ but 3 poses"):
        convert_kitti_sequence(seq, tmp_path / "out")
    (seq / "calib.txt").write_text("P1: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(ValueError, match="no 'P0:' line"):
        convert_kitti_sequence(seq, tmp_path / "out")
    (seq / "calib.txt").unlink()
    with pytest.raises(FileNotFoundError, match="lacks calib.txt"):
        convert_kitti_sequence(seq, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok", "seq"]
