"""Input frames for annotation: a video file or a folder of images, sampled by stride or frame rate.

A folder's images are taken in natural order (frame_2 before frame_10), ignoring files that are not
images; they must all have one size. A video is decoded with PyAV (`sanawm.data.video`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..cameras.formats.colmap import _natural_key
from ..data.video import read_video, video_info

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
DEFAULT_FOLDER_FPS = 10.0


@dataclass(frozen=True)
class FrameSet:
    """Sampled frames: (F, H, W, 3) uint8 RGB, their indices in the source, and the sampled frame rate."""

    frames: np.ndarray
    indices: np.ndarray
    fps: float
    source_fps: float
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.frames)


def image_files(folder) -> list[Path]:
    """The image files of a folder in natural order (frame_2 before frame_10); other files are skipped."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def sample_indices(n: int, source_fps: float, stride: int | None, fps: float | None, max_frames: int | None):
    """Indices of the frames to keep and the resulting frame rate.

    stride keeps every stride-th frame; fps keeps the frames nearest to a clock at that rate (never more
    frames than the source has); at most one of them may be given. max_frames caps the count.
    """
    if stride is not None and fps is not None:
        raise ValueError("give either stride or fps (target frame rate), not both")
    if stride is not None:
        if isinstance(stride, bool) or int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a whole number >= 1, got {stride!r}")
        idx, out_fps = np.arange(0, n, int(stride)), source_fps / int(stride)
    elif fps is not None:
        if not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        step = max(1.0, source_fps / float(fps))
        idx = np.unique(np.round(np.arange(0, n, step)).astype(np.int64))
        idx, out_fps = idx[idx < n], source_fps / step
    else:
        idx, out_fps = np.arange(n), source_fps
    if max_frames is not None:
        if max_frames < 2:
            raise ValueError(f"max_frames must be at least 2 (poses need two views), got {max_frames}")
        idx = idx[:max_frames]
    return idx, float(out_fps)


def load_frames(
    source,
    stride: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    folder_fps: float = DEFAULT_FOLDER_FPS,
) -> FrameSet:
    """Read and sample the frames of a video file or an image folder.

    Args:
        source: a video file (.mp4, .mov, .mkv, .avi, .webm, .m4v) or a folder of images.
        stride, fps, max_frames: sampling (see `sample_indices`).
        folder_fps: the frame rate of an image folder (it has none of its own).

    Raises:
        FileNotFoundError: the source does not exist.
        ValueError: an empty folder, mixed image sizes, an unreadable or corrupt video.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist; pass a video file or a folder of frames")
    if source.is_dir():
        files = image_files(source)
        if len(files) < 2:
            raise ValueError(
                f"{source} holds {len(files)} image file(s) ({', '.join(IMAGE_SUFFIXES)}); annotation "
                "needs at least 2 frames (a folder of videos is annotated in batch: --batch)"
            )
        idx, out_fps = sample_indices(len(files), folder_fps, stride, fps, max_frames)
        frames, size = [], None
        for i in idx:
            try:
                with Image.open(files[i]) as img:
                    arr = np.asarray(img.convert("RGB"))
            except OSError as err:
                raise ValueError(f"cannot read image {files[i]} ({err}); remove or replace it") from None
            if size is not None and arr.shape != size:
                raise ValueError(
                    f"{files[i].name} is {arr.shape[1]}x{arr.shape[0]} but {files[idx[0]].name} is "
                    f"{size[1]}x{size[0]} (W x H); all frames of a clip must have one size"
                )
            size = arr.shape
            frames.append(arr)
        names = tuple(files[i].name for i in idx)
        return FrameSet(np.stack(frames), idx, out_fps, float(folder_fps), names)
    if source.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{source.name}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames")
    n, source_fps, _ = video_info(source)
    if n < 2:
        raise ValueError(f"video {source} has {n} frame(s); annotation needs at least 2")
    idx, out_fps = sample_indices(n, source_fps, stride, fps, max_frames)
    frames = read_video(source, idx)
    return FrameSet(frames, idx, out_fps, float(source_fps), tuple(f"frame_{i:06d}" for i in idx))
