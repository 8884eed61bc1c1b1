"""Clip folders: exact round trips, atomic writes, overwrite rules, resumability, clear errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import sanawm.data.clip as clip_module
from sanawm.data import Clip, ClipMeta, is_complete_clip, read_clip, write_clip
from tests.data import FPS, F, H, K, W, moving_trajectory, psnr, smooth_frames


def _depth(dtype=np.float32) -> np.ndarray:
    d = np.random.default_rng(2).uniform(0.5, 80.0, (F, H, W)).astype(dtype)
    d[0, 0, :5] = np.inf  # no surface
    return d


@pytest.fixture(scope="module")
def good_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips") / "good"
    write_clip(folder, smooth_frames(), moving_trajectory(), caption="waves", depth=_depth(np.float16))
    return folder


@pytest.fixture
def clip_copy(good_clip, tmp_path):
    return shutil.copytree(good_clip, tmp_path / "clip")


def test_round_trip_meta_cameras_and_lossy_frames(tmp_path):
    frames, traj = smooth_frames(), moving_trajectory()
    extra = {"renderer": "mujoco", "lights": [1, 2], "nested": {"ok": True}}
    folder = write_clip(
        tmp_path / "a" / "clip", frames, traj, caption="a red room", source="procedural",
        licence="CC0", scene_seed=17, extra=extra,
    )  # fmt: skip
    clip = read_clip(folder)
    assert isinstance(clip, Clip) and clip.folder == folder and len(clip) == F
    assert clip.meta == ClipMeta(FPS, (H, W), F, "a red room", "procedural", "CC0", 17, extra)
    doc = json.loads((folder / "meta.json").read_text())
    assert doc["format"] == "sanawm.clip" and doc["version"] == 1 and doc["size"] == [H, W]
    t = clip.trajectory
    for name in ("c2w", "intrinsics", "timestamps"):
        got, want = getattr(t, name), getattr(traj, name)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)
    assert t.image_size == (H, W) and t.fps == FPS
    np.testing.assert_array_equal(t.intrinsics[3], K)
    out = clip.frames()
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert psnr(out, frames) > 35.0
    np.testing.assert_array_equal(clip.frames([5, 2]), out[[5, 2]])
    assert not clip.has_depth
    with pytest.raises(FileNotFoundError, match="has no depth"):
        clip.depth()
    assert is_complete_clip(folder)
    assert sorted(p.name for p in folder.parent.iterdir()) == ["clip"], "temporary folders were left behind"


def test_lossless_frames_and_depth_are_exact(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (F, H, W, 3), dtype=np.uint8)
    traj = replace(moving_trajectory(), timestamps=None)
    for dtype in (np.float16, np.float32):
        depth = _depth(dtype)
        clip = read_clip(
            write_clip(tmp_path / str(np.dtype(dtype)), frames, traj, depth=depth, lossless=True)
        )
        np.testing.assert_array_equal(clip.frames(), frames)
        np.testing.assert_array_equal(clip.frames(slice(4, 8)), frames[4:8])
        assert clip.has_depth and clip.depth().dtype == dtype
        np.testing.assert_array_equal(clip.depth(), depth)
        np.testing.assert_array_equal(clip.depth([1, 7]), depth[[1, 7]])
        assert clip.trajectory.timestamps is None
    float64_depth = read_clip(write_clip(tmp_path / "f64", frames, traj, depth=_depth(np.float64))).depth()
    assert float64_depth.dtype == np.float32


def test_overwrite_is_refused_unless_asked(tmp_path):
    folder = tmp_path / "clip"
    write_clip(folder, smooth_frames(), moving_trajectory(), caption="first")
    with pytest.raises(FileExistsError, match="is a complete clip; pass overwrite=True"):
        write_clip(folder, smooth_frames(), moving_trajectory(), caption="second")
    assert read_clip(folder).meta.caption == "first"
    write_clip(folder, smooth_frames(8), moving_trajectory(8), caption="second", overwrite=True)
    assert read_clip(folder).meta.caption == "second" and len(read_clip(folder)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]
    (tmp_path / "empty").mkdir()  # an empty folder (e.g. made by a renderer) is not "an existing clip"
    write_clip(tmp_path / "empty", smooth_frames(), moving_trajectory())
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "video.mp4").write_bytes(b"partial")
    with pytest.raises(FileExistsError, match="not empty"):
        write_clip(junk, smooth_frames(), moving_trajectory())


def test_a_failed_write_leaves_no_clip_and_keeps_the_old_one(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    folder = tmp_path / "clip"
    monkeypatch.setattr(clip_module.np, "savez_compressed", crash)  # fails after video + cameras are written
    with pytest.raises(RuntimeError, match="disk full"):
        write_clip(folder, smooth_frames(), moving_trajectory(), depth=_depth())
    assert not folder.exists() and not is_complete_clip(folder)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    write_clip(folder, smooth_frames(), moving_trajectory(), caption="old")
    monkeypatch.setattr(clip_module.np, "savez_compressed", crash)
    with pytest.raises(RuntimeError):
        write_clip(
            folder, smooth_frames(), moving_trajectory(), depth=_depth(), caption="new", overwrite=True
        )
    assert read_clip(folder).meta.caption == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]
    monkeypatch.undo()
    real_replace, moved_out = clip_module.os.replace, []

    def final_rename_fails(src, dst):  # moving the new clip into place fails after the old one moved out
        if Path(src) == folder:
            moved_out.append(dst)
        if Path(dst) == folder and Path(src).name.startswith(".clip.tmp-"):
            raise OSError("rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(clip_module.os, "replace", final_rename_fails)
    with pytest.raises(OSError, match="rename failed"):
        write_clip(folder, smooth_frames(), moving_trajectory(), caption="new", overwrite=True)
    monkeypatch.undo()
    assert moved_out, "the old clip should have been moved aside first"
    assert read_clip(folder).meta.caption == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip"]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: (c / "meta.json").unlink(),
        lambda c: (c / "cameras.npz").unlink(),
        lambda c: (c / "video.mp4").unlink(),
        lambda c: _truncate(c / "video.mp4"),
        lambda c: _truncate(c / "cameras.npz"),
        lambda c: _truncate(c / "depth.npz"),
        lambda c: _truncate(c / "meta.json"),
        lambda c: shutil.rmtree(c),
    ],
    ids=[
        "no-meta",
        "no-cameras",
        "no-video",
        "short-video",
        "short-cameras",
        "short-depth",
        "short-meta",
        "gone",
    ],
)
def test_is_complete_clip_detects_damage(clip_copy, damage):
    assert is_complete_clip(clip_copy)
    damage(clip_copy)
    assert not is_complete_clip(clip_copy)


def _edit_meta(clip, **changes):
    path = clip / "meta.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _edit_cameras(clip, **changes):
    with np.load(clip / "cameras.npz") as data:
        arrays = dict(data)
    arrays.update(changes)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(clip / "cameras.npz", **arrays)


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (lambda c: (c / "meta.json").write_text("{not json"), ValueError, "meta.json is not valid JSON"),
        (lambda c: _edit_meta(c, format="other"), ValueError, "'format' field must be 'sanawm.clip'"),
        (lambda c: _edit_meta(c, version=2), ValueError, "version 2; this sanawm reads version 1"),
        (lambda c: _edit_meta(c, size=[64]), ValueError, r"'size' must be \[H, W\]"),
        (lambda c: _edit_meta(c, fps=-1), ValueError, "'fps' must be a positive number"),
        (lambda c: _edit_meta(c, caption=3), ValueError, "'caption' must be a string"),
        (lambda c: _edit_meta(c, scene_seed="x"), ValueError, "'scene_seed' must be an integer or null"),
        (lambda c: _edit_meta(c, num_frames=F + 1), ValueError, r"'c2w' has shape \(12, 4, 4\)"),
        (lambda c: _edit_meta(c, size=[32, 96]), ValueError, "video.mp4 has 12 frames of 64x96"),
        (lambda c: (c / "meta.json").unlink(), FileNotFoundError, "has no meta.json"),
        (lambda c: (c / "cameras.npz").unlink(), FileNotFoundError, "has no cameras.npz"),
        (lambda c: (c / "video.mp4").unlink(), FileNotFoundError, "has no video.mp4"),
        (lambda c: _edit_cameras(c, intrinsics=None), ValueError, "cameras.npz has no 'intrinsics' array"),
        (lambda c: _edit_cameras(c, c2w=np.zeros((F, 3, 4))), ValueError, r"'c2w' has shape \(12, 3, 4\)"),
        (lambda c: _edit_cameras(c, intrinsics=np.ones((F - 1, 4))), ValueError, "should be \\(12, 4\\)"),
        (lambda c: _edit_cameras(c, timestamps=np.zeros(F)), ValueError, "invalid cameras: timestamps"),
        (lambda c: _edit_cameras(c, c2w=2 * np.tile(np.eye(4), (F, 1, 1))), ValueError, "invalid cameras"),
        (
            lambda c: np.savez(c / "depth.npz", depth=np.zeros((F, H, W - 2), np.float16)),
            ValueError,
            "depth.npz",
        ),
        (
            lambda c: (c / "cameras.npz").write_bytes(b"junk"),
            ValueError,
            "cameras.npz is not a readable .npz",
        ),
    ],
)
def test_malformed_clips_give_clear_errors(clip_copy, damage, error, match):
    damage(clip_copy)
    with pytest.raises(error, match=match) as info:
        read_clip(clip_copy)
    assert str(clip_copy) in str(info.value), "the error must name the clip folder"
    assert not is_complete_clip(clip_copy)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_clip(tmp_path / "nope")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frames=smooth_frames(11)), "11 frames but the trajectory has 12 poses"),
        (dict(trajectory=replace(moving_trajectory(), intrinsics=None)), "has no intrinsics"),
        (dict(trajectory=moving_trajectory(size=(H, W + 2))), r"image_size \(64, 98\) but the frames are"),
        (dict(trajectory=replace(moving_trajectory(), fps=None)), "has no fps"),
        (
            dict(frames=smooth_frames(F, H, W - 1), trajectory=moving_trajectory(size=(H, W - 1))),
            "crop to 64x94",
        ),
        (dict(frames=smooth_frames().astype(np.float32)), "uint8"),
        (dict(extra={"when": object()}), "JSON-serialisable"),
        (dict(extra=[1]), "extra must be a dict"),
        (dict(scene_seed="7"), "scene_seed must be an integer"),
        (dict(caption=None), "caption must be a string"),
        (dict(depth=np.ones((F, H, W + 2), np.float32)), r"depth has shape"),
        (dict(depth=np.full((F, H, W), np.nan, np.float32)), "NaN or negative"),
        (dict(depth=np.ones((F, H, W), np.int32)), "float16/float32"),
    ],
)
def test_write_clip_validates_before_writing(tmp_path, kwargs, match):
    args = dict(frames=smooth_frames(), trajectory=moving_trajectory())
    args.update(kwargs)
    frames, traj = args.pop("frames"), args.pop("trajectory")
    with pytest.raises(ValueError, match=match):
        write_clip(tmp_path / "clip", frames, traj, **args)
    assert list(tmp_path.iterdir()) == []
