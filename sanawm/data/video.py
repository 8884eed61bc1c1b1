"""Video files: write RGB frames as H.264 mp4 and read back only the frames asked for (PyAV).

- `write_video` encodes (F, H, W, 3) uint8 RGB as H.264: lossy yuv420p (`crf`, visually lossless at
  the default 18) or, with `lossless=True`, libx264rgb at qp 0 (bit-exact RGB, several times larger,
  for tests and ground truth). Both need even H and W, so every clip has one frame size rule.
- `read_video` seeks to the keyframe before the first wanted frame and decodes only up to the last one.
  Frame i is the i-th frame in presentation order; in constant-frame-rate files it is found from its
  timestamp, and when timestamps do not give consecutive indices the file is decoded from the start.
- `video_info` reads the header: (num_frames, fps, (H, W)).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_FORMAT_BY_SUFFIX = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}

FrameIndices = slice | Sequence[int] | np.ndarray | None


def _as_rate(fps: float) -> Fraction:
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    return Fraction(fps).limit_denominator(10_000)


# x264's speed presets, fastest first
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow")  # fmt: skip


def write_video(
    path, frames: np.ndarray, fps: float, crf: int = 18, *, lossless: bool = False, preset: str = "medium"
) -> Path:
    """Encode RGB frames as an H.264 video (written to a temporary name, then renamed into place).

    Args:
        path: output file; `.mp4` (also `.mkv`, `.mov`). Parent folders are created.
        frames: (F, H, W, 3) uint8 RGB, H and W even.
        fps: frames per second (stored as a rational, e.g. 16 or 30000/1001).
        crf: x264 constant rate factor for the lossy yuv420p encode (0–51, lower is better; 18 is
            visually lossless). Ignored when `lossless`.
        lossless: encode RGB exactly (libx264rgb, qp 0) instead.
        preset: x264's speed preset ("ultrafast" .. "veryslow"): at a fixed crf, slower presets make
            smaller files of about the same quality. `sanawm generate` writes with "veryfast" (961 frames of
            256²: 1.6 s against 3.4 s for "medium", on 2 CPU cores).

    Returns:
        The path written.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames have shape {frames.shape}; pass (F, H, W, 3) RGB with F ≥ 1")
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames have dtype {frames.dtype}; pass uint8 RGB (from floats in [0, 1]: "
            "(x * 255).round().clip(0, 255).astype(np.uint8))"
        )
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(
            f"frames are {h}x{w} (H x W); H.264 needs an even height and width: crop to "
            f"{h - h % 2}x{w - w % 2} with frames[:, :{h - h % 2}, :{w - w % 2}] (dropping the last "
            "row/column leaves the intrinsics fx, fy, cx, cy unchanged) or render at an even size"
        )
    if preset not in X264_PRESETS:
        raise ValueError(f"preset {preset!r} is not an x264 preset: use one of {', '.join(X264_PRESETS)}")
    fmt = _FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot write video {path.name!r}: use one of {sorted(_FORMAT_BY_SUFFIX)}")
    rate = _as_rate(fps)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        with av.open(str(tmp), mode="w", format=fmt) as container:
            codec, pix_fmt, options = (
                ("libx264rgb", "rgb24", {"qp": "0", "preset": preset})
                if lossless
                else ("libx264", "yuv420p", {"crf": str(crf), "preset": preset})
            )
            stream = container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
            stream.codec_context.options = options
            for i, frame in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                vf.pts = i
                container.mux(stream.encode(vf))
            container.mux(stream.encode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _open(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"video file {path} does not exist")
    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise ValueError(f"video file {path} cannot be opened ({err}); it is corrupt or truncated") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} has no video stream")
    return container


def _count_frames(container, stream) -> int:
    """Frames of a stream whose header does not say: count packets (demux only, no decoding)."""
    count = sum(1 for p in container.demux(stream) if p.size > 0)
    container.seek(0)
    return count


def video_info(path) -> tuple[int, float, tuple[int, int]]:
    """(num_frames, fps, (H, W)) of a video file, from its header (no decoding)."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise ValueError(f"{path} does not state a frame rate")
        n = stream.frames or _count_frames(container, stream)
        return int(n), float(rate), (int(stream.codec_context.height), int(stream.codec_context.width))


def _normalise_indices(frames: FrameIndices, n: int, path: Path) -> np.ndarray:
    if frames is None:
        return np.arange(n)
    if isinstance(frames, slice):
        return np.arange(n)[frames]
    idx = np.asarray(frames)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"frame indices must be a slice or a 1-D list of integers, got {frames!r}")
    idx = idx.astype(np.int64)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"frame index {int(idx[bad][0])} is out of range for {path}, which has {n} frames")
    return np.where(idx < 0, idx + n, idx)


def _decode(container, stream, wanted: np.ndarray, seek: bool) -> dict[int, np.ndarray] | None:
    """Decode frames `wanted` (sorted, unique) -> {index: (H, W, 3) uint8}; None if indices are unreliable.

    With `seek`, jumps to the keyframe at or before the first wanted frame and derives each frame's
    index from its timestamp; returns None when that does not give consecutive indices (the caller then
    decodes from the start, counting).
    """
    first, last = int(wanted[0]), int(wanted[-1])
    rate, tb = stream.average_rate or stream.guessed_rate, stream.time_base
    start_pts = stream.start_time or 0
    use_pts = seek and bool(rate) and tb is not None
    if use_pts and first > 0:
        container.seek(start_pts + int(Fraction(first) / rate / tb), stream=stream, backward=True)
    else:
        container.seek(0)
        use_pts = False
    want = set(wanted.tolist())
    out: dict[int, np.ndarray] = {}
    prev = None
    for count, frame in enumerate(container.decode(stream)):
        if use_pts:
            if frame.pts is None:
                return None
            i = round((frame.pts - start_pts) * tb * rate)
            if (prev is None and i > first) or (prev is not None and i != prev + 1):
                return None
            prev = i
        else:
            i = count
        if i in want:
            # threads=1: the conversion runs on this thread. PyAV 18.1.1's default keeps a pool of swscale
            # slice threads, which a forked process (a DataLoader worker) inherits without its threads: the
            # child then waits for ever in sws_scale_frame
            out[i] = frame.to_ndarray(format="rgb24", threads=1)
        if i >= last:
            break
    return out


def read_video(path, frames: FrameIndices = None) -> np.ndarray:
    """Decode frames of a video as RGB.

    Args:
        path: a video file.
        frames: which frames: None (all), a slice, or a list/array of indices (any order, repeats and
            negative indices allowed). Only the span from the first to the last is decoded.

    Returns:
        (len(frames), H, W, 3) uint8, in the order asked for.
    """
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = stream.frames or _count_frames(container, stream)
        idx = _normalise_indices(frames, n, path)
        h, w = stream.codec_context.height, stream.codec_context.width
        if idx.size == 0:
            return np.zeros((0, h, w, 3), np.uint8)
        wanted = np.unique(idx)
        try:
            got = _decode(container, stream, wanted, seek=True)
            if got is None:
                got = _decode(container, stream, wanted, seek=False)
        except av.FFmpegError as err:
            raise ValueError(
                f"video file {path} failed to decode ({err}); it is corrupt or truncated"
            ) from None
    missing = [int(i) for i in wanted if int(i) not in got]
    if missing:
        raise ValueError(
            f"video file {path} claims {n} frames but frame {missing[0]} could not be decoded; "
            "the file is truncated or corrupt: re-encode it"
        )
    return np.stack([got[int(i)] for i in idx])


__all__ = ["read_video", "video_info", "write_video"]
