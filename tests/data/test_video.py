"""H.264 video files: lossy and lossless round trips, partial decoding (with seeking), clear errors."""

from __future__ import annotations

import multiprocessing as mp

import av
import numpy as np
import pytest

from sanawm.data import read_video, video_info, write_video
from tests.data import FPS, psnr, smooth_frames


def test_lossy_round_trip_is_close(tmp_path):
    frames = smooth_frames()
    path = write_video(tmp_path / "v.mp4", frames, FPS)
    assert video_info(path) == (len(frames), FPS, frames.shape[1:3])
    out = read_video(path)
    assert out.dtype == np.uint8 and out.shape == frames.shape
    assert psnr(out, frames) > 35.0
    assert not list(tmp_path.glob(".*")), "the temporary file was left behind"


def test_fast_preset_keeps_the_quality_and_bad_presets_are_refused(tmp_path):
    frames = smooth_frames()
    fast = read_video(write_video(tmp_path / "fast.mp4", frames, FPS, preset="veryfast"))
    assert psnr(fast, frames) > 35.0  # the same crf: about the same quality as "medium"
    with pytest.raises(ValueError, match="not an x264 preset.*veryfast"):
        write_video(tmp_path / "bad.mp4", frames, FPS, preset="quick")
    assert not (tmp_path / "bad.mp4").exists()


def test_lossless_round_trip_is_exact(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (7, 32, 48, 3), dtype=np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, 10.0, lossless=True)
    np.testing.assert_array_equal(read_video(path), frames)
    mkv = write_video(tmp_path / "v.mkv", frames, 10.0, lossless=True)
    assert video_info(mkv)[0] == 7
    np.testing.assert_array_equal(read_video(mkv), frames)


def test_non_integer_frame_rate(tmp_path):
    path = write_video(tmp_path / "v.mp4", smooth_frames(4, 16, 16), 30000 / 1001)
    assert video_info(path)[1] == pytest.approx(30000 / 1001, rel=1e-6)


@pytest.mark.parametrize(
    "frames_arg", [slice(3, 9), slice(None, None, 4), [11, 0, 5, 5, -1], np.array([2]), slice(8, 8)]
)
def test_partial_reads_match_full_decode(tmp_path, frames_arg):
    frames = np.random.default_rng(1).integers(0, 256, (12, 16, 24, 3), dtype=np.uint8)
    path = write_video(tmp_path / "v.mp4", frames, FPS, lossless=True)
    expected = frames[frames_arg] if not isinstance(frames_arg, list) else frames[np.array(frames_arg)]
    np.testing.assert_array_equal(read_video(path, frames_arg), expected)


def test_seeking_in_a_long_gop_file_with_b_frames(tmp_path):
    """Keyframes every 5 frames and B-frames: reads that start mid-file seek and still land exactly."""
    frames = smooth_frames(40, 32, 48)
    path = tmp_path / "gop.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=16)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        stream.codec_context.options = {"crf": "18", "g": "5", "bf": "2"}
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            container.mux(stream.encode(vf))
        container.mux(stream.encode())
    full = read_video(path)
    assert psnr(full, frames) > 35.0
    for sel in (slice(23, 31), [37, 12, 29], slice(39, None)):
        np.testing.assert_array_equal(
            read_video(path, sel), full[sel] if isinstance(sel, slice) else full[sel]
        )


def test_odd_size_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"even height and width: crop to 64x96"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 65, 97, 3), np.uint8), FPS)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((2, 16, 16, 3), np.float32), "uint8"),
        (np.zeros((16, 16, 3), np.uint8), r"\(F, H, W, 3\)"),
        (np.zeros((0, 16, 16, 3), np.uint8), "F ≥ 1"),
    ],
)
def test_bad_frames_are_refused(tmp_path, frames, match):
    with pytest.raises(ValueError, match=match):
        write_video(tmp_path / "v.mp4", frames, FPS)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        video_info(junk)
    path = write_video(tmp_path / "v.mp4", smooth_frames(4, 16, 16), FPS)
    with pytest.raises(IndexError, match="has 4 frames"):
        read_video(path, [4])
    with pytest.raises(ValueError, match="integers"):
        read_video(path, [0.5])


def _read_in_child(path, queue):
    queue.put(read_video(path).shape)


def test_a_forked_process_decodes_after_the_parent_did(tmp_path):
    """DataLoader workers and other forked processes decode after the parent has: PyAV 18.1.1 converts
    frames with a pool of swscale slice threads, which a forked child inherits without its threads (it
    waited for ever in sws_scale_frame). read_video converts on the calling thread, so the child finishes."""
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    path = tmp_path / "clip.mp4"
    write_video(path, smooth_frames(4, 80, 80), FPS)
    assert read_video(path).shape == (4, 80, 80, 3)  # the parent decodes (and converts) first
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(str(path), queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked child hung decoding the clip")
    assert child.exitcode == 0 and queue.get(timeout=5) == (4, 80, 80, 3)
