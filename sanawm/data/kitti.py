"""KITTI odometry sequences -> sanawm clips.

Expected layout of a sequence folder (as ../shared/data/real/kitti07):

    image_0/000000.png|jpg ...  left greyscale camera, one image a frame
    poses.txt   one row-major 3x4 camera-to-world matrix a line (camera 0, OpenCV axes, metres)
    calib.txt   "P0: ..." 3x4 projection matrix: fx = P[0,0], fy = P[1,1], cx = P[0,2], cy = P[1,2]
    times.txt   optional, one timestamp (seconds) a line

Poses, intrinsics and timestamps are parsed by `sanawm.cameras.formats.kitti.read_kitti`. Greyscale
frames become RGB by replication. An odd height or width loses its last row or column (H.264 needs
even sizes); that crop keeps fx, fy, cx, cy as they are. The video is stored at KITTI's nominal 10 fps;
the measured timestamps (about 9.65 Hz) are kept in cameras.npz.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..cameras import Trajectory
from ..cameras.formats.kitti import read_kitti
from .clip import write_clip

KITTI_FPS = 10.0
KITTI_LICENCE = "CC BY-NC-SA 3.0"


def convert_kitti_sequence(
    seq_dir, out_dir, max_frames: int | None = None, *, caption: str | None = None, overwrite: bool = False
) -> Path:
    """Write a KITTI odometry sequence (camera 0) as a clip folder.

    Args:
        seq_dir: the sequence folder (layout in the module docstring).
        out_dir: the clip folder to write.
        max_frames: convert only the first max_frames frames.
        caption: defaults to "a drive through a suburban street, KITTI odometry sequence <id>", where <id>
            is the trailing number of the folder name (e.g. 07 for kitti07).
        overwrite: replace an existing clip folder.

    Returns:
        The clip folder.
    """
    seq_dir = Path(seq_dir)
    image_dir = seq_dir / "image_0"
    for required in (image_dir, seq_dir / "poses.txt", seq_dir / "calib.txt"):
        if not required.exists():
            raise FileNotFoundError(
                f"KITTI sequence {seq_dir} lacks {required.name}; a sequence folder holds image_0/, "
                "poses.txt, calib.txt and (optionally) times.txt"
            )
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    cameras = read_kitti(seq_dir)  # poses, P0 intrinsics, timestamps when times.txt exists
    if len(images) != len(cameras):
        raise ValueError(
            f"KITTI sequence {seq_dir} has {len(images)} images in image_0/ but {len(cameras)} poses in "
            "poses.txt; they must match one to one"
        )
    n = len(images) if max_frames is None else min(int(max_frames), len(images))
    if n < 1:
        raise ValueError(
            f"nothing to convert: {seq_dir} has {len(images)} images and max_frames={max_frames}"
        )

    first = np.asarray(Image.open(images[0]).convert("L"))
    h, w = first.shape[0] - first.shape[0] % 2, first.shape[1] - first.shape[1] % 2
    frames = np.empty((n, h, w, 3), np.uint8)
    for i, path in enumerate(images[:n]):
        grey = np.asarray(Image.open(path).convert("L"))
        if grey.shape != first.shape:
            raise ValueError(
                f"{path} is {grey.shape[1]}x{grey.shape[0]} (W x H) but {images[0].name} is "
                f"{first.shape[1]}x{first.shape[0]}"
            )
        frames[i] = grey[:h, :w, None]

    trajectory = Trajectory(
        c2w=cameras.c2w[:n],
        intrinsics=cameras.intrinsics[:n],
        image_size=(h, w),
        fps=KITTI_FPS,
        timestamps=None if cameras.timestamps is None else cameras.timestamps[:n],
    )
    match = re.search(r"(\d+)$", seq_dir.resolve().name)
    seq_id = match.group(1) if match else seq_dir.resolve().name
    if caption is None:
        caption = f"a drive through a suburban street, KITTI odometry sequence {seq_id}"
    return write_clip(
        out_dir,
        frames,
        trajectory,
        caption=caption,
        source=f"KITTI odometry {seq_id}",
        licence=KITTI_LICENCE,
        scene_seed=None,
        extra={
            "dataset": "kitti_odometry",
            "sequence": seq_id,
            "camera": "image_0",
            "original_size": list(first.shape),
        },
        overwrite=overwrite,
    )


__all__ = ["KITTI_FPS", "KITTI_LICENCE", "convert_kitti_sequence"]
