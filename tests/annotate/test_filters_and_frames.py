"""Frame loading (natural order, sampling) and the clip filters (cuts, motion, intrinsics)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sanawm.annotate.filters import FilterLimits, camera_checks, scene_cuts, video_checks
from sanawm.annotate.frames import load_frames, sample_indices
from sanawm.data.video import write_video
from tests.annotate.conftest import textured_pan


def test_folder_frames_in_natural_order_ignoring_other_files(tmp_path):
    frames = textured_pan(12)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(tmp_path / f"frame_{i}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "poses.json").write_text("{}")
    got = load_frames(tmp_path)
    assert got.names[:3] == ("frame_0.png", "frame_1.png", "frame_2.png") and got.names[-1] == "frame_11.png"
    np.testing.assert_array_equal(got.frames, frames)
    sub = load_frames(tmp_path, stride=5, folder_fps=10)
    assert sub.indices.tolist() == [0, 5, 10] and sub.fps == 2.0
    Image.fromarray(frames[0][:50]).save(tmp_path / "frame_99.png")
    with pytest.raises(ValueError, match="one size"):
        load_frames(tmp_path)


def test_video_frames_and_sampling(tmp_path):
    frames = textured_pan(20)
    write_video(tmp_path / "v.mp4", frames, fps=20, lossless=True)
    got = load_frames(tmp_path / "v.mp4", fps=5)
    assert got.indices.tolist() == [0, 4, 8, 12, 16] and got.fps == 5.0
    np.testing.assert_array_equal(got.frames, frames[::4])
    idx, fps = sample_indices(100, 30.0, None, 60.0, 10)  # never more frames than the source has
    assert idx.tolist() == list(range(10)) and fps == 30.0
    with pytest.raises(ValueError, match="either stride or fps"):
        sample_indices(10, 30.0, 2, 10.0, None)
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x01 not a video" * 100)
    with pytest.raises(ValueError, match="corrupt"):
        load_frames(tmp_path / "bad.mp4")


def test_cut_static_and_moving_clips():
    limits = FilterLimits()
    moving = textured_pan(16)
    cut = np.concatenate([textured_pan(8, seed=1), textured_pan(8, seed=2)])
    static = np.repeat(moving[:1], 16, axis=0)
    assert scene_cuts(moving, 10.0) == [] and scene_cuts(cut, 10.0) == [8]
    by_name = {c.name: c for c in video_checks(moving, 10.0, limits)}
    assert by_name["scene_cuts"].passed and by_name["motion"].passed
    assert by_name["motion"].value == pytest.approx(3 / 128, rel=0.15)  # 3 px a frame, 128 px wide
    checks = {c.name: c for c in video_checks(static, 10.0, limits)}
    assert not checks["motion"].passed and "too little motion" in checks["motion"].reason
    assert not {c.name: c for c in video_checks(cut, 10.0, limits)}["scene_cuts"].passed


def test_camera_checks_field_of_view_and_aspect():
    limits = FilterLimits()
    good = camera_checks(np.tile([300.0, 300, 320, 180], (4, 1)), (360, 640), 1.0, 0.1, limits)
    assert all(c.passed for c in good)
    k = np.tile([100.0, 140, 320, 180], (4, 1))  # 145° wide and non-square pixels
    bad = {c.name: c for c in camera_checks(k, (360, 640), 0.5, 3.0, limits)}
    assert not bad["field_of_view"].passed and "outside [25°, 120°]" in bad["field_of_view"].reason
    assert not bad["aspect"].passed and bad["aspect"].value == pytest.approx(40 / 120)
    assert not bad["registered"].passed and not bad["scale_cv"].passed
